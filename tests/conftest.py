"""Test-wide JAX settings: strict dtype promotion (as equinox's tests), float32 throughout."""

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture(scope="session")
def digits():
    from jbatch.data import load_digits

    return load_digits()
