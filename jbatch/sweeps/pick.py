"""Which batch size ``jbatch advise`` recommends, decided as a measurement.

The predicted seconds to a target at batch size ``B`` are the predicted steps (a ratio to the
trunk's, seeded: ``advise.predicted_ratio``) times the measured seconds per step. Their
interval is the prediction's uncertainty: the timing's 95% interval (``stats.median_interval``
over the interleaved rounds) times the range of the predicted steps over the seeds' own B*.
The candidates whose intervals overlap the best one's cannot be told apart
(``stats.tie_set``): the **recommended set**. While it holds more than one, its members alone
are timed again, interleaved, for up to ``RETIME_BATCHES`` more batches of rounds (every round
kept), so the intervals narrow. Then the recommendation is the member of the set with the
fewest predicted steps, that is the largest: step counts do not move with the machine's load,
so three runs on a loaded machine recommend the same batch size unless the load moves one
candidate's seconds beyond another's interval, and a small batch size made slower by load
(dispatch-bound steps suffer most) only strengthens the same pick.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from jbatch.analysis.stats import median_interval, tie_set

RETIME_BATCHES = 2  # at most this many more batches of timing rounds for the contenders


def predicted_seconds(
    per_step_rounds: Mapping[int, list[float]],
    relative_steps: Mapping[int, float],
    steps_range: Mapping[int, tuple[float, float]] | None = None,
) -> dict[int, tuple[float, float, float]]:
    """Each candidate's predicted seconds to the target (relative to the trunk's steps): the
    median of its rounds' seconds per step times its predicted steps, with the interval: the
    timing's interval times the predicted steps' range (``steps_range``: low and high, from the
    seeds' own B*; the point alone when not given).

    Examples:
      >>> predicted_seconds({1: [1.0, 2.0, 3.0]}, {1: 0.5})
      {1: (1.0, 0.5, 1.5)}
      >>> predicted_seconds({1: [1.0, 2.0, 3.0]}, {1: 0.5}, {1: (0.4, 1.0)})
      {1: (1.0, 0.4, 3.0)}
    """
    out = {}
    for b, rounds in per_step_rounds.items():
        lo, hi = median_interval(rounds)
        r = relative_steps[b]
        r_lo, r_hi = steps_range[b] if steps_range else (r, r)
        out[b] = (r * float(np.median(rounds)), min(r, r_lo) * lo, max(r, r_hi) * hi)
    return out


def recommended_set(predicted: Mapping[int, tuple[float, float, float]]) -> list[int]:
    """The candidates whose predicted seconds cannot be told apart from the best's (their
    intervals overlap its), smallest batch size first.

    Examples:
      >>> recommended_set({1: (1.0, 0.8, 1.3), 16: (1.1, 0.9, 1.2), 256: (2.0, 1.8, 2.2)})
      [1, 16]
    """
    point = {b: v[0] for b, v in predicted.items()}
    return sorted(tie_set({b: (v[1], v[2]) for b, v in predicted.items()}, point))


def choose(members: list[int], relative_steps: Mapping[int, float]) -> int:
    """The member of the recommended set with the fewest predicted steps (the largest batch
    size on a tie of steps).

    Examples:
      >>> choose([1, 16], {1: 1.0, 16: 0.08, 256: 0.02})
      16
    """
    return min(members, key=lambda b: (relative_steps[b], -b))


def decide(
    measure: Callable[[list[int]], Mapping[int, list[float]]],
    sizes: list[int],
    relative_steps: Mapping[int, float],
    batches: int = RETIME_BATCHES,
    steps_range: Mapping[int, tuple[float, float]] | None = None,
) -> dict[str, object]:
    """Times ``sizes`` (``measure(sizes)``: seconds per step per round, interleaved), re-times
    the recommended set while it has more than one member (at most ``batches`` times; every
    round kept), and chooses from it (``steps_range``: the predicted steps' range over seeds,
    ``predicted_seconds``). Returns the rounds, the predictions, the set, the pick and the
    batches of rounds re-timed."""
    rounds = {b: list(v) for b, v in measure(list(sizes)).items()}
    retimed = 0
    while True:
        predicted = predicted_seconds(rounds, relative_steps, steps_range)
        members = recommended_set(predicted)
        if len(members) == 1 or retimed == batches:
            break
        for b, v in measure(members).items():
            rounds[b] += list(v)
        retimed += 1
    return {
        "rounds": rounds,
        "predicted": predicted,
        "set": members,
        "batch_size": choose(members, relative_steps),
        "retimed": retimed,
    }
