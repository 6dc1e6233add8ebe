"""Sampling text from a character model (``jbatch.workloads.sample``, ``jbatch train --sample``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jbatch.errors import ConfigError
from jbatch.workloads.sample import generate, sample
from jbatch.workloads.transformer import make_transformer


def greedy_by_hand(model, prompt, length, context):
    """Greedy decoding the plain way: the model on the whole (growing, then last-``context``)
    sequence, no padding, a new shape every step (compiled per shape)."""
    graphdef, state = nnx.split(model)
    logits = jax.jit(lambda state, window: nnx.merge(graphdef, state)(window))
    seq = list(prompt)
    for _ in range(length):
        window = jnp.asarray(seq[-context:], jnp.int32)[None]
        seq.append(int(jnp.argmax(logits(state, window)[0, -1])))
    return np.array(seq[len(prompt) :])


@pytest.mark.slow
def test_sample_is_the_plain_greedy_decoding_at_low_temperature():
    """The fixed, left-aligned window (then the rolled one, past the context) gives the
    model the same past as decoding the plain way: at a temperature near 0 (argmax) the
    two write the same tokens, beyond the context length."""
    context = 6
    model = make_transformer(7, context, 16, 2, 2)(3)
    prompt = np.array([1, 4, 2])
    ours = sample(model, prompt, 10, context, temperature=1e-6)
    assert ours.tolist() == greedy_by_hand(model, prompt.tolist(), 10, context).tolist()


def test_sample_draws_from_the_models_distribution():
    """At temperature 1 the tokens follow the model's softmax: a model whose logits favour
    token 2 by log 9 (90% against 10% spread over the rest) writes about 90% twos."""

    class Fixed:
        def __call__(self, tokens):
            logits = jnp.log(jnp.array([0.025, 0.025, 0.9, 0.025, 0.025]))
            return jnp.broadcast_to(logits, (*tokens.shape, 5))

    class Module(nnx.Module, Fixed):
        pass

    out = sample(Module(), np.array([0]), 2000, 4, seed=1)
    assert 0.87 < float(np.mean(out == 2)) < 0.93


def test_generate_checks_its_prompt_and_settings():
    model = make_transformer(3, 4, 8, 1, 2)(0)
    with pytest.raises(ConfigError, match="characters the vocabulary lacks: 'z'"):
        generate(model, "abc", 5, 4, prompt="az")
    with pytest.raises(ConfigError, match="temperature > 0"):
        generate(model, "abc", 5, 4, prompt="a", temperature=0.0)
    assert len(generate(model, "abc", 5, 4, prompt="ab")) == 5
