"""The ``jbatch`` command: parses arguments and calls the library, nothing more.

Every sweep setting is a flag named by its key (``jbatch.config``); building the parser loads
no jax, and each command imports what it runs when it runs, so ``jbatch report``, ``claims``
and ``compare`` never start jax. The checks and writes of a sweep and of an advice live in
``jbatch.sweeps.api`` (which ``jbatch.sweep`` and ``jbatch.advise`` call too).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from jbatch.config import GROUPS, SweepConfig, TrainConfig, key_of, load_config_file, quick, slug
from jbatch.errors import ConfigError, FaultError, deferred_interrupts, on_sigint, one_line, reset_interrupt
from jbatch.sweeps.presets import PRESETS


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _whole(least: int):
    """An argparse type: a whole number of at least ``least`` (one clear line otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


POSITIVE, NATURAL = _whole(1), _whole(0)


def POSITIVE_FLOAT(text: str) -> float:  # noqa: N802  an argparse type, named as the others
    """An argparse type: a finite number above 0 (one clear line otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def _batch_size(text: str) -> int | str:
    """'full' stays 'full', digits become an int; anything else goes on to the library, which explains."""
    try:
        return int(text)
    except ValueError:
        return text


def _list(convert):
    def parse(text: str) -> tuple:
        items = [t.strip() for t in text.split(",") if t.strip()]
        try:
            return tuple(convert(t) for t in items)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of the right kind: {text!r}") from None

    return parse


def _target(text: str) -> tuple[str, float]:
    metric, _, value = text.partition("=")
    try:
        return metric.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"target must look like test_accuracy=0.95, got {text!r}") from None


ITEMS = {int: NATURAL, float: float, "batch": _batch_size, "positive": POSITIVE}


TRAIN_GROUPS = ("workload", "training", "grid:momentum,b2,weight_decay")  # a run: one value of each swept one


def config_flags(parser: argparse.ArgumentParser, groups: Sequence[str] = tuple(GROUPS)) -> list[str]:
    """One flag per sweep setting of ``groups`` (``"grid:momentum,b2"``: those fields only;
    and ``--name`` with every group), named by its key (``--budget-steps`` for
    ``budget.steps``), typed from its default, with the help its ``setting`` carries; no
    default, so only what the user gave overrides the config. Returns the keys."""
    fields = []
    for g in groups:
        group, _, only = g.partition(":")
        fields += [f for f in dataclasses.fields(GROUPS[group]) if not only or f.name in only.split(",")]
    if set(groups) >= set(GROUPS):
        fields.insert(0, next(f for f in dataclasses.fields(SweepConfig) if f.name == "name"))
    keys = []
    for f in fields:
        meta, key = f.metadata, key_of(f)
        kind = (
            _list(ITEMS[meta["item"]])
            if isinstance(f.default, tuple) or "item" in meta
            else (NATURAL if type(f.default) is int else type(f.default))
        )
        extra = {"choices": meta["choices"]} if "choices" in meta else {}
        text = meta.get("help", "").replace("%", "%%")  # argparse formats help with %
        parser.add_argument(
            "--" + key.replace("_", "-"), *meta.get("aliases", ()), dest=key, type=kind, help=text, **extra
        )
        keys.append(key)
    return keys


def _add_base(p: argparse.ArgumentParser, groups: Sequence[str] = tuple(GROUPS)) -> None:
    p.add_argument(
        "--preset",
        help="a named sweep whose workload and settings to start from: digits-mlp-sgd (the "
        "default), mnist1d-mlp-sgd, mnist1d-cnn-sgd, ...",
    )
    p.add_argument("--config", help="a .toml or .json file of sweep settings (flags override it)")
    p.set_defaults(config_keys=config_flags(p, groups))


def _base_config(args: argparse.Namespace, quick_run: bool = False) -> SweepConfig:
    """The ``SweepConfig`` that ``--preset``, ``--config``, ``--quick`` and the flags give."""
    if args.preset is not None and args.preset not in PRESETS:
        raise ConfigError(f"unknown preset {args.preset!r}; known: {', '.join(PRESETS)}")
    base = PRESETS[args.preset] if args.preset else SweepConfig()
    config = load_config_file(args.config, base) if args.config else base
    if quick_run:
        config = quick(config)
    flags = {key: getattr(args, key) for key in args.config_keys}
    if getattr(args, "target", None):
        flags["target_metric"], flags["target_value"] = args.target
    config = config.replace(**{k: v for k, v in flags.items() if v is not None})
    if quick_run and flags.get("name") is None:  # after the flags: named after the data, model and optimizer given
        config = config.replace(name=f"{config.results_name}-quick")
    return config


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one model and print one line per epoch (the sweep's workload and "
        "training options, at one batch size, learning rate and seed)",
    )
    _add_base(p, TRAIN_GROUPS)
    p.add_argument("--batch-size", type=_batch_size, default=32, help="a positive integer, or 'full'")
    p.add_argument("--epochs", type=POSITIVE, default=20)
    p.add_argument("--lr", type=float, default=0.1, help="learning rate")
    p.add_argument("--seed", type=NATURAL, default=0)
    p.add_argument("--devices", type=POSITIVE, default=1, help="data parallel over this many local devices")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON record of the run (default: runs/train-<dataset>-<model>-b<B>-s<seed>.json)",
    )
    p.add_argument(
        "--sample",
        type=NATURAL,
        default=0,
        metavar="N",
        help="a character data set (shakespeare-char): write N characters with the trained model",
    )
    p.add_argument("--prompt", default="\n", help="with --sample: the text to continue (default: a new line)")
    p.add_argument("--temperature", type=float, default=1.0, help="with --sample: divides the logits")


def _train(args: argparse.Namespace) -> int:
    from jbatch.results import dump
    from jbatch.sweeps.train import train_and_evaluate, train_record
    from jbatch.workloads.workload import for_config

    sweep = _base_config(args)
    config = TrainConfig.from_sweep(
        sweep,
        batch_size=args.batch_size,
        epochs=args.epochs,
        learning_rate=args.lr,
        seed=args.seed,
        devices=args.devices,
    )

    def show(e) -> None:
        acc = lambda a: "   -  " if a is None else f"{a:6.4f}"  # noqa: E731
        print(
            f"epoch {e.epoch:3d}  iterations {e.iterations:5d}  train loss {e.train_loss:.4f}"
            f" acc {acc(e.train_accuracy)}  test loss {e.test_loss:.4f} acc {acc(e.test_accuracy)}"
            f"  {e.seconds:.3f}s",
            flush=True,
        )

    workload = for_config(sweep)
    prompt = args.prompt.encode().decode("unicode_escape")  # --prompt '\n' is a new line, as the default
    vocab = (workload.data.info or {}).get("vocab")
    if args.sample and vocab is None:
        raise ConfigError(
            f"--sample needs a character data set (shakespeare-char); {sweep.workload.dataset} has no vocabulary"
        )
    if args.sample and (not args.temperature > 0 or set(prompt) - set(vocab)):
        raise ConfigError(
            f"--sample needs a temperature > 0 (got {args.temperature}) and a prompt of the "
            f"vocabulary's characters (got {prompt!r})"
        )
    result = train_and_evaluate(config, on_epoch=show, workload=workload)
    record = train_record(result)
    for line in result.inexact:
        print(f"not exact: {line}")
    if args.sample:
        from jbatch.workloads.sample import generate

        text = generate(
            result.state.model(),
            vocab,
            args.sample,
            workload.data.info["context"],
            prompt,
            config.seed,
            args.temperature,
        )
        record.sample = {
            "prompt": prompt,
            "characters": args.sample,
            "temperature": args.temperature,
            "seed": config.seed,
            "text": text,
        }
        print(f"sample ({args.sample} characters, temperature {args.temperature}, seed {config.seed}):\n{prompt}{text}")
    w = config.workload
    out = args.out or Path("runs") / f"train-{slug(w.dataset)}-{slug(w.model)}-b{result.batch_size}-s{config.seed}.json"
    dump(out, record, indent=1)
    print(f"compile {result.compile_seconds['epoch']:.2f}s (epoch), wrote {out}")
    return 0


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="measure convergence across batch sizes and publish tables under results/")
    _add_base(p)
    p.add_argument("--target", type=_target, help="both target settings at once: test_accuracy=0.95 or train_loss=0.05")
    p.add_argument("--quick", action="store_true", help="one seed, 4 learning rates, short budgets (< 1 min)")
    p.add_argument("--force", action="store_true", help="redo batch sizes already in the results")
    p.add_argument(
        "--results-dir",
        type=Path,
        default=Path("runs"),
        help="where <name>/ goes (default runs/; the published tables are under results/)",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="if another sweep is writing the same directory, wait for it instead of refusing",
    )
    p.add_argument("--coordinator", help="multi-process sweep: host:port of process 0's coordinator")
    p.add_argument("--num-processes", type=POSITIVE, default=1, help="multi-process sweep: how many processes")
    p.add_argument("--process-id", type=NATURAL, default=0, help="multi-process sweep: this process's index")
    p.add_argument(
        "--barrier-timeout",
        type=float,
        default=24 * 3600.0,
        help="multi-process sweep: seconds a process waits for the others (default 24 h)",
    )


def _sweep(args: argparse.Namespace) -> int:
    from jbatch.results.records import failure_lines
    from jbatch.sweeps.api import run_sweep_config

    config = _base_config(args, quick_run=args.quick)
    processes = None
    if args.num_processes > 1:
        from jbatch.sweeps.distributed import initialize

        if not args.coordinator:
            raise ConfigError("a multi-process sweep needs --coordinator host:port")
        if not 0 <= args.process_id < args.num_processes:
            raise ConfigError(f"--process-id must be in [0, {args.num_processes}), got {args.process_id}")
        processes = initialize(args.coordinator, args.num_processes, args.process_id, args.barrier_timeout)
    start = time.perf_counter()
    directory, doc = run_sweep_config(
        config,
        args.results_dir,
        force=args.force,
        wait=args.wait,
        processes=processes,
        fit_batch_sizes=args.quick and args.batch_sizes is None,
    )
    if processes is not None and processes.index != 0:
        print(f"process {processes.index}: done; process 0 merges the results into {directory}/")
        return 0
    print((directory / "table.md").read_text())
    print(f"sweep wall time {time.perf_counter() - start:.1f}s; results in {directory}/")
    failed = failure_lines(doc)
    if failed:  # the training is kept, but the table lacks what failed: said last, and in the exit status
        for line in failed:
            print(f"jbatch: {line}", file=sys.stderr)
        print(
            f"jbatch: {len(failed)} measurement(s) failed after training (recorded under `failures` in "
            f"{directory}/sweep.json and noted in table.md); the training is kept",
            file=sys.stderr,
        )
        return 1
    return 0


def _add_advise(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "advise",
        help="recommend a batch size (and a batch-size warm-up) from timing rounds and "
        "branched short runs, at a fraction of a sweep's cost; the trunk's learning "
        "rate is the grid's best short run",
    )
    _add_base(p)
    p.add_argument(
        "--trunk-batch",
        type=POSITIVE,
        default=None,
        help="the small batch size of the one run that is branched (default: the smallest candidate)",
    )
    p.add_argument("--trunk-steps", type=POSITIVE, default=200, help="steps of that run (default 200)")
    p.add_argument("--checkpoints", type=POSITIVE, default=4, help="branching points along it, log-spaced")
    p.add_argument(
        "--examples",
        type=POSITIVE,
        default=None,
        help="examples each branch trains (default: 4 x the largest branch batch size)",
    )
    p.add_argument(
        "--multipliers",
        type=_list(int),
        default=(1, 2, 4, 8, 16, 32, 64),
        help="branch batch sizes as multiples of the trunk's, starting at 1 (default 1,2,4,...,64)",
    )
    p.add_argument("--tolerance", type=float, default=0.05, help="relative loss tolerance of a branch (0.05)")
    p.add_argument(
        "--lr-factors",
        type=_list(float),
        default=(1.0, 0.5, 0.25),
        help="each larger branch tries the rule's learning rate times these and keeps its best",
    )
    p.add_argument(
        "--rule",
        default=None,
        choices=("constant", "sqrt", "linear"),
        help="the branches' learning rate from the trunk's (default: linear for sgd and momentum, sqrt for the others)",
    )
    p.add_argument(
        "--against",
        type=Path,
        help="a finished sweep of the same workload to check the advice against "
        "(and to train the warm-up to its target beside its fastest B)",
    )
    p.add_argument("--no-warmup-check", action="store_true", help="with --against: do not train the warm-up")
    p.add_argument(
        "--memory-cap",
        type=POSITIVE_FLOAT,
        default=None,
        metavar="GIB",
        help="on a CPU, the memory a batch may plan (XLA's plan of a training step) in GiB: larger batch sizes are "
        "not advised (an accelerator's memory is probed by running a step)",
    )
    p.add_argument("--results-dir", type=Path, default=Path("runs"), help="where advise-<name>/ goes (default runs/)")


def _advise(args: argparse.Namespace) -> int:
    from jbatch.report.advice import markdown
    from jbatch.sweeps.api import run_advice_config

    config = _base_config(args)
    doc = run_advice_config(
        config,
        args.results_dir,
        trunk_batch=args.trunk_batch,
        trunk_steps=args.trunk_steps,
        against=args.against,
        checkpoints=args.checkpoints,
        examples=args.examples,
        multipliers=args.multipliers,
        tolerance=args.tolerance,
        rule=args.rule,
        lr_factors=args.lr_factors,
        check=not args.no_warmup_check,
        memory_cap=None if args.memory_cap is None else args.memory_cap * 2**30,
        say=lambda line: print(line, file=sys.stderr, flush=True),  # progress, as the sweep's
    )
    print(markdown(doc))
    print(f"wrote {args.results_dir / f'advise-{config.results_name}'}/advise.json and advise.md")
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="regenerate a results directory's tables and plots from its JSON")
    p.add_argument("directory", type=Path, nargs="?", help="a sweep's (or an advice's) results directory")
    p.add_argument("--benchmark", type=Path, help="a pytest-benchmark JSON of bench/ to tabulate instead")
    p.add_argument("--out", type=Path, default=Path("results/throughput"), help="where --benchmark writes")


def _report(args: argparse.Namespace) -> int:
    from jbatch.report import regenerate

    if args.benchmark is None and args.directory is None:
        raise ConfigError("report needs a results directory, or --benchmark FILE")
    for path in regenerate(args.directory, benchmark=args.benchmark, out=args.out):
        print(f"wrote {path}")
    return 0


def _add_claims(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("claims", help="verdicts on the tutorial's claims C1-C11 from sweep results")
    p.add_argument(
        "directories",
        type=Path,
        nargs="*",
        help="sweep results directories, primary workload first (default: the published ones)",
    )
    p.add_argument(
        "--advice",
        type=Path,
        nargs="*",
        default=None,
        help="advice directories run --against a sweep (default: every results/advise-*/, the presets' first)",
    )
    p.add_argument(
        "--c11",
        type=Path,
        default=None,
        help="claim C11's demonstration, a c11.json of bench/c11.py (default: results/c11/c11.json if it exists)",
    )
    p.add_argument("--out", type=Path, default=Path("results/claims.md"))


def _claims(args: argparse.Namespace) -> int:
    from jbatch.report.claims import published, write_claims

    sweeps, advice, demo = published("results")
    directories = args.directories or sweeps
    if not directories:
        raise ConfigError("no sweep results found: run `jbatch sweep` first, or name the directories")
    advice = args.advice if args.advice is not None else advice
    demo = args.c11 or demo
    print(f"wrote {write_claims(directories, args.out, advice, demo)}")
    return 0


def _add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="a family of sweeps: data-scaling (B_crit against the training-set size)")
    p.add_argument("kind", choices=("data-scaling",))
    p.add_argument("--models", type=_list(str), default=("mlp", "cnn"), help="mlp, cnn")
    p.add_argument(
        "--sizes", type=_list(POSITIVE), default=(4000, 16000, 64000), help="training sequences, e.g. 4000,16000"
    )
    p.add_argument("--accelerator", action="store_true", help="the GPU-sized sweeps (wider, more seeds, larger B)")
    p.add_argument("--results-dir", type=Path, default=Path("results/data-scaling"))
    p.add_argument("--force", action="store_true", help="redo batch sizes already in the results")


def _study(args: argparse.Namespace) -> int:
    from jbatch.report.datascaling import write_study
    from jbatch.sweeps.api import run_sweep_config
    from jbatch.sweeps.studies import configs

    for cfg in configs(tuple(args.models), tuple(args.sizes), args.accelerator):
        start = time.perf_counter()
        run_sweep_config(cfg, args.results_dir, force=args.force)
        print(f"{cfg.name}: {time.perf_counter() - start:.1f}s", flush=True)
    for path in write_study(args.results_dir):
        print(f"wrote {path}")
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="sweeps (or benchmark JSONs) of one workload side by side, with intervals")
    p.add_argument("runs", type=Path, nargs="+", help="two or more sweep directories, or pytest-benchmark JSON files")
    p.add_argument("--out", type=Path, help="also write compare.md (and the plot) into this directory")
    p.add_argument("--csv", action="store_true", help="with --out: also compare.csv")


def _compare(args: argparse.Namespace) -> int:
    from jbatch.report.compare import compare

    print(compare(args.runs, args.out, args.csv), end="")
    return 0


def _add_site(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "site",
        help="build a static results site (every sweep, advice, the claims, the benchmarks, the guide and the API) "
        "from the JSON; it works offline: open OUT/index.html or serve it (needs pip install -e '.[site]')",
    )
    p.add_argument("--results", type=Path, default=Path("results"), help="the results directory (default results/)")
    p.add_argument("--out", type=Path, default=Path("site"), help="where the site goes (default site/)")
    p.add_argument("--docs", type=Path, default=Path("docs"), help="the guide's pages (default docs/, when present)")


def _site(args: argparse.Namespace) -> int:
    from jbatch.site.build import build_site

    built = build_site(args.results, args.out, args.docs)
    print(f"wrote {len(built['pages'])} pages to {args.out}/ in {built['seconds']:.1f} s; open {args.out}/index.html")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jbatch", description="Batch-size benchmarks for JAX training.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_train, _add_sweep, _add_report, _add_claims, _add_compare, _add_study, _add_advise, _add_site):
        add(sub)
    return parser


JAX_COMMANDS = ("train", "sweep", "study", "advise")  # report, claims, compare and site never start jax
COMMANDS = {
    "train": _train,
    "sweep": _sweep,
    "report": _report,
    "claims": _claims,
    "compare": _compare,
    "study": _study,
    "advise": _advise,
    "site": _site,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jbatch``; returns the exit code: 2 for bad input, 1 for a fault of
    the machine (one line each), 130 for Ctrl-C (one line: what is kept, how to resume)."""
    previous, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    if previous is signal.default_int_handler:  # not when started with SIGINT ignored (a background job)
        signal.signal(signal.SIGINT, on_sigint)

        def unraisable(info, hook=hook):  # a Ctrl-C dropped in a callback (jax's gc hook): raised again later
            if not issubclass(info.exc_type, KeyboardInterrupt):
                hook(info)

        sys.unraisablehook = unraisable
    try:
        args = build_parser().parse_args(argv)
        if args.command in JAX_COMMANDS:
            with deferred_interrupts():  # jax's native modules and backend, not cut off mid-initialisation
                import jax

                if getattr(args, "num_processes", 1) == 1:  # several processes start the backend after their handshake
                    jax.devices()
        return COMMANDS[args.command](args)
    except ConfigError as e:
        print(f"jbatch: error: {e}", file=sys.stderr)
        return 2
    except FaultError as e:
        print(f"jbatch: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(
            f"jbatch: interrupted: {e}" if str(e) else "jbatch: interrupted; nothing was left half-written",
            file=sys.stderr,
        )
        return 130
    except OSError as e:  # a fault of the machine no check could foresee: one line, not a traceback
        what = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else one_line(e)
        print(f"jbatch: error: {what}", file=sys.stderr)
        return 1
    finally:
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = hook
        reset_interrupt()


def entry() -> NoReturn:
    """The ``jbatch`` console script: ``main``, then an exit that skips the interpreter's
    teardown after Ctrl-C (compiler threads cut off mid-compilation can crash it: exit 139
    instead of 130); a Ctrl-C while jbatch is still being imported is the same one line."""
    try:
        code = main()
    except KeyboardInterrupt:
        print("jbatch: interrupted; nothing was left half-written", file=sys.stderr)
        code = 130
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    entry()
