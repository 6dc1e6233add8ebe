"""The offline data sets: fixed splits, training-only statistics, no network, valid input."""

import numpy as np
import pytest

from jbatch.errors import ConfigError
from jbatch.workloads.catalog import load_dataset
from jbatch.workloads.data import Dataset, load_mnist1d, make_linear_regression


def test_digits_split_is_fixed_stratified_and_standardised_on_train(digits):
    assert digits.x_train.shape == (1437, 64) and digits.x_test.shape == (360, 64)
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int32
    test_counts = np.bincount(digits.y_test, minlength=10)
    all_counts = test_counts + np.bincount(digits.y_train, minlength=10)
    assert np.abs(test_counts - 0.2 * all_counts).max() <= 1  # stratified: 20% of every class
    live = digits.x_train.std(0) > 0
    np.testing.assert_allclose(digits.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(digits.x_train.std(0)[live], 1, atol=1e-4)
    assert np.abs(digits.x_test.mean(0)).max() > 1e-3  # test statistics were not used
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.x_train, digits.x_train)


def test_mnist1d_is_generated_offline(monkeypatch):
    import requests

    def no_network(*a, **k):
        raise AssertionError("MNIST-1D must be generated, never downloaded")

    monkeypatch.setattr(requests, "get", no_network)
    np.random.seed(123)  # noqa: NPY002  the legacy global RNG mnist1d uses
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    ds = load_mnist1d()
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert ds.spatial_shape == (40,) and set(np.unique(ds.y_train)) == set(range(10))
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002  untouched


def test_linear_regression_optimum_solves_the_normal_equations():
    ds = make_linear_regression()
    x = np.hstack([ds.x_train.astype(np.float64), np.ones((ds.num_train, 1))])
    theta = np.vstack([ds.optimum["w"], ds.optimum["b"][None]])
    gradient = x.T @ (x @ theta - ds.y_train)
    assert np.abs(gradient).max() < 1e-3


def _arrays(n=10, d=3):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, d)).astype(np.float32), np.zeros(n, np.int32)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x, y: (np.where(x > 1, np.inf, x), y), "infinite"),
        (lambda x, y: (x[:5], y), "has 5 rows but y_train 10"),
        (lambda x, y: (x, y + 7), r"labels must be integers in \[0, 3\)"),
        (lambda x, y: (x[:0], y[:0]), "empty"),
    ],
)
def test_bad_data_is_refused(change, message):
    x, y = _arrays()
    x2, y2 = change(x, y)
    with pytest.raises(ConfigError, match=message):
        Dataset("bad", x2, y2, x, y, task="classification", outputs=3)


def test_corrupt_npz_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ConfigError, match="not a readable .npz"):
        load_dataset(str(path))
    np.savez(tmp_path / "partial.npz", x_train=np.ones((3, 2)))
    with pytest.raises(ConfigError, match="lacks array.s. y_train, x_test, y_test"):
        load_dataset(str(tmp_path / "partial.npz"))
