"""The largest batch size that fits in memory (``jbatch.sweeps.fits``), as Lightning's binary
search finds it: the out-of-memory probe's answers (an accelerator's, injected here: CI has
none), XLA's memory plan against a stated capacity on this CPU, and the pick within a margin;
``jbatch advise`` neither times nor recommends what does not fit."""

import jax
import pytest

from jbatch.sweeps import fits
from tests.helpers import session, tiny_config


def test_the_out_of_memory_probe_finds_the_boundary_and_keeps_a_margin(tiny, monkeypatch):
    cfg = tiny_config(batch_sizes=(8, 32, 100), learning_rates=(0.3,), seeds=(0,))
    where = session(cfg, tiny)
    assert fits.runs(where, 8)  # a real step at B = 8 runs on this device
    ran = []

    def one_step(s, b, programs):  # a device of room for 50 examples: XLA's error above (no compile here)
        def limited():
            if b > 50:
                raise jax.errors.JaxRuntimeError(f"RESOURCE_EXHAUSTED: Out of memory while trying to allocate {b}")
            ran.append(b)

        return None, limited

    monkeypatch.setattr(fits, "_one_step", one_step)
    monkeypatch.setattr(fits.jax, "default_backend", lambda: "gpu")  # the accelerator's path
    found = fits.probe(where, [8, 32, 100])
    assert found.method == "out-of-memory probe" and found.largest == 50
    assert found.tried == [8, 16, 32, 64, 48, 56, 52, 50, 51] and ran == [8, 16, 32, 48, 50]  # the sizes that ran
    assert found.pick == 32  # the largest candidate within 0.9 x 50 = 45
    assert fits.probe(where, [8, 32, 100], margin=1.0, fits=lambda b: b <= 100).pick == 100
    assert fits.probe(where, [8, 32, 100], fits=lambda b: b <= 34).pick == 8  # 32 fits, but not within 0.9 x 34

    def broken(s, b, programs):  # another error is not an answer: raised
        raise jax.errors.JaxRuntimeError("INTERNAL: something else")

    monkeypatch.setattr(fits, "_one_step", broken)
    with pytest.raises(jax.errors.JaxRuntimeError, match="INTERNAL"):
        fits.probe(where, [8, 32, 100])


def test_on_a_cpu_every_candidate_fits_unless_a_capacity_is_stated(tiny):
    cfg = tiny_config(batch_sizes=(8, 32, 100), learning_rates=(0.3,), seeds=(0,))
    found = fits.probe(session(cfg, tiny), [8, 32, 100])
    assert found.pick == 100 and found.tried == [] and "no stated capacity" in found.method


@pytest.mark.slow
def test_xla_s_memory_plan_within_a_stated_capacity_decides_on_a_cpu(tiny):
    cfg = tiny_config(widths=(512,), batch_sizes=(8, 32), learning_rates=(0.3,), seeds=(0,))
    where = session(cfg, tiny)  # wide enough that activations, not the data, set the plan's growth
    small, large = fits.planned_bytes(where, 8), fits.planned_bytes(where, 32)
    assert small < large  # a larger batch plans more (its activations)
    cap = (small + large) / 2
    found = fits.probe(where, [8, 32], capacity=cap)
    b = found.largest
    assert 8 <= b < 32 and found.tried[:3] == [8, 16, 32]  # doubling, then bisecting
    assert found.planned_bytes[str(b)] <= cap < fits.planned_bytes(where, b + 1)  # the boundary, to one example
    assert found.pick == 8 and "stated" in found.method  # the largest candidate within 0.9 of it
