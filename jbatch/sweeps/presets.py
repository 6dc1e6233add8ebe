"""Named sweeps: the published workloads, each with settings that every regime can meet.

``jbatch sweep`` with no arguments runs ``digits-mlp-sgd``; ``--preset NAME`` runs another.
Targets are set so that, with a good learning rate, stochastic, mini-batch and full-batch
descent all reach them within budget (checked by the published runs).
"""

from __future__ import annotations

import numpy as np

from jbatch.config import SweepConfig

_MNIST1D = dict(
    dataset="mnist1d",
    batch_sizes=(1, 8, 64, 512, "full"),
    learning_rates=(0.01, 0.03162, 0.1, 0.3162, 1.0, 3.162),
    seeds=(0, 1),
    budget_steps=400,
    budget_epochs=5,
)


def _lm(name: str, **kw) -> SweepConfig:
    """A language-model sweep on ``markov`` (jbatch.workloads.language): the transformer, batch sizes in
    sequences of 16 tokens, the validation loss within 0.1 nats of the language's exact
    floor, warm-up and cosine decay over each batch size's budget."""
    base = dict(
        name=name,
        dataset="markov",
        model="transformer",
        batch_sizes=(1, 4, 16, 64, 256),
        seeds=(0, 1),
        target_metric="test_loss",
        target_over_floor=0.1,
        budget_steps=300,
        budget_epochs=1,
        schedule="cosine",
        warmup=0.05,
        final_fraction=0.1,
        noise_checkpoints=6,
    )
    return SweepConfig.of(**(base | kw))


_LM_ADAM = tuple(float(f"{10**e:.4g}") for e in np.arange(-3.5, -0.99, 0.5))  # 3.162e-4 ... 0.1


# nanoGPT's shakespeare_char settings (its config/train_shakespeare_char.py and README): AdamW with lr 1e-3,
# beta2 0.99, weight decay 0.1, 100 warm-up iterations, cosine decay to 1e-4 (final_fraction 0.1), a
# validation-loss target. Its CPU run is 2,000 iterations of 12 windows of 64 characters drawn at random:
# here the same 24,000 windows, fixed by a seed, so one epoch at B = 12 is that run.
_SHAKESPEARE = dict(
    dataset="shakespeare-char:64:24000",
    model="nanogpt-cpu",
    optimizer="adamw",
    b2=(0.99,),
    weight_decay=(0.1,),
    schedule="cosine",
    warmup=0.05,
    final_fraction=0.1,
    target_metric="test_loss",
    budget_epochs=1,
    extend_grid=0,
)


_ADAM_LRS = tuple(float(f"{10**e:.4g}") for e in np.arange(-4, -0.49, 0.5))  # 1e-4 ... 0.3162

