"""The data-scaling study's sweeps: MNIST-1D at nested sizes, for each model (``jbatch study data-scaling``)."""

from __future__ import annotations

from jbatch.config import SweepConfig
from jbatch.errors import ConfigError

SIZES = (4000, 16000, 64000)


MODELS = ("mlp", "cnn")


# Targets every size reaches within budget: at 4,000 sequences the MLP plateaus near 0.6-0.68 test accuracy and
# jbatch's CNN reaches 0.75-0.88 in 300-400 steps (results/mnist1d-*-sgd); higher levels are in each sweep's ladder.
TARGETS = {"mlp": 0.55, "cnn": 0.75}


GRIDS = {"mlp": (0.01, 0.03162, 0.1, 0.3162, 1.0), "cnn": (0.03162, 0.1, 0.3162, 1.0)}


def study_config(model: str, n: int, accelerator: bool = False) -> SweepConfig:
    """The sweep of ``model`` at ``n`` training sequences: sized for this 2-core CPU, or,
    with ``accelerator``, for a GPU (wider MLP, more seeds, larger batch sizes)."""
    sizes = (1, 8, 64, 512, 4096, 16384) if accelerator else (1, 8, 64, 512, 2048)  # the same B at every N
    return SweepConfig.of(
        name=f"{model}-{n}",
        dataset=f"mnist1d:{n}",
        model=model,
        widths=(512, 512) if accelerator else (256, 256),
        batch_sizes=tuple(b for b in sizes if b <= n),
        learning_rates=GRIDS[model],
        seeds=(0, 1, 2) if accelerator else (0, 1),
        target_value=TARGETS[model],
        budget_steps=400,
        budget_epochs=3,
    )


def configs(models=MODELS, sizes=SIZES, accelerator: bool = False) -> list[SweepConfig]:
    """Every sweep of the study, smallest size first; an unknown model is one clear line."""
    unknown = [m for m in models if m not in GRIDS]
    if unknown:
        raise ConfigError(
            f"the data-scaling study has no model {', '.join(map(repr, unknown))}; it runs {', '.join(MODELS)}"
        )
    return [study_config(m, n, accelerator) for m in models for n in sizes]
