"""Regenerates ``tests/data/sweep_small/sweep.json``, the small recorded sweep the claims
tests read (about 30 s): ``python -m tests.data.make_sweep_small``."""

from pathlib import Path

from jbatch.config import SweepConfig
from jbatch.workloads.data import Dataset, load_digits
from tests.helpers import sweep

CONFIG = SweepConfig.of(
    name="sweep_small",
    dataset="tiny",
    widths=(32,),
    batch_sizes=(1, 8, 32, 100, "full"),
    learning_rates=(0.03, 0.3, 3.0),
    seeds=(0, 1, 2, 3),
    target_value=0.75,
    budget_steps=60,
    budget_epochs=3,
    evals=20,
    noise_checkpoints=4,
    extend_grid=0,
)


def main() -> None:
    d = load_digits()
    tiny = Dataset(
        "tiny", d.x_train[:300], d.y_train[:300], d.x_test[:100], d.y_test[:100], task="classification", outputs=10
    )
    out = Path(__file__).parent
    (out / CONFIG.name / "sweep.json").unlink(missing_ok=True)
    sweep(CONFIG, out, tiny)


if __name__ == "__main__":
    main()
