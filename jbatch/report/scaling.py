"""The throughput-against-device-count table (``results/scaling/table.md``) from its JSON
(``bench/scaling.py`` measures it)."""

from __future__ import annotations

from jbatch.report import table
from jbatch.results.records import ScalingRow


def scaling_table(rows: list[ScalingRow]) -> str:
    base = {r.mode: r.samples_per_second for r in rows if r.devices == 1}
    body = [
        [
            r.mode,
            str(r.devices),
            str(r.global_batch),
            table.num(r.per_device_batch),
            table.rate(r.samples_per_second),
            table.ratio(r.samples_per_second / base[r.mode] if r.mode in base else None),
        ]
        for r in sorted(rows, key=lambda r: (r.mode, r.devices))
    ]
    lines = table.markdown(["mode", "devices", "global batch", "per-device batch", "samples/s", "vs 1 device"], body)
    meta = rows[0].metadata
    lines += [
        "",
        f"Workload {rows[0].workload}, one scan-fused epoch per round, median of the rounds after a "
        f"warm-up, each device count in its own process. Measured on {meta.device_kind} "
        f"({meta.backend}), CPU {meta.cpu}, {meta.cpu_count} cores, jax {meta.versions.get('jax')}, "
        f"{meta.date}. On CPU the 'devices' are host devices sharing the same cores: this measures the "
        "overhead of the sharded program, not a speed-up from more hardware.",
    ]
    return "\n".join(lines) + "\n"
