"""Reading and writing result JSON safely: atomic writes, clear errors on corrupt files."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from jbatch.errors import ConfigError


def _plain(obj: Any) -> Any:
    """NumPy/JAX scalars and arrays to JSON types; non-finite floats to None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _plain(np.asarray(obj).tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` atomically: a temp file in the same folder, fsync, then a rename.

    A process killed at any moment leaves either the old file or the new one, never half.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """``write_bytes`` for UTF-8 text."""
    return write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """Writes ``obj`` as JSON, atomically (``write_text``); NaN and inf become null.
    ``indent=None`` writes compactly (large documents)."""
    seps = (",", ":") if indent is None else None
    return write_text(path, json.dumps(_plain(obj), indent=indent, separators=seps, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    """Reads a jbatch JSON file; a missing or corrupt file is a ``ConfigError`` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a jbatch JSON file") from None
    except OSError as e:  # permissions, an I/O error: named, in one line
        raise ConfigError(f"cannot read {path} ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); it was left untouched") from None


DOCUMENT = "sweep.json"
