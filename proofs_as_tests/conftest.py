"""Test configuration: float64, strict dtype promotion, hypothesis profiles.

Runtime type checking of every call into `reference` is switched on by jaxtyping's pytest
hook (`--jaxtyping-packages=reference,beartype.beartype` in pyproject.toml).

Profiles: `HYPOTHESIS_PROFILE=ci` (thorough, used by `.ci/run`) or `dev` (quick, default).
"""

import os

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "dev",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
