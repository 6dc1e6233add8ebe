"""The results directory of a sweep, checked before anything trains and held by one writer.

``check_results(results_dir, name)`` finds in seconds what would otherwise fail after a batch
size has trained: a name that is not one path component (``--name ../x`` would write outside
``--results-dir``), a directory that cannot be created (a path component is a file), one that
cannot be written (permissions, a read-only file system: a probe file is written and removed
in the nearest folder that exists; nothing is created), a document or table that is a
directory, a document that cannot be read. Each is one ``ConfigError`` line.

``claim(directory)`` holds ``directory/.jbatch.lock`` while a sweep writes there, as asv and
orbax do: the file holds the owner's pid, host, start time and command; a second sweep on
the same directory is refused with one line naming the first, or waits for it (``wait``). A
lock whose process is gone (same host, no such pid, or a zombie) is stale and taken over.
The claim is re-entrant within a process (the command line claims early, the sweep claims
again); folders it made are removed again if the sweep left them empty.

``rescue(doc, name)`` keeps a document that could not be written where it can be: a file in
the temporary directory, named in the error that follows (``FaultError``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jbatch.errors import ConfigError, FaultError
from jbatch.results import SWEEP, dump
from jbatch.results.document import encode
from jbatch.store import write_bytes

LOCK = ".jbatch.lock"
WRITTEN = (SWEEP, "table.md", "table.csv")  # what a sweep writes (plots are named per sweep: checked as a class)
_held: dict[Path, int] = {}


def check_name(name: str) -> None:
    """One clear line unless ``name`` is one path component (no separator, not ``.``/``..``).

    Examples:
      >>> check_name("digits-mlp-sgd")
      >>> check_name("../x")
      Traceback (most recent call last):
      ...
      jbatch.errors.ConfigError: the results name must be one path component (a folder inside --results-dir), got '../x'
    """
    if not name or name in (".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name):
        raise ConfigError(f"the results name must be one path component (a folder inside --results-dir), got {name!r}")


def _first_file(path: Path) -> Path | None:
    """The first component of ``path`` that exists and is not a directory (None: none)."""
    for p in [*reversed(path.parents), path]:
        if p.exists() and not p.is_dir():
            return p
    return None


def check_results(results_dir: Path, name: str) -> Path:
    """Checks (see the module's docstring) that a sweep can write ``results_dir/name``,
    creating nothing (the probe goes into the nearest folder that exists); returns the path."""
    check_name(name)
    directory = Path(results_dir) / name
    blocker = _first_file(directory)
    if blocker is not None:
        raise ConfigError(f"cannot make the results directory {directory}: {blocker} is a file, not a directory")
    existing = next(p for p in [directory, *directory.parents] if p.exists())
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".jbatch-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(
            f"cannot write in {existing} ({e.strerror or e}), where the results directory "
            f"{directory} goes; nothing was trained: choose another --results-dir or fix its "
            "permissions"
        ) from None
    for written in WRITTEN:
        if (directory / written).is_dir():
            raise ConfigError(f"{directory / written} is a directory; the sweep writes a file there: move it away")
    document = directory / SWEEP
    if document.exists():
        try:
            with open(document, "rb") as f:
                f.read(1)
        except OSError as e:
            raise ConfigError(f"cannot read {document} ({e.strerror or e}): the sweep would resume from it") from None
    return directory


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):  # no such process, or no such pid at all
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # no /proc (macOS): os.kill's answer stands
        return True
    return state != "Z"


def _started(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (Linux's /proc); None where unknown."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line[:5] == "btime")
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


# A lock that cannot be read as jbatch writes it is damaged once it is this old (seconds); younger,
# it may be one another sweep is writing at this moment.
DAMAGED_AFTER = 2.0


def owner(directory: Path) -> dict[str, Any] | None:
    """The lock's content (pid, host, started, command), None when there is no lock; a lock
    that cannot be parsed is ``damaged`` (what is wrong, and its ``age``); a folder in its
    place is a ``ConfigError``."""
    path = directory / LOCK
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not jbatch's lock file: remove it") from None
    except OSError as e:
        return {"damaged": f"unreadable: {e.strerror or e}", "age": 0.0}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("pid"), int) and isinstance(data.get("host"), str):
        return data
    return {"damaged": "empty" if not text.strip() else f"not jbatch's lock: {text[:40]!r}", "age": age}


def stale(info: dict[str, Any]) -> bool:
    """Whether a lock's owner is known to be gone: a damaged lock older than
    ``DAMAGED_AFTER``; on this host, no process with its pid, or one that started after the
    lock was written (the pid was reused)."""
    if "damaged" in info:
        return info["age"] > DAMAGED_AFTER
    if info.get("host") != socket.gethostname():
        return False
    pid = info["pid"]
    if not _alive(pid):
        return True
    started, began = info.get("started"), _started(pid)
    return isinstance(started, (int, float)) and began is not None and began > started + 1.0


def _describe(info: dict[str, Any]) -> str:
    if "damaged" in info:
        return f"a damaged lock ({info['damaged']})"
    started = info.get("started")
    known = isinstance(started, (int, float))
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started)) if known else ""
    return f"pid {info.get('pid')} on {info.get('host')}{when} ({info.get('command', '?')})"


def _try_lock(directory: Path) -> bool:
    path = directory / LOCK
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": time.time(),
                    "command": " ".join(["jbatch", *sys.argv[1:]])[:300],
                },
                f,
            )
    except OSError as e:  # a half-written lock would block the directory: none is left
        path.unlink(missing_ok=True)
        raise FaultError(f"cannot write the lock {path} ({e.strerror or e}); nothing was started") from None
    return True


@contextlib.contextmanager
def claim(directory: Path, wait: bool = False, poll: float = 1.0) -> Iterator[None]:
    """Holds ``directory``'s lock for the block (see the module's docstring)."""
    key = Path(os.path.abspath(directory))
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    made = [p for p in [directory, *directory.parents] if not p.exists()]  # removed again if left empty
    directory.mkdir(parents=True, exist_ok=True)
    told = False
    while not _try_lock(directory):
        info = owner(directory)
        if info is None:
            continue  # released in between
        if stale(info):
            (directory / LOCK).unlink(missing_ok=True)
            gone = "" if "damaged" in info else ", which is gone"
            print(f"jbatch: {directory / LOCK} was left by {_describe(info)}{gone}: taken over", file=sys.stderr)
            continue
        if not wait:
            raise ConfigError(
                f"another sweep is writing {directory}: {_describe(info)}; wait for it (--wait), or "
                f"remove {directory / LOCK} if that process is gone"
            )
        if not told:
            print(f"jbatch: waiting for {_describe(info)} to finish with {directory}", file=sys.stderr, flush=True)
            told = True
        time.sleep(poll)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            (directory / LOCK).unlink()
        for p in made:  # a sweep refused before it wrote anything leaves nothing behind
            with contextlib.suppress(OSError):
                p.rmdir()  # only if empty


def rescue(doc: Any, name: str, error: Exception, kept: str) -> FaultError:
    """Writes ``doc`` to the temporary directory (when it can; as plain JSON when the results
    contract refused it, so that nothing trained is lost to a writer's bug) and returns the
    one-line ``FaultError`` saying what was kept where, to raise instead of ``error``."""
    where = "nowhere else (the temporary directory failed too)"
    path = Path(tempfile.gettempdir()) / f"jbatch-rescue-{name}-{os.getpid()}.json"
    try:
        try:
            path = dump(path, doc)
        except ConfigError:  # a value the contract refuses: the bytes as they are, to mend by hand
            path = write_bytes(path, encode(doc))
        where = f"{path} (copy it over the document once it can be written, to keep this run's work)"
    except OSError:
        pass
    return FaultError(
        f"could not write the results ({getattr(error, 'strerror', None) or error}): {kept}; this run's document "
        f"is in {where}"
    )
