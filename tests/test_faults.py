"""Faults of the machine and of the user, injected into the command line and the sweep (issue
25): each is found before anything trains, or costs nothing already written, and is one line
(exit 2 for bad input, 1 for a fault met after work was done, 130 for Ctrl-C), no traceback.
Ctrl-C is a real SIGINT to a real ``python -m jbatch`` process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from jbatch.errors import ConfigError, FaultError
from jbatch.sweeps import resultsdir
from jbatch.sweeps.resultsdir import LOCK, claim
from tests.helpers import run_cli, sweep, tiny_config

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["sweep", "--quick", "--seeds", "0"]


def one_clean_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and "chunks" not in line]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def refused_fast(argv, capsys, code=2):
    start = time.perf_counter()
    got, out, err = run_cli(argv, capsys)
    assert got == code, err
    assert time.perf_counter() - start < 10, "refused before the data load and any compilation"
    return one_clean_line(err)


def test_a_results_path_that_is_a_file_is_refused_before_anything_trains(tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    line = refused_fast([*QUICK, "--results-dir", str(tmp_path / "afile")], capsys)
    assert "afile is a file, not a directory" in line and (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("name", ["../escape", "/abs/escape", "a/b", ".."])
def test_a_name_is_one_path_component_and_nothing_escapes_the_results_directory(tmp_path, capsys, name):
    results = tmp_path / "results"
    line = refused_fast([*QUICK, "--name", name, "--results-dir", str(results)], capsys)
    assert "must be one path component" in line
    assert not (tmp_path / "escape").exists() and not Path("/abs/escape").exists()


def test_a_name_that_is_a_file_and_a_document_that_cannot_be_read_are_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "digits-mlp-sgd-quick").write_text("mine")  # --name (here the default) collides with a file
    line = refused_fast([*QUICK, "--results-dir", str(tmp_path)], capsys)
    assert "digits-mlp-sgd-quick is a file, not a directory" in line
    (tmp_path / "d" / "sweep.json").mkdir(parents=True)
    for argv in (["report", str(tmp_path / "d")], ["compare", str(tmp_path / "d"), str(tmp_path / "d")]):
        assert "sweep.json is a directory, not a jbatch JSON file" in refused_fast(argv, capsys)
    import jbatch.results.document

    def denied(self, *a, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(jbatch.results.document.Path, "read_bytes", denied)
    for argv in (["report", str(SMALL)], ["compare", str(SMALL), str(SMALL)]):
        line = refused_fast(argv, capsys)
        assert "cannot read" in line and "Permission denied" in line


def test_an_unwritable_results_directory_is_refused_before_anything_trains(tmp_path, capsys, monkeypatch):
    def denied(*a, **kw):  # as a read-only file system or a directory of another user answers (root ignores chmod)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(resultsdir.tempfile, "mkstemp", denied)
    line = refused_fast([*QUICK, "--results-dir", str(tmp_path)], capsys)
    assert "cannot write in" in line and "Permission denied" in line and not any(tmp_path.iterdir())


def test_a_document_that_is_a_directory_or_unreadable_is_refused_before_anything_trains(tmp_path, capsys, monkeypatch):
    directory = tmp_path / "digits-mlp-sgd-quick"
    (directory / "sweep.json").mkdir(parents=True)
    line = refused_fast([*QUICK, "--results-dir", str(tmp_path)], capsys)
    assert "sweep.json is a directory" in line
    (directory / "sweep.json").rmdir()
    (directory / "sweep.json").write_text("{}")

    def unreadable(*a, **kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(resultsdir, "open", unreadable, raising=False)
    line = refused_fast([*QUICK, "--results-dir", str(tmp_path)], capsys)
    assert "cannot read" in line and (directory / "sweep.json").read_text() == "{}"


def _lock(directory: Path, pid: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LOCK).write_text(
        json.dumps(
            {"pid": pid, "host": socket.gethostname(), "started": time.time(), "command": "jbatch sweep (the first)"}
        )
    )


def test_a_second_writer_is_refused_naming_the_first_and_a_dead_ones_lock_is_taken_over(tmp_path, capsys):
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(tmp_path / "digits-mlp-sgd-quick", first.pid)
        line = refused_fast([*QUICK, "--results-dir", str(tmp_path)], capsys)
        assert f"another sweep is writing {tmp_path / 'digits-mlp-sgd-quick'}: pid {first.pid}" in line
        assert "jbatch sweep (the first)" in line
    finally:
        first.kill()
        first.wait()
    with claim(tmp_path / "digits-mlp-sgd-quick"):  # its owner is gone: stale, taken over
        held = json.loads((tmp_path / "digits-mlp-sgd-quick" / LOCK).read_text())
        assert held["pid"] == os.getpid()
        with claim(tmp_path / "digits-mlp-sgd-quick"):  # re-entrant in one process
            pass
        assert (tmp_path / "digits-mlp-sgd-quick" / LOCK).exists()
    assert not (tmp_path / "digits-mlp-sgd-quick" / LOCK).exists()
    assert "was left by pid" in capsys.readouterr().err


def _bounded_waits(monkeypatch, polls: int = 200) -> None:
    """A ``claim(wait=True)`` that would wait for ever fails the test instead of hanging it."""
    from jbatch.sweeps import resultsdir

    calls = []

    def sleep(seconds):
        calls.append(seconds)
        if len(calls) > polls:
            raise AssertionError(f"claim(wait=True) still waiting after {polls} polls")

    monkeypatch.setattr(
        resultsdir,
        "time",
        type(
            "clock",
            (),
            {"sleep": staticmethod(sleep), "time": time.time, "strftime": time.strftime, "localtime": time.localtime},
        ),
    )


@pytest.mark.parametrize("content", ["", "garbage{", "[1, 2]", '{"pid": "x"}'])
def test_a_damaged_lock_is_taken_over_once_it_is_not_one_being_written(tmp_path, capsys, monkeypatch, content):
    _bounded_waits(monkeypatch)
    lock = tmp_path / LOCK
    lock.write_text(content)
    with pytest.raises(ConfigError, match="another sweep is writing .*a damaged lock"):
        with claim(tmp_path):  # just written: it may be another sweep's, being written
            pass
    old = time.time() - 10
    os.utime(lock, (old, old))
    with claim(tmp_path, wait=True, poll=0.01):  # before: "pid None on None (?)", and --wait waited for ever
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert "a damaged lock" in capsys.readouterr().err and not lock.exists()


def test_a_folder_in_the_locks_place_is_one_line(tmp_path, monkeypatch):
    _bounded_waits(monkeypatch)
    (tmp_path / LOCK).mkdir()
    with pytest.raises(ConfigError, match=f"{LOCK} is a folder, not jbatch's lock file: remove it"):
        with claim(tmp_path, wait=True, poll=0.01):
            pass


@pytest.mark.parametrize("case", ["reused", "overflow"])
def test_a_lock_whose_pid_was_reused_or_cannot_exist_is_stale(tmp_path, capsys, case):
    # reused: this process is alive, but it started after the lock was written; overflow: os.kill raised OverflowError
    pid, started = (os.getpid(), time.time() - 10**6) if case == "reused" else (99999999999, time.time())
    (tmp_path / LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": started}))
    with claim(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["started"] > started
    assert f"was left by pid {pid}" in capsys.readouterr().err


def test_a_lock_that_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    from jbatch.sweeps import resultsdir

    def full(*args, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(resultsdir.json, "dump", full)
    with pytest.raises(FaultError, match="cannot write the lock .*No space left on device"):
        with claim(tmp_path / "run"):
            pass
    assert not (tmp_path / "run" / LOCK).exists()  # before: an empty lock that blocked the directory


def test_a_second_writer_asked_to_wait_waits_for_the_first(tmp_path, capsys):
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    _lock(tmp_path, first.pid)
    start = time.perf_counter()
    with claim(tmp_path, wait=True, poll=0.05):
        assert first.poll() is not None and time.perf_counter() - start > 0.5
    first.wait()
    assert f"waiting for pid {first.pid}" in capsys.readouterr().err


def test_two_sweeps_started_together_on_one_directory_one_refuses(tmp_path):
    runs = [_jbatch([*QUICK, "--batch-sizes", "64", "--results-dir", str(tmp_path)], tmp_path) for _ in range(2)]
    deadline = time.time() + 120
    while all(p.poll() is None for p in runs) and time.time() < deadline:
        time.sleep(0.1)
    loser = next(p for p in runs if p.poll() is not None)
    winner = next(p for p in runs if p is not loser)
    code, err = _finish(loser, 10)
    assert code == 2 and "another sweep is writing" in one_clean_line(err)
    assert winner.poll() is None, "the first writer goes on"
    winner.send_signal(signal.SIGINT)  # no need to wait for its training
    assert _finish(winner, 60)[0] == 130


def test_a_failed_write_keeps_what_was_written_and_says_where_this_runs_work_is(tiny, tmp_path, monkeypatch):
    from jbatch.sweeps import driver

    real, calls = driver.dump, []

    def full_disk(path, doc, indent=None):
        calls.append(path)
        if len(calls) == 2:  # after the first batch size was written
            raise OSError(28, "No space left on device")
        return real(path, doc, indent)

    monkeypatch.setattr(driver, "dump", full_disk)
    cfg = tiny_config(batch_sizes=(32, 100), seeds=(0,))
    with pytest.raises(FaultError) as e:
        sweep(cfg, tmp_path, tiny)
    message = str(e.value)
    assert (
        "No space left on device" in message and "still holds batch sizes [32] (a rerun resumes from them)" in message
    )
    rescued = Path(message.split("this run's document is in ")[1].split(" (copy it")[0])
    assert list(json.loads(rescued.read_text())["batch_sizes"]) == ["32", "100"]
    on_disk = json.loads((tmp_path / cfg.results_name / "sweep.json").read_text())
    assert list(on_disk["batch_sizes"]) == ["32"]
    rescued.unlink()
    monkeypatch.setattr(driver, "dump", real)
    _, doc = sweep(cfg, tmp_path, tiny)  # the rerun resumes: B = 32 as written, B = 100 trained again
    assert msgspec.to_builtins(doc.batch_sizes["32"].replicas) == on_disk["batch_sizes"]["32"]["replicas"]


def test_the_command_line_maps_faults_and_machine_errors_to_one_line_and_exit_1(capsys, monkeypatch):
    from jbatch import cli

    def fault(args):
        raise FaultError("could not write the results (No space left on device): kept X")

    def machine(args):
        raise OSError(5, "Input/output error")

    def denied(args):
        raise PermissionError(13, "Permission denied", "/results/x/table.md")

    cases = (
        (fault, "kept X"),
        (machine, "OSError: [Errno 5] Input/output error"),
        (denied, "jbatch: error: Permission denied: /results/x/table.md"),  # was "[Errno 13] ..."
    )
    for command, want in cases:
        monkeypatch.setitem(cli.COMMANDS, "report", command)
        code, _, err = run_cli(["report", "x"], capsys)
        assert code == 1 and want in one_clean_line(err)


def test_compare_out_naming_a_file_and_a_module_that_exits_at_import_are_one_line(tmp_path, capsys, monkeypatch):
    published = Path(__file__).parent / "data" / "sweep_small"
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli(["compare", str(published), str(published), "--out", str(tmp_path / "notes.txt")], capsys)
    assert code == 2 and "is a file" in one_clean_line(err) and (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "script.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    code, _, err = run_cli(["train", "--model", "script:make", "--epochs", "1"], capsys)  # was exit 3, no word
    assert code == 2 and "called sys.exit(3)" in one_clean_line(err)


START = (
    "import os, pathlib, runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "ready = os.environ.get('JBATCH_TEST_READY'); ready and pathlib.Path(ready).touch(); "
    "sys.argv = ['jbatch', *sys.argv[1:]]; runpy.run_module('jbatch', run_name='__main__')"
)


def _jbatch(args, cwd, stdout=subprocess.DEVNULL, ready=None):
    """``python -m jbatch ARGS`` with SIGINT as a terminal gives it (a background job of a
    non-interactive shell starts with SIGINT ignored: restored first; not in a ``preexec_fn``,
    which forks this process, where jax runs threads). ``ready``: a file the child creates
    once its handler is in place, before jbatch starts."""
    env = os.environ | {"PYTHONPATH": str(ROOT)} | ({"JBATCH_TEST_READY": str(ready)} if ready else {})
    return subprocess.Popen(
        [sys.executable, "-c", START, *args],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(proc, timeout):
    """The exit code and the standard error of ``proc``, its pipes closed."""
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.mark.slow
def test_ctrl_c_mid_sweep_stops_with_one_line_exit_130_and_the_rerun_resumes_and_reports(tmp_path):
    small = ["--learning-rates", "0.1,1", "--widths", "32", "--noise-checkpoints", "0", "--extend-grid", "0"]
    args = [*QUICK, *small, "--batch-sizes", "64,256", "--results-dir", str(tmp_path)]
    document = tmp_path / "digits-mlp-sgd-quick" / "sweep.json"
    proc = _jbatch(args, tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if document.exists() and "64" in json.loads(document.read_text())["batch_sizes"]:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    start = time.time()
    code, err = _finish(proc, 60)
    assert code == 130 and time.time() - start < 30, err
    line = one_clean_line(err)
    assert "are finished and kept in" in line and "run the same command again to resume" in line
    kept = json.loads(document.read_text())["batch_sizes"]
    assert "64" in kept and not (document.parent / LOCK).exists()
    rerun = _jbatch(args, tmp_path, stdout=subprocess.PIPE)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    done = json.loads(document.read_text())["batch_sizes"]
    assert sorted(done, key=int) == ["64", "256"]
    for b in kept:  # what was finished is kept as it was
        assert done[b]["replicas"] == kept[b]["replicas"]
    # the rest of the main job's end: the tables printed, progress on stderr, the files written
    assert out.count("already in the results, skipped") == len(kept) and "| mini-batch | 256 |" in out
    assert "sweep wall time" in out and "B=256: " in err  # progress lines (not a terminal here)
    for name in ("table.md", "table.csv", "steps_to_target.png"):
        assert (document.parent / name).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_ctrl_c_during_start_up_is_one_line_and_exit_130(tmp_path, delay):
    ready = tmp_path / "ready"
    proc = _jbatch([*QUICK, "--results-dir", str(tmp_path)], tmp_path, ready=ready)
    deadline = time.time() + 60  # a loaded machine may take long to start Python: the delay counts from jbatch's start
    while not ready.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert ready.exists(), "the child never started"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    code, err = _finish(proc, 60)
    assert code == 130, err  # not 139 (a crash in the interpreter's teardown) nor a traceback
    assert one_clean_line(err).startswith("jbatch: interrupted")


def test_check_results_creates_nothing_and_a_claim_leaves_no_empty_folder(tmp_path):
    directory = resultsdir.check_results(tmp_path / "a" / "b", "name")
    assert directory == tmp_path / "a" / "b" / "name" and not (tmp_path / "a").exists()
    with pytest.raises(ConfigError, match="one path component"):
        resultsdir.check_results(tmp_path, "")
    with pytest.raises(RuntimeError, match="refused later"):  # e.g. bad hyperparameters found by the pre-check
        with claim(directory):
            assert (directory / LOCK).exists()
            raise RuntimeError("refused later")
    assert not (tmp_path / "a").exists()
    (tmp_path / "kept").mkdir()
    with claim(tmp_path / "kept"):
        (tmp_path / "kept" / "sweep.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["sweep.json"]


SMALL = ROOT / "tests" / "data" / "sweep_small"


def _damaged(tmp_path, change):
    doc = json.loads((SMALL / "sweep.json").read_text())
    change(doc)
    directory = tmp_path / "damaged"
    directory.mkdir(exist_ok=True)
    (directory / "sweep.json").write_text(json.dumps(doc))
    return directory


def test_untimed_results_say_not_timed_and_too_few_rounds_get_no_interval_or_star(tmp_path):
    from jbatch.analysis.summary import summarize, sweep_fit
    from jbatch.report.sweep import markdown_table
    from jbatch.results import read_sweep

    def table_md(directory):  # table.md as the report writes it (its plots left out)
        doc = read_sweep(directory)
        rows = summarize(doc)
        return markdown_table(doc, rows, sweep_fit(rows))

    def untimed(doc):
        for result in doc["batch_sizes"].values():
            result.pop("timing", None)

    def table(text):  # the rows, not the notes that explain the marks
        return text.split("\n\n")[0]

    text = table(table_md(_damaged(tmp_path, untimed)))
    assert "not timed" in text and "★" not in text

    def two_rounds(doc):
        doc["config"]["timing_rounds"] = 2
        for result in doc["batch_sizes"].values():
            result["timing"]["epoch_seconds"] = result["timing"]["epoch_seconds"][:2]
            result["timing"]["rounds"] = 2

    text = table(table_md(_damaged(tmp_path, two_rounds)))
    header = text.splitlines()[0]
    assert "seconds to target (no interval: 2 timing rounds)" in header and "95%" not in header and "★" not in text


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["sweep", "--dataset", "mnist1d:²"], "mnist1d:N needs a number of training examples"),
        (["study", "data-scaling", "--models", "nope"], "the data-scaling study has no model 'nope'"),
    ],
)
def test_bad_input_that_gave_a_traceback_is_one_line(tmp_path, capsys, argv, want):
    line = refused_fast([*argv, "--results-dir", str(tmp_path)], capsys)
    assert want in line and not any(tmp_path.iterdir())


def test_the_mnist1d_cache_regenerates_from_any_damage_it_can_write_over_and_says_what_it_cannot(tmp_path, capsys):
    import hashlib

    import numpy as np

    from jbatch.workloads import mnist1d

    want = mnist1d.load(100, max_train=300, directory=tmp_path).x_train
    assert "generating the MNIST-1D pool once" in capsys.readouterr().err  # said before the wait, not after
    pool = next(tmp_path.glob("*.npz"))
    garbage = b"not an npz at all"
    pool.write_bytes(garbage)  # garbage whose checksum file matches
    pool.with_suffix(".sha256").write_text(hashlib.sha256(garbage).hexdigest() + "\n")
    np.testing.assert_array_equal(mnist1d.load(100, max_train=300, directory=tmp_path).x_train, want)
    assert "cannot be used" in capsys.readouterr().err and pool.read_bytes() != garbage  # and rewritten
    pool.unlink()
    pool.mkdir()  # the cache path is a directory: regenerated, used, and the user told what to remove
    np.testing.assert_array_equal(mnist1d.load(100, max_train=300, directory=tmp_path).x_train, want)
    assert f"remove or fix {pool}" in capsys.readouterr().err
    root = tmp_path / "root-is-a-file"
    root.write_text("x")  # the cache root is a file
    np.testing.assert_array_equal(mnist1d.load(100, max_train=300, directory=root).x_train, want)
    assert "could not cache the pool" in capsys.readouterr().err and root.read_text() == "x"


def test_a_study_of_sizes_too_small_for_a_fit_is_still_written(tmp_path):
    """``jbatch study data-scaling --sizes 10``: its sweep trains but no B_crit can be fitted;
    the study's table, JSON and plot are written all the same (the plot's log axes failed)."""
    from jbatch.report.datascaling import write_study

    doc = json.loads((SMALL / "sweep.json").read_text())
    doc["batch_sizes"] = {k: v for k, v in doc["batch_sizes"].items() if k in ("1", "8")}  # 2 sizes: no fit
    (tmp_path / "mlp-10").mkdir()
    (tmp_path / "mlp-10" / "sweep.json").write_text(json.dumps(doc))
    written = write_study(tmp_path)
    assert sorted(p.name for p in written) == ["data_scaling.png", "scaling.json", "table.csv", "table.md"]
    assert "| mlp | 10 |" in (tmp_path / "table.md").read_text()


def test_compare_lists_the_batch_sizes_a_run_lacks(tmp_path, capsys):
    def without_8(doc):
        del doc["batch_sizes"]["8"]

    code, out, err = run_cli(["compare", str(SMALL), str(_damaged(tmp_path, without_8))], capsys)
    assert code == 0, err
    assert "Only in [0]: B = 8 (not compared)." in out and "| 8 |" not in out


def test_a_damaged_entry_of_the_suites_compilation_cache_is_a_miss_not_a_failure():
    """JAX writes a persistent-cache entry in place: a test process can read one that another is
    writing, or that a test killed mid-write (the suite's cache is shared, conftest.py). JAX warns and
    compiles again; the suite, which makes every warning an error, must take that warning as a miss."""
    import jax
    import jax.numpy as jnp

    cache = Path(jax.config.jax_compilation_cache_dir)

    def odd(x):
        return jnp.sin(x) * 3.0 + 0.123456789  # a program no other test compiles

    before = set(cache.glob("*"))
    jax.block_until_ready(jax.jit(odd)(jnp.ones(7)))
    written = [p for p in set(cache.glob("*")) - before if p.stat().st_size > 16]
    assert written  # it went through the cache
    for p in written:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])  # as a writer killed mid-write leaves it
    jax.clear_caches()
    assert float(jax.jit(odd)(jnp.ones(7))[0]) == pytest.approx(3 * float(jnp.sin(1.0)) + 0.123456789)
