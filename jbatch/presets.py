"""Named sweeps: the published workloads, each with settings that every regime can meet.

``jbatch sweep`` with no arguments runs ``digits-mlp-sgd``; ``--preset NAME`` runs another.
Targets are set so that, with a good learning rate, stochastic, mini-batch and full-batch
descent all reach them within budget (checked by the published runs).
"""

from __future__ import annotations

from jbatch.config import SweepConfig

_MNIST1D = dict(
    dataset="mnist1d",
    batch_sizes=(1, 8, 64, 512, "full"),
    learning_rates=(0.01, 0.03162, 0.1, 0.3162, 1.0, 3.162),
    seeds=(0, 1),
    budget_steps=400,
    budget_epochs=5,
)

PRESETS: dict[str, SweepConfig] = {
    "digits-mlp-sgd": SweepConfig(),
    # An MLP plateaus near 65-70% test accuracy on MNIST-1D (Greydanus 2020): target 55%.
    "mnist1d-mlp-sgd": SweepConfig(model="mlp", target_value=0.55, **_MNIST1D),
    # The CNN reaches 80-90%; a full-batch CNN step is slow on CPU: a smaller grid and budget.
    "mnist1d-cnn-sgd": SweepConfig(
        model="cnn",
        target_value=0.75,
        **(_MNIST1D | {"learning_rates": (0.03162, 0.1, 0.3162, 1.0), "budget_steps": 300, "budget_epochs": 4}),
    ),  # fmt: skip
    # MNIST-1D at 40,000 training sequences (jbatch.mnist1d, the fixed 1,000-sequence test set),
    # one seed: the sweep whose evaluation cost grows with N while its training does not.
    "mnist1d40k-mlp-sgd": SweepConfig(
        dataset="mnist1d:40000", model="mlp", batch_sizes=(1, 16, 256, 4096, "full"),
        learning_rates=(0.01, 0.1, 1.0), seeds=(0,), target_value=0.6, budget_steps=300, budget_epochs=1,
    ),
}
