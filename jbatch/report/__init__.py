"""Tables, claims, comparisons and plots of results, from their JSON alone (no jax, flax or
optax): one number and Markdown format (``table``), a sweep's report (``sweep``), its
ladder (``ladder``), the claims (``claims``), an advice's report and its check against the
sweeps (``advice``), comparisons (``compare``), the data-scaling study (``datascaling``),
the throughput benchmark's report (``throughput``), the device-count table (``scaling``)
and plots (``plot``). ``regenerate`` rewrites every table of a results directory from its
JSON (``jbatch report``)."""

from __future__ import annotations

from pathlib import Path


def regenerate(
    directory: str | Path | None, benchmark: str | Path | None = None, out: str | Path = "results/throughput"
) -> list[Path]:
    """Writes the tables and plots of a results ``directory`` from its JSON, whatever it
    holds (a sweep, an advice, the data-scaling study, the device-count table), or of a
    pytest-benchmark file (``benchmark``, into ``out``); returns the paths written."""
    from jbatch.errors import ConfigError
    from jbatch.results import ADVICE, SWEEP, load

    if benchmark is not None:
        from jbatch.report.throughput import write_throughput_report

        return write_throughput_report(benchmark, out)
    directory = Path(directory)
    if (directory / SWEEP).exists() or not directory.exists():
        from jbatch.report.sweep import write_report

        return write_report(directory)
    if (directory / ADVICE).exists():
        from jbatch.report.advice import markdown
        from jbatch.results import read_advice
        from jbatch.store import write_text

        return [write_text(directory / "advise.md", markdown(read_advice(directory)))]
    if (directory / "scaling.json").exists():
        from jbatch.results.records import DataScalingDocument, ScalingDocument

        doc = load(directory / "scaling.json")
        if isinstance(doc, DataScalingDocument):
            from jbatch.report.datascaling import write_study

            return write_study(directory)
        if isinstance(doc, ScalingDocument):
            from jbatch.report.scaling import scaling_table
            from jbatch.store import write_text

            return [write_text(directory / "table.md", scaling_table(doc.rows))]
    raise ConfigError(f"{directory} holds no jbatch results document ({SWEEP}, {ADVICE} or scaling.json)")
