"""A synthetic language whose entropy is known exactly: a seeded random Markov chain of
order ``k`` over a small vocabulary, with sparse, Zipf-distributed transitions.

Each context (the last ``k`` tokens) allows ``branching`` next tokens, drawn at random,
with probabilities proportional to ``1 / rank ** zipf``. The chain's entropy rate, in nats
per token, is ``sum_c pi(c) H(next | c)`` with ``pi`` the stationary distribution over
contexts (power iteration): no model can do better on average. A sequence of ``L`` tokens
predicted from its own prefix cannot reach the rate at its first ``k`` positions (their
context is cut); ``floor`` is the exact best mean loss over the ``L`` predicted positions
of sequences drawn from the stationary chain, the target a language-model sweep aims at.

``make_language`` samples train and validation streams from it, cut into sequences of
``L + 1`` tokens (inputs: the first ``L``, targets: the last ``L``), and returns a
``Dataset`` whose ``info`` carries the entropy rate and the floor.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from jbatch.errors import ConfigError
from jbatch.workloads.data import Dataset


@dataclasses.dataclass(frozen=True)
class Language:
    """A Markov chain of order ``order`` over ``vocab`` tokens: ``next_tokens[c]`` and
    ``next_probs[c]`` list the allowed next tokens of context index ``c`` (the last
    ``order`` tokens in base ``vocab``) and their probabilities."""

    vocab: int
    order: int
    next_tokens: np.ndarray  # [contexts, branching] int
    next_probs: np.ndarray  # [contexts, branching] float64, rows sum to 1

    @property
    def contexts(self) -> int:
        return self.vocab**self.order

    def stationary(self, iterations: int = 10_000, tol: float = 1e-13) -> np.ndarray:
        """The stationary distribution over contexts (power iteration from uniform, over
        the sparse transitions: contexts x branching terms a step, never a dense matrix)."""
        shift = self.vocab ** (self.order - 1)
        src = np.repeat(np.arange(self.contexts), self.next_tokens.shape[1])
        dst = (src % shift) * self.vocab + self.next_tokens.reshape(-1)
        w = self.next_probs.reshape(-1)
        pi = np.full(self.contexts, 1 / self.contexts)
        for _ in range(iterations):
            nxt = np.bincount(dst, weights=pi[src] * w, minlength=self.contexts)
            if np.abs(nxt - pi).sum() < tol:
                return nxt
            pi = nxt
        return pi

    def row_entropies(self) -> np.ndarray:
        q = self.next_probs
        return -np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0.0), axis=1)

    def entropy_rate(self) -> float:
        """Nats per token: ``sum_c pi(c) H(next | c)``."""
        return float(self.stationary() @ self.row_entropies())

    def floor(self, length: int) -> float:
        """The best mean loss over positions 1..``length`` of a sequence started from the
        stationary chain and predicted from its own prefix: ``H(x_t | x_<t)`` for each
        ``t`` (the rate once ``t >= order``), averaged."""
        pi = self.stationary()
        rate = float(pi @ self.row_entropies())
        terms = []
        for t in range(1, length + 1):
            if t >= self.order:
                terms.append(rate)
                continue
            terms.append(self._entropy(t + 1, pi) - self._entropy(t, pi))  # H(x_0..x_t) - H(x_0..x_{t-1})
        return float(np.mean(terms))

    def _entropy(self, n: int, pi: np.ndarray) -> float:
        """Joint entropy of the first ``n <= order`` tokens of the stationary chain: a
        marginal of ``pi`` over its first ``n`` context positions."""
        marg = pi.reshape((self.vocab,) * self.order).sum(axis=tuple(range(n, self.order)))
        marg = marg[marg > 0]
        return float(-np.sum(marg * np.log(marg)))

    def sample(self, tokens: int, rng: np.random.Generator) -> np.ndarray:
        """A stream of ``tokens`` tokens, started from the stationary distribution."""
        pi = self.stationary()
        c = int(rng.choice(self.contexts, p=pi / pi.sum()))
        first = [(c // self.vocab ** (self.order - 1 - i)) % self.vocab for i in range(self.order)]  # oldest first
        out = np.empty(tokens, np.int32)
        out[: self.order] = first[:tokens]
        u = rng.random(tokens)
        cum = np.cumsum(self.next_probs, axis=1)
        shift = self.vocab ** (self.order - 1)
        for t in range(self.order, tokens):
            j = int(np.searchsorted(cum[c], u[t] * cum[c, -1]))
            tok = int(self.next_tokens[c, min(j, cum.shape[1] - 1)])
            out[t] = tok
            c = (c % shift) * self.vocab + tok
        return out

    def log_prob(self, stream: np.ndarray) -> np.ndarray:
        """``log p(x_t | the k tokens before)`` for every ``t >= order`` of ``stream``."""
        shift = self.vocab ** (self.order - 1)
        c = 0
        for t in range(self.order):
            c = (c % shift) * self.vocab + int(stream[t])
        out = []
        lookup = [
            dict(zip(r.tolist(), p.tolist(), strict=True))
            for r, p in zip(self.next_tokens, self.next_probs, strict=True)
        ]
        for t in range(self.order, len(stream)):
            tok = int(stream[t])
            out.append(math.log(lookup[c][tok]))
            c = (c % shift) * self.vocab + tok
        return np.asarray(out)


def make_chain(vocab: int = 32, order: int = 2, branching: int = 6, zipf: float = 1.2, seed: int = 0) -> Language:
    """A random chain: each context allows ``branching`` distinct next tokens (uniformly
    drawn), weighted ``1 / rank ** zipf`` in a random order."""
    if vocab < 2 or order < 1 or not 1 <= branching <= vocab:
        raise ConfigError(
            f"a language needs vocab >= 2, order >= 1, 1 <= branching <= vocab; got {vocab}, {order}, {branching}"
        )
    rng = np.random.default_rng(seed)
    contexts = vocab**order
    tokens = np.stack([rng.choice(vocab, branching, replace=False) for _ in range(contexts)]).astype(np.int32)
    weights = 1.0 / np.arange(1, branching + 1) ** zipf
    probs = np.stack([rng.permutation(weights) for _ in range(contexts)])
    return Language(vocab, order, tokens, probs / probs.sum(1, keepdims=True))


def make_language(
    train_sequences: int = 4096,
    test_sequences: int = 512,
    length: int = 32,
    vocab: int = 32,
    order: int = 2,
    branching: int = 6,
    zipf: float = 1.2,
    seed: int = 0,
) -> Dataset:
    """Train and validation token sequences of the chain ``make_chain(vocab, order, ...)``:
    ``x`` the first ``length`` tokens of each ``length + 1``-token window of a sampled
    stream, ``y`` the ``length`` tokens after them. ``info``: the entropy rate, the floor of
    a sequence's mean loss, and the language's parameters."""
    lang = make_chain(vocab, order, branching, zipf, seed)
    rng = np.random.default_rng(seed + 1)

    def cut(n: int) -> tuple[np.ndarray, np.ndarray]:
        s = lang.sample(n * (length + 1), rng).reshape(n, length + 1)
        return s[:, :-1].copy(), s[:, 1:].copy()

    x_tr, y_tr = cut(train_sequences)
    x_te, y_te = cut(test_sequences)
    info: dict[str, Any] = {
        "entropy_rate": lang.entropy_rate(),
        "floor": lang.floor(length),
        "vocab": vocab,
        "order": order,
        "branching": branching,
        "zipf": zipf,
        "seed": seed,
        "length": length,
        "uniform": math.log(vocab),
    }
    return Dataset(f"markov{vocab}-{order}", x_tr, y_tr, x_te, y_te, task="classification", outputs=vocab, info=info)
