"""Doctests of `reference` (the docstrings' Examples) run as a user runs them.

That is, with JAX's standard dtype promotion, not the strict promotion the proofs switch on (optax's
Adam mixes int32 step counts with floats).
"""

import jax
import pytest


@pytest.fixture(autouse=True)
def _standard_promotion_in_doctests(request):
    if type(request.node).__name__ == "DoctestItem":
        with jax.numpy_dtype_promotion("standard"):
            yield
    else:
        yield
