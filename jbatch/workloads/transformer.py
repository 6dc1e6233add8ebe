"""A small decoder-only transformer in Flax NNX, for next-token prediction.

Token and learned position embeddings, ``depth`` pre-LayerNorm blocks of causal
multi-head self-attention and a ReLU MLP (4x wide), a final LayerNorm and a linear head to
the vocabulary. ``[B, T]`` token ids in, ``[B, T, vocab]`` logits out; the loss is
jbatch's masked ``(sum, count)`` cross-entropy over every (real) token, so padded rows and
partial last batches stay exact, and a mean is per token.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jbatch.errors import ConfigError


class Block(nnx.Module):
    """Pre-LN: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, width: int, heads: int, *, rngs: nnx.Rngs):
        self.ln1 = nnx.LayerNorm(width, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(
            num_heads=heads, in_features=width, qkv_features=width, decode=False, rngs=rngs
        )
        self.ln2 = nnx.LayerNorm(width, rngs=rngs)
        self.up = nnx.Linear(width, 4 * width, rngs=rngs)
        self.down = nnx.Linear(4 * width, width, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln1(x), mask=mask)
        return x + self.down(jax.nn.relu(self.up(self.ln2(x))))


class Transformer(nnx.Module):
    """Decoder-only transformer: ``width``, ``depth``, ``heads`` and ``context`` are settings."""

    def __init__(self, vocab: int, context: int, width: int = 64, depth: int = 2, heads: int = 4, *, rngs: nnx.Rngs):
        if width % heads:
            raise ConfigError(f"transformer width {width} is not a multiple of its {heads} heads")
        self.context = context
        self.tokens = nnx.Embed(vocab, width, rngs=rngs)
        self.positions = nnx.Embed(context, width, rngs=rngs)
        self.blocks = nnx.List([Block(width, heads, rngs=rngs) for _ in range(depth)])
        self.ln = nnx.LayerNorm(width, rngs=rngs)
        self.head = nnx.Linear(width, vocab, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        t = tokens.shape[1]
        x = self.tokens(tokens) + self.positions(jnp.arange(t))[None]
        mask = nnx.make_causal_mask(tokens)  # [B, 1, T, T]: a position attends to itself and earlier ones
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln(x))


def make_transformer(vocab: int, context: int, width: int = 64, depth: int = 2, heads: int = 4):
    """``seed -> Transformer``: the model factory a workload takes."""
    return lambda seed: Transformer(vocab, context, width, depth, heads, rngs=nnx.Rngs(seed))


def flops_per_token(vocab: int, context: int, width: int, depth: int) -> float:
    """Training FLOPs per token: 6 per parameter touched (forward 2, backward 4) plus the
    attention scores and mixing (``12 depth T width``, Kaplan et al. 2020's approximation)."""
    per_block = 4 * width * width + 2 * 4 * width * width  # q, k, v, out; the MLP
    return 6 * (depth * per_block + width * vocab) + 12 * depth * context * width
