"""The ``jbatch`` command: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from jbatch.errors import ConfigError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must be comma-separated integers, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive integers, got {text!r}")
    return widths


def _batch_size(text: str) -> int | str | None:
    """'full' -> None, digits -> int; anything else goes on to the library, which explains."""
    if text == "full":
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _add_train(sub: argparse._SubParsersAction) -> None:
    from jbatch.data import DATASETS
    from jbatch.model import MODELS
    from jbatch.optim import OPTIMIZERS

    p = sub.add_parser("train", help="train one model and print one line per epoch")
    p.add_argument("--dataset", default="digits", help=f"{', '.join(DATASETS)}, or an .npz file")
    p.add_argument("--model", default="mlp", help=", ".join(MODELS))
    p.add_argument("--batch-size", type=_batch_size, default=32, help="a positive integer, or 'full'")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.1, help="learning rate")
    p.add_argument("--optimizer", default="sgd", help=", ".join(OPTIMIZERS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--remainder",
        default="keep",
        choices=("keep", "drop"),
        help="keep (Keras) or drop the partial last batch",
    )
    p.add_argument("--widths", type=_widths, default=(256, 256), help="MLP hidden widths, e.g. 256,256")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON record of the run (default: runs/train-<dataset>-<model>-b<B>-s<seed>.json)",
    )


def _train(args: argparse.Namespace) -> int:
    from jbatch.record import train_record
    from jbatch.store import write_json
    from jbatch.train import TrainConfig, train_and_evaluate

    config = TrainConfig(
        dataset=args.dataset,
        model=args.model,
        batch_size=args.batch_size,
        epochs=args.epochs,
        learning_rate=args.lr,
        optimizer=args.optimizer,
        seed=args.seed,
        remainder=args.remainder,
        widths=args.widths,
    )

    def show(e) -> None:
        acc = lambda a: "   -  " if a is None else f"{a:6.4f}"  # noqa: E731
        print(
            f"epoch {e.epoch:3d}  iterations {e.iterations:5d}  train loss {e.train_loss:.4f}"
            f" acc {acc(e.train_accuracy)}  test loss {e.test_loss:.4f} acc {acc(e.test_accuracy)}"
            f"  {e.seconds:.3f}s",
            flush=True,
        )

    result = train_and_evaluate(config, on_epoch=show)
    out = args.out or Path("runs") / (
        f"train-{Path(config.dataset).stem}-{config.model}-b{result.batch_size}-s{config.seed}.json"
    )
    write_json(out, train_record(result))
    print(f"compile {result.compile_seconds['epoch']:.2f}s (epoch), wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jbatch", description="Batch-size benchmarks for JAX training.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    return parser


COMMANDS = {"train": _train}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jbatch``; returns the exit code (2 for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as e:
        print(f"jbatch: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
