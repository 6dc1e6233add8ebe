"""The benchmark's peers train the same thing as jbatch: from the same initial weights, on
the same batches, a few steps of each peer land on jbatch's weights and loss. Peers whose
package is not installed skip (``pip install -e '.[peers]'``); the Flax NNX ones always run."""

import numpy as np
import pytest

from bench.peers import PEERS
from bench.runners import jbatch_step_loop, mlp_loss
from bench.workloads import MLPWorkload, make_workload


@pytest.fixture(scope="module")
def small():
    digits = make_workload("digits")
    return MLPWorkload("small", (64, 32, 10), digits.x[:256], digits.y[:256])


@pytest.fixture(scope="module")
def reference(small):
    out = {}
    for b in (1, 32):
        runner = jbatch_step_loop(small, b, 4 * b)  # 4 steps
        runner.run()
        out[b] = runner.weights()
    return out


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # raised inside keras and torch
@pytest.mark.parametrize("b", [1, 32])
@pytest.mark.parametrize("peer", sorted(PEERS))
def test_every_peer_reaches_jbatchs_weights_and_loss(small, reference, peer, b):
    runner = PEERS[peer](small, b, 4 * b)
    assert runner.steps == 4
    runner.run()
    got, want = runner.weights(), reference[b]
    assert len(got) == len(want) == 2
    for (k, c), (k0, c0) in zip(got, want, strict=True):
        np.testing.assert_allclose(k, k0, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(c, c0, rtol=1e-4, atol=1e-6)
    loss, start = mlp_loss(got, small.x, small.y), mlp_loss(small.weights(0), small.x, small.y)
    assert loss == pytest.approx(mlp_loss(want, small.x, small.y), abs=1e-6)
    assert abs(loss - start) > 1e-3  # four steps really moved the weights


@pytest.mark.parametrize(("peer", "module"), [("torch-eager", "torch"), ("keras-fit", "keras")])
def test_missing_peer_skips_with_a_reason(peer, module, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    wl = MLPWorkload("t", (4, 3, 2), np.zeros((8, 4), np.float32), np.zeros(8, np.int32))
    with pytest.raises(pytest.skip.Exception, match=r"peer: pip install -e '\.\[peers\]'"):
        PEERS[peer](wl, 4, 8)
