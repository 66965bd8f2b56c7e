"""Doctests of `reference` (the docstrings' Examples) run as a user runs them.

That is, with JAX's standard dtype promotion, not the strict promotion the proofs switch on (optax's
Adam mixes int32 step counts with floats).
"""

import os

# BLAS threads: one per process. XLA:CPU may run two LAPACK custom calls at once on its own thread
# pool (e.g. both branches of a vmapped solver fallback); OpenBLAS's own threads on top of that
# were the suspect of a hang seen once in a thorough run. A BLAS library loaded later (scipy's)
# reads the variable; one already loaded (numpy's) is limited through threadpoolctl.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax
import pytest

try:  # in the test extra; absent where only the wheel's doctests run
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    pass
else:
    threadpool_limits(1)


@pytest.fixture(autouse=True)
def _standard_promotion_in_doctests(request):
    if type(request.node).__name__ == "DoctestItem":
        with jax.numpy_dtype_promotion("standard"):
            yield
    else:
        yield
