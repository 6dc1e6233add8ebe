"""Reading and writing results documents: ``load`` validates once, ``dump`` writes atomically.

``load`` turns anything it cannot use into one ``ConfigError`` line that names the file and
the field: not JSON, another kind of document, a newer schema than this jbatch knows, a
missing or misspelt field, a value of the wrong type or out of range. An older schema is
migrated on load (``migrate``), so the documents published by earlier versions load as
they are. Every writer goes through ``dump``, which encodes a record and checks that what it
wrote loads again, so a document on disk is always one that every reader accepts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from jbatch.config import GROUPS, KEYS, SweepConfig, TrainConfig, key_of
from jbatch.errors import ConfigError
from jbatch.results.records import (
    KINDS,
    SCHEMA_VERSION,
    AdviceDocument,
    BenchmarkDocument,
    Document,
    SweepDocument,
)
from jbatch.store import write_bytes

T = TypeVar("T")
SWEEP = "sweep.json"  # a sweep's document in its results directory
ADVICE = "advise.json"


def _plain(obj: Any) -> Any:
    """NumPy and JAX scalars and arrays as JSON values (the encoder's hook)."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"a results document holds plain values only, not a {type(obj).__name__}")


def encode(record: Any, indent: int | None = None) -> bytes:
    """``record`` as JSON bytes (non-finite floats become null); ``indent`` pretty-prints."""
    data = msgspec.json.encode(record, enc_hook=_plain)
    return (msgspec.json.format(data, indent=indent) if indent else data) + b"\n"


def dump(path: str | Path, record: Any, indent: int | None = None) -> Path:
    """Writes ``record`` (a document of ``records``) to ``path`` atomically, after checking
    that the bytes load back as the same kind of document (a value that JSON cannot carry,
    such as NaN where a number is required, is refused here, before anything is written)."""
    data = encode(record, indent)
    decode(data, type(record), where=str(path))
    return write_bytes(path, data)


def read(path: str | Path) -> bytes:
    """A file's bytes; a missing, unreadable or directory path is a ``ConfigError`` naming it."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a jbatch JSON file") from None
    except OSError as e:  # permissions, an I/O error: named, in one line
        raise ConfigError(f"cannot read {path} ({e.strerror or e})") from None


def load(path: str | Path, kind: type[T] | None = None) -> T:
    """The document at ``path``, validated (and migrated from an older schema); ``kind`` is
    the record expected (``SweepDocument``, ...), else any jbatch document or a
    pytest-benchmark file. Anything else is one ``ConfigError`` line naming the file."""
    return decode(read(path), kind, where=str(path))


def decode(data: bytes, kind: type[T] | None = None, where: str = "the document") -> T:
    """``load`` of bytes already read (``where`` names them in errors)."""
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError as e:
        raise ConfigError(f"{where} is not valid JSON ({e}); it was left untouched") from None
    return convert(obj, kind, where)


def convert(obj: Any, kind: type[T] | None = None, where: str = "the document") -> T:
    """``decode`` of a JSON value already parsed (a document built in Python, a test's)."""
    if not isinstance(obj, dict):
        raise ConfigError(f"{where} is not a jbatch results document (it holds a {type(obj).__name__})")
    cls = kind or _kind_of(obj, where)
    if cls is BenchmarkDocument:
        if "benchmarks" not in obj or "machine_info" not in obj:
            raise ConfigError(f"{where} is not a pytest-benchmark JSON file (no 'benchmarks' / 'machine_info')")
    elif issubclass(cls, Document):
        tag = cls.__struct_config__.tag
        if obj.get("kind") != tag:
            raise ConfigError(f"{where} is not a {describe(cls)} (its kind is {obj.get('kind')!r}, not {tag!r})")
        version = obj.get("schema_version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ConfigError(f"{where} is damaged: its schema_version is {version!r}; it was left untouched")
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{where} follows results schema {version}, newer than this jbatch's {SCHEMA_VERSION}: "
                "upgrade jbatch to read it"
            )
        obj = migrate(obj, version)
    try:
        return msgspec.convert(obj, cls)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{where} is damaged: {_field_error(_locate(obj, cls, e))}; it was left untouched") from None


def _locate(obj: dict[str, Any], cls: type, error: msgspec.ValidationError) -> msgspec.ValidationError:
    """msgspec names a mapping's entries ``[...]``; a document's batch sizes are named by
    their key instead (``batch_sizes.8.batch_size``), found by checking them one by one."""
    if "batch_sizes[...]" not in str(error) or not isinstance(obj.get("batch_sizes"), dict):
        return error
    entry = {f.name: f.type for f in msgspec.structs.fields(cls)}.get("batch_sizes")
    for key, value in obj["batch_sizes"].items():
        try:
            msgspec.convert({key: value}, entry)
        except msgspec.ValidationError as e:
            return msgspec.ValidationError(str(e).replace("`$[...]", f"`$.batch_sizes.{key}"))
    return error


def describe(cls: type) -> str:
    names = {
        SweepDocument: "jbatch sweep document",
        AdviceDocument: "jbatch advice document",
        BenchmarkDocument: "pytest-benchmark JSON file",
    }
    return names.get(cls, f"jbatch {cls.__struct_config__.tag} document")


def _kind_of(obj: dict[str, Any], where: str) -> type:
    if obj.get("kind") in KINDS:
        return KINDS[obj["kind"]]
    if "benchmarks" in obj and "machine_info" in obj:
        return BenchmarkDocument
    raise ConfigError(
        f"{where} is not a jbatch results document (kind {obj.get('kind')!r}; known: "
        f"{', '.join(KINDS)}, or a pytest-benchmark file)"
    )


def _field_error(e: msgspec.ValidationError) -> str:
    """msgspec's ``Expected `int`, got `str` - at `$.batch_sizes.1.batch_size``` as
    ``batch_sizes.1.batch_size: expected int, got str``."""
    text = str(e)
    message, _, path = text.partition(" - at `$")
    message = message[:1].lower() + message[1:]
    return f"{path.rstrip('`').lstrip('.')}: {message}" if path else message


# Schema migrations: each takes a document of version v (a JSON value) to v + 1.


def _flat_to_groups(flat: dict[str, Any]) -> dict[str, Any]:
    """Schema 1's flat sweep config in schema 2's groups (a key this jbatch no longer has is dropped)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in KEYS:
            continue
        group, name = KEYS[key]
        if key == "batch_sizes" and isinstance(value, list):
            value = ["full" if b is None else b for b in value]
        (out if group is None else out.setdefault(group, {}))[name] = value
    return out


_TRAIN_GROUPS = {f.name: g for g in ("workload", "training") for f in dataclasses.fields(GROUPS[g])}


def _train_to_groups(flat: dict[str, Any]) -> dict[str, Any]:
    """Schema 1's flat ``TrainConfig`` in its groups."""
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if key in _TRAIN_GROUPS:
            out.setdefault(_TRAIN_GROUPS[key], {})[key] = value
        elif key in top:
            out[key] = "full" if key == "batch_size" and value is None else value
    return out


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    config = doc.get("config")
    if isinstance(config, dict):
        if doc.get("kind") in ("jbatch.sweep", "jbatch.advise"):
            doc["config"] = _flat_to_groups(config)
        elif doc.get("kind") == "jbatch.train":
            doc["config"] = _train_to_groups(config)
    return doc


MIGRATIONS = {1: _v1_to_v2}


def migrate(doc: dict[str, Any], version: int) -> dict[str, Any]:
    """``doc`` of schema ``version`` brought to the current schema."""
    while version < SCHEMA_VERSION:
        doc = MIGRATIONS[version](doc)
        version += 1
    return doc | {"schema_version": version}


# What documents have in common


def read_sweep(directory: str | Path, *, finished: bool = True) -> SweepDocument:
    """The sweep document of a results ``directory``; ``finished``: refuse one that holds
    no finished batch size yet (nothing to report on)."""
    path = Path(directory) / SWEEP
    doc = load(path, SweepDocument)
    if finished and not doc.batch_sizes:
        raise ConfigError(f"{path} holds no finished batch size yet")
    return doc


def read_advice(directory: str | Path) -> AdviceDocument:
    return load(Path(directory) / ADVICE, AdviceDocument)


WORKLOAD = tuple(f.name for f in dataclasses.fields(GROUPS["workload"]))  # what "the same workload" compares
TARGET = ("metric", "value")


def differences(a: Any, b: Any, *, target: bool = True, optimizer: bool = True) -> list[str]:
    """The settings in which two documents' workloads differ, by flat key (empty: the same
    workload): the ``workload`` group (without the optimizer when ``optimizer`` is False),
    and the target when ``target``. ``a`` and ``b`` are sweep or advice documents, or a
    ``SweepConfig`` (a run about to start). Two data sets under different names whose arrays
    are the same (an ``.npz`` file, arrays passed in Python) are the same data set; sweeps of
    different training-set sizes differ in ``num_train``."""
    ca, cb = (x if isinstance(x, SweepConfig) else x.config for x in (a, b))
    names = [n for n in WORKLOAD if optimizer or n != "optimizer"]
    fields = [(ca.workload, cb.workload, n, key_of(_field("workload", n))) for n in names]
    if target:
        fields += [(ca.target, cb.target, n, key_of(_field("target", n))) for n in TARGET]
    out = [key for x, y, name, key in fields if getattr(x, name) != getattr(y, name)]
    sha = [getattr(d, "data_sha256", None) for d in (a, b)]
    if "dataset" in out and sha[0] and sha[0] == sha[1]:
        out.remove("dataset")
    n = [getattr(d, "num_train", None) for d in (a, b)]
    if None not in n and n[0] != n[1]:
        out.append("num_train")
    return out


def _field(group: str, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(GROUPS[group]) if f.name == name)
