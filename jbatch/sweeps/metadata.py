"""Where and with what a number was measured: versions, device, CPU, XLA flags, commit.

Every JSON jbatch writes carries this block. The hostname is left out on purpose.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import jax

from jbatch.results.records import Commit, Metadata

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(path: str | Path = ".") -> Commit:
    """The commit of the checkout at ``path`` and whether its code had local changes
    (changes under ``results/``, where runs write their output, do not count)."""

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results") if commit else None
    return Commit(id=commit, dirty=bool(status) if status is not None else None)


def device_info() -> dict[str, Any]:
    """Backend, device kind and count as JAX sees them."""
    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(),
    }


def environment_metadata(repo: str | Path | None = None) -> Metadata:
    """The full metadata block: software, device, machine, XLA flags, date and commit."""
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parent.parent
    return Metadata(
        versions={p: _version(p) for p in _PACKAGES} | {"python": platform.python_version()},
        **device_info(),
        cpu=cpu_model(),
        cpu_count=os.cpu_count(),
        platform=platform.platform(),
        xla_flags=os.environ.get("XLA_FLAGS", ""),
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        commit=git_commit(repo),
    )
