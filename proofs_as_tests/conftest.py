"""Test configuration: float64, strict dtype promotion, hypothesis profiles.

Runtime type checking of every call into `reference` is switched on by jaxtyping's pytest
hook (`--jaxtyping-packages=reference,beartype.beartype` in pyproject.toml).

Profiles: `HYPOTHESIS_PROFILE=ci` (thorough, used by `.ci/run`), `dev` (quick, default) or
`mutation` (10 examples, derandomised, slow tests included; `tools/mutation.py`). The
quick profile draws fewer examples (JAX compiles once per new shape, so compilation dominates;
the repository's conftest.py also asks XLA:CPU for its cheaper code generation in this profile) and
skips the tests marked `slow` (end-to-end training runs and subprocesses), which the thorough
profile runs. The `mutation` profile keeps 10 examples: `docs/mutation.md`'s score was measured
with them.
"""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

settings.register_profile(
    "ci",
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "dev",
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "mutation",  # the quick profile, reproducible: fixed seeds, no example database (tools/mutation.py)
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
settings.load_profile(PROFILE)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs; only in the thorough profile (HYPOTHESIS_PROFILE=ci)")


def pytest_collection_modifyitems(config, items):
    if PROFILE in ("ci", "mutation"):
        return
    skip = pytest.mark.skip(reason="slow: runs in the thorough profile (HYPOTHESIS_PROFILE=ci)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
