"""Built-in models: shapes for every data layout, clear errors for bad choices."""

import jax.numpy as jnp
import pytest

from jbatch.errors import ConfigError
from jbatch.workloads.model import BUILDERS, CNN, make_model


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "features", "spatial", "conv_rank"),
    [("cnn", 64, (8, 8), 2), ("cnn", 40, (40,), 1), ("mlp", 64, None, None), ("linear", 8, None, None)],
)
def test_models_map_flat_batches_to_outputs(name, features, spatial, conv_rank):
    import jax

    m = make_model(name, features, 10, spatial_shape=spatial)
    assert jax.jit(lambda v: m(v))(jnp.ones((3, features))).shape == (3, 10)
    if conv_rank:
        assert m.convs[0].kernel.shape == (3,) * conv_rank + (1, 32)


def test_mlp_widths_are_configurable():
    m = make_model("mlp", 64, 10, widths=(7, 5, 3))
    assert [layer.kernel.shape for layer in m.hidden] == [(64, 7), (7, 5), (5, 3)]
    assert m.out.kernel.shape == (3, 10)


def test_seed_sets_the_initial_weights():
    a, b, c = (make_model("mlp", 4, 2, seed=s, widths=(8,)) for s in (0, 0, 1))
    assert jnp.array_equal(a.out.kernel[...], b.out.kernel[...])
    assert not jnp.array_equal(a.out.kernel[...], c.out.kernel[...])


def test_bad_model_choices():
    with pytest.raises(ConfigError, match="unknown model 'transformer'; known: linear, mlp, cnn"):
        make_model("transformer", 4, 2)
    with pytest.raises(ConfigError, match="needs a data set with a spatial shape"):
        make_model("cnn", 4, 2)
    with pytest.raises(ConfigError, match="does not divide 65 features"):
        make_model("cnn", 65, 2, spatial_shape=(8, 8))
    assert set(BUILDERS) == {"linear", "mlp", "cnn"} and BUILDERS["cnn"] is CNN


@pytest.mark.slow
@pytest.mark.parametrize(("spatial", "stride"), [((40,), 1), ((40,), 2), ((8, 8), 1), ((8, 8), 2), ((7, 9), 2)])
def test_conv_as_matmul_equals_nnx_conv(spatial, stride):
    import jax
    from flax import nnx

    from jbatch.workloads.model import conv_as_matmul

    conv = nnx.Conv(3, 5, kernel_size=(3,) * len(spatial), strides=(stride,) * len(spatial), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, *spatial, 3))
    got, want = jax.jit(lambda v: conv_as_matmul(conv, v))(x), jax.jit(lambda v: conv(v))(x)
    assert got.shape == want.shape
    assert jnp.allclose(got, want, rtol=1e-5, atol=1e-5)