PRESETS: dict[str, SweepConfig] = {
    "digits-mlp-sgd": SweepConfig(),
    # An MLP plateaus near 65-70% test accuracy on MNIST-1D (Greydanus 2020): target 55%.
    # The SGD sweeps behind the finder table (issue 33) have 3 seeds: seed 2 added to the first runs' 0 and 1.
    "mnist1d-mlp-sgd": SweepConfig.of(model="mlp", target_value=0.55, **(_MNIST1D | {"seeds": (0, 1, 2)})),
    # The CNN reaches 80-90%; a full-batch CNN step is slow on CPU: a smaller grid and budget.
    "mnist1d-cnn-sgd": SweepConfig.of(
        model="cnn",
        target_value=0.75,
        **(
            _MNIST1D
            | {
                "learning_rates": (0.03162, 0.1, 0.3162, 1.0),
                "budget_steps": 300,
                "budget_epochs": 4,
                "seeds": (0, 1, 2),
            }
        ),
    ),
    # MNIST-1D at 40,000 training sequences (jbatch.workloads.mnist1d, the fixed 1,000-sequence test set),
    # one seed: the sweep whose evaluation cost grows with N while its training does not.
    "mnist1d40k-mlp-sgd": SweepConfig.of(
        name="mnist1d40k-mlp-sgd",
        dataset="mnist1d:40000",
        model="mlp",
        batch_sizes=(1, 16, 256, 4096, "full"),
        learning_rates=(0.01, 0.1, 1.0),
        seeds=(0, 1, 2),  # intervals over seeds (one seed: every interval [0, inf]); seed 0 is the first run's
        target_value=0.6,
        budget_steps=300,
        budget_epochs=1,
    ),
    # The optimizers batch-size studies use (issue 11): momentum swept (Shallue et al. 2018 found it
    # extends perfect scaling), and Adam with beta2 as it is and rescaled to keep its half-life
    # in examples from B = 64 (Marek et al. 2025).
    "digits-mlp-momentum": SweepConfig.of(name="digits-mlp-momentum", optimizer="momentum", momentum=(0.9, 0.99)),
    "digits-mlp-adam": SweepConfig.of(name="digits-mlp-adam", optimizer="adam", learning_rates=_ADAM_LRS),
    "digits-mlp-adam-b2rule": SweepConfig.of(
        name="digits-mlp-adam-b2rule", optimizer="adam", learning_rates=_ADAM_LRS, beta2_reference=64
    ),
    "mnist1d-mlp-momentum": SweepConfig.of(
        name="mnist1d-mlp-momentum",
        model="mlp",
        target_value=0.55,
        **(_MNIST1D | {"optimizer": "momentum", "momentum": (0.9, 0.99)}),
    ),
    "mnist1d-mlp-adam": SweepConfig.of(
        name="mnist1d-mlp-adam",
        model="mlp",
        target_value=0.55,
        **(_MNIST1D | {"optimizer": "adam", "learning_rates": _ADAM_LRS[1:]}),
    ),
    # A language model (issue 13): the transformer on a Markov language whose entropy is known.
    "markov-transformer-adam": _lm("markov-transformer-adam", optimizer="adam", learning_rates=_LM_ADAM),
    "markov-transformer-adam-b2rule": _lm(
        "markov-transformer-adam-b2rule", optimizer="adam", learning_rates=_LM_ADAM, beta2_reference=64
    ),
    # for an accelerator (bench/accelerator.sh): 65,536 sequences of 128 tokens over 256 symbols, a wider
    # and deeper transformer, batch sizes up to 4,096 sequences (half a million tokens)
    "markov-large-transformer-adam": _lm(
        "markov-large-transformer-adam",
        dataset="markov-large",
        model="transformer-wide",
        optimizer="adam",
        learning_rates=_LM_ADAM,
        batch_sizes=(1, 8, 64, 512, 4096),
        seeds=(0, 1, 2),
    ),
    # nanoGPT's CPU setting as one run (B = 12, lr 1e-3, 2,000 steps; a 1.8-nat target near its end, so the
    # validation split is evaluated at every point of the curve).
    "shakespeare-char-nanogpt-cpu": SweepConfig.of(
        name="shakespeare-char-nanogpt-cpu",
        batch_sizes=(12,),
        learning_rates=(1e-3,),
        seeds=(0,),
        target_value=1.8,
        budget_steps=2000,
        evals=40,
        noise_checkpoints=3,
        noise_examples=1024,
        **_SHAKESPEARE,
    ),
    # The batch-size sweep on real text: the small transformer (width 32, 2 layers; so that 6 batch sizes x 6 runs
    # fit in about 20 minutes here: the same grid on 24,000 windows and 100 steps took 47), each batch size for at
    # least one epoch of 8,192 windows (524,288 tokens, a third of nanoGPT's CPU run) and 64 steps; B = 1,024
    # (65,536 tokens a step) is the largest that fits that time here (the full batch, 8,192, does not).
    "shakespeare-char-transformer-adamw": SweepConfig.of(
        name="shakespeare-char-transformer-adamw",
        batch_sizes=(1, 4, 16, 64, 256, 1024),
        learning_rates=(1e-3, 3.162e-3, 1e-2),
        seeds=(0, 1, 2),
        target_value=2.5,
        budget_steps=64,
        evals=20,
        noise_checkpoints=4,
        noise_examples=1024,
        **(_SHAKESPEARE | {"dataset": "shakespeare-char:64:8192", "model": "transformer", "extend_grid": 1}),
    ),
    # nanoGPT's GPU setting, for an accelerator (bench/accelerator.sh): context 256, width 384, 6 layers, 6 heads,
    # B = 64, 5,000 iterations (its 1.47 in about 3 minutes on an A100; it also has dropout 0.2, jbatch's
    # transformer none): 320,000 windows at random offsets, one epoch at B = 64.
    "shakespeare-char-nanogpt-gpu": SweepConfig.of(
        name="shakespeare-char-nanogpt-gpu",
        batch_sizes=(64,),
        learning_rates=(1e-3,),
        seeds=(0,),
        target_value=1.5,
        budget_steps=5000,
        evals=50,
        noise_checkpoints=4,
        noise_examples=4096,
        **(_SHAKESPEARE | {"dataset": "shakespeare-char:256:320000", "model": "nanogpt-gpu"}),
    ),
    # and its batch-size sweep on an accelerator: the GPU model, B from 4 to 4,096 windows of 256 characters
    # (a million tokens a step), each for an epoch of 65,536 windows and at least 200 steps.
    "shakespeare-char-nanogpt-gpu-sweep": SweepConfig.of(
        name="shakespeare-char-nanogpt-gpu-sweep",
        batch_sizes=(4, 16, 64, 256, 1024, 4096),
        learning_rates=(3.162e-4, 1e-3, 3.162e-3),
        seeds=(0, 1),
        target_value=1.8,
        budget_steps=200,
        evals=40,
        noise_checkpoints=4,
        noise_examples=4096,
        **(_SHAKESPEARE | {"dataset": "shakespeare-char:256:65536", "model": "nanogpt-gpu", "extend_grid": 2}),
    ),
    "markov-transformer-sgd": _lm(
        "markov-transformer-sgd",
        optimizer="sgd",
        learning_rates=(0.01, 0.03162, 0.1, 0.3162, 1.0, 3.162),
        seeds=(0, 1, 2),
    ),
}
