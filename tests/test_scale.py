"""Scale: exact gradient accumulation, nested MNIST-1D sizes with a checked cache, B_crit
against the target from one sweep, and the power law against the data size."""

import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import msgspec
import numpy as np
import pytest

from jbatch.core.batching import epoch_order
from jbatch.core.engine import CompileCounter
from jbatch.core.epoch import make_epoch
from jbatch.core.loss import softmax_cross_entropy
from jbatch.core.optim import make_optimizer
from jbatch.core.step import Batch, init_train_state, make_train_step
from jbatch.errors import ConfigError
from jbatch.workloads import mnist1d
from jbatch.workloads.model import make_model
from tests.helpers import assert_trees_close

DATA = Path(__file__).parent / "data" / "sweep_small"


@pytest.mark.parametrize(("rows", "micro"), [(32, 8), (30, 8), (30, 7), (5, 8)])  # 30 / 7: a partial last micro-batch
def test_microbatches_add_up_to_the_one_shot_batch(digits, rows, micro):
    x, y = jnp.asarray(digits.x_train[:rows]), jnp.asarray(digits.y_train[:rows])
    mask = jnp.arange(rows) < rows - 3  # and padded rows, as a partial last batch has
    state = init_train_state(make_model("mlp", 64, 10, widths=(32,)), make_optimizer("momentum", 0.1))
    one = jax.jit(make_train_step(softmax_cross_entropy))(state, Batch(x, y, mask))
    acc = jax.jit(make_train_step(softmax_cross_entropy, micro))(state, Batch(x, y, mask))
    assert_trees_close(acc[0].params, one[0].params)
    assert_trees_close(acc[0].opt_state, one[0].opt_state)
    np.testing.assert_allclose(acc[1]["loss"], one[1]["loss"], rtol=1e-5)
    assert float(acc[1]["examples"]) == float(one[1]["examples"]) == rows - 3


def test_a_microbatched_epoch_compiles_once(digits):
    n = 300
    data = (jnp.asarray(digits.x_train[:n]), jnp.asarray(digits.y_train[:n]))
    state = init_train_state(make_model("mlp", 64, 10, widths=(32,)), make_optimizer("sgd", 0.1))
    epoch = jax.jit(make_epoch(make_train_step(softmax_cross_entropy, 16), n, 64))  # 64 = 4 micro-batches of 16
    orders = [jax.device_put(epoch_order(0, e, n)) for e in range(3)]
    state, _ = epoch(state, data, orders[0])
    with CompileCounter() as c:
        for o in orders[1:]:
            state, m = epoch(state, data, o)
        jax.block_until_ready(m)
    assert c.count == 0 and int(state.step) == 3 * 5


def test_nested_sizes_are_subsets_with_one_test_set_and_a_checked_cache(tmp_path, capsys):
    small = mnist1d.load(100, max_train=300, directory=tmp_path)
    big = mnist1d.load(300, max_train=300, directory=tmp_path)
    assert "generated MNIST-1D pool" in capsys.readouterr().err
    rows = {r.tobytes() for r in big.x_train}
    assert all(r.tobytes() in rows for r in small.x_train)  # every size is a subset of the next
    np.testing.assert_array_equal(small.x_test, big.x_test)
    assert np.bincount(small.y_train).tolist() == [10] * 10 and len(big.x_test) == 1000
    again = mnist1d.load(100, max_train=300, directory=tmp_path)
    assert "generated" not in capsys.readouterr().err  # from the cache
    np.testing.assert_array_equal(again.x_train, small.x_train)
    pool = next(tmp_path.glob("*.npz"))
    pool.write_bytes(pool.read_bytes()[:-100] + b"x" * 100)  # corrupt it
    fixed = mnist1d.load(100, max_train=300, directory=tmp_path)
    assert "does not match its SHA-256: regenerating" in capsys.readouterr().err
    np.testing.assert_array_equal(fixed.x_train, small.x_train)  # regenerated, the same (seeded) data
    for bad in (0, 15, 400):
        with pytest.raises(ConfigError, match="mnist1d:N needs N a multiple of 10"):
            mnist1d.load(bad, max_train=300, directory=tmp_path)


def test_b_crit_against_the_target_from_one_sweep():
    from jbatch.analysis.ladder import ladder, levels
    from jbatch.results import read_sweep

    doc = read_sweep(DATA)
    target = doc.config.target.value
    lv = levels(doc, 4)
    assert lv[3] == target and lv[0] < lv[3]
    assert len(lv) == 6 and target < lv[4] < lv[5]  # past the target, to the best 3 batch sizes reached
    best = sorted(
        max(v for rep in r.replicas for v in rep.curve.test_accuracy if v is not None) for r in doc.batch_sizes.values()
    )[-3]
    assert lv[5] == pytest.approx(best, rel=1e-3)
    steps = ladder(doc, 4)
    assert [s["coarse"] for s in steps][4:] == [True, True]  # past the target only coarse points remain
    assert len(steps[5]["reached"]) >= 3
    assert all(s["fit"] is not None for s in steps)
    for lower, higher in zip(steps, steps[1:], strict=False):  # a higher level takes at least as many steps
        for b, v in higher["steps"].items():
            if v is not None and lower["steps"][b] is not None:
                assert lower["steps"][b] <= v


def test_power_law_and_the_data_scaling_table(tmp_path):
    from jbatch.analysis.datascaling import power_law
    from jbatch.report.datascaling import verdict, write_study

    f = power_law(np.array([4e3, 1.6e4, 6.4e4]), np.array([100.0, 200.0, 400.0]), np.full(3, 0.05))
    assert f.exponent == pytest.approx(0.5, abs=1e-6) and 0 < f.low < 0.5 < f.high
    n, v, sigma = np.array([4e3, 1.6e4, 6.4e4]), np.array([100.0, 260.0, 350.0]), np.array([0.05, 0.2, 0.1])
    rng = np.random.default_rng(0)  # all draws at once: the same interval as refitting draw by draw
    ks = [np.polyfit(np.log(n), np.log(v) + rng.normal(0, sigma), 1)[0] for _ in range(2000)]
    law = power_law(n, v, sigma)
    assert [law.low, law.high] == pytest.approx(np.percentile(ks, [2.5, 97.5]))
    assert verdict({"b_crit": f}).startswith("holds")
    assert verdict({"b_crit": msgspec.structs.replace(f, low=-0.1)}).startswith("not shown")
    for n in (4000, 16000):
        shutil.copytree(DATA, tmp_path / f"mlp-{n}")
    paths = write_study(tmp_path)
    assert {p.name for p in paths} == {"table.md", "table.csv", "scaling.json", "data_scaling.png"}
    text = (tmp_path / "table.md").read_text()
    assert "| mlp | 4000 |" in text and "| mlp | 16000 |" in text
    assert "includes 0" in text  # the same sweep twice: no growth to speak of
