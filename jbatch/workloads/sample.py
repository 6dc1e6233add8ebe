"""Text from a trained character model: ``sample`` continues a prompt one token at a time
(temperature sampling) in one compiled ``lax.scan``; ``generate`` does it in characters.

The model sees a fixed window of its ``context`` tokens: the prompt and what it has written,
left-aligned while shorter than the window (causal attention: the padding to the right of
the last token changes nothing before it), then the latest ``context`` tokens. One shape,
one compilation, whatever the length.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jbatch.core.engine import compile_program
from jbatch.errors import ConfigError


def sample(
    model: nnx.Module, prompt: np.ndarray, length: int, context: int, seed: int = 0, temperature: float = 1.0
) -> np.ndarray:
    """``length`` tokens that ``model`` (tokens ``[1, context]`` -> logits ``[1, context, V]``,
    in the mode it is given: eval mode for a trained model) writes after ``prompt`` (ids, at
    least one); the last ``context`` tokens of a longer prompt are kept.

    Examples:
      >>> from jbatch.workloads.transformer import make_transformer
      >>> out = sample(make_transformer(5, 8, 16, 1, 2)(0), np.array([1, 2]), 20, 8)
      >>> out.shape, bool(((out >= 0) & (out < 5)).all())
      ((20,), True)
    """
    prompt = np.asarray(prompt, np.int32).reshape(-1)[-context:]
    if prompt.size == 0 or length < 1 or not temperature > 0:
        raise ConfigError(
            f"sampling needs a prompt, a length >= 1 and a temperature > 0; got {prompt.size} "
            f"prompt tokens, length {length}, temperature {temperature}"
        )
    graphdef, state = nnx.split(model)

    def run(state, buffer, n, key):
        net = nnx.merge(graphdef, state)

        def one(carry, _):
            buffer, n, key = carry
            logits = net(buffer[None])[0, jnp.minimum(n, context) - 1]
            key, sub = jax.random.split(key)
            token = jax.random.categorical(sub, logits / temperature).astype(jnp.int32)
            shifted = jnp.roll(buffer, -1).at[context - 1].set(token)
            buffer = jnp.where(n >= context, shifted, buffer.at[jnp.minimum(n, context - 1)].set(token))
            return (buffer, n + 1, key), token

        return jax.lax.scan(one, (buffer, n, key), None, length=length)[1]

    buffer = np.zeros(context, np.int32)
    buffer[: prompt.size] = prompt
    args = (state, jnp.asarray(buffer), jnp.asarray(prompt.size, jnp.int32), jax.random.key(seed))
    return np.asarray(compile_program(run, *args)(*args))


def generate(
    model: nnx.Module,
    vocab: str,
    length: int,
    context: int,
    prompt: str = "\n",
    seed: int = 0,
    temperature: float = 1.0,
) -> str:
    """``length`` characters after ``prompt`` from a character model over ``vocab`` (the data
    set's ``info["vocab"]``: character ``i`` is token ``i``)."""
    unknown = sorted(set(prompt) - set(vocab))
    if unknown:
        raise ConfigError(f"the prompt has characters the vocabulary lacks: {''.join(unknown)!r}")
    ids = np.array([vocab.index(c) for c in prompt], np.int32)
    return "".join(vocab[int(i)] for i in sample(model, ids, length, context, seed, temperature))
