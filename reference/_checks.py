"""Input validation shared by every module.

Checks on *values* (rows summing to one, finiteness, ranges) run only on concrete arrays,
before any computation, and raise `ValueError` naming the argument and the violated
condition. Under `jax.jit`, `jax.vmap` or `jax.grad` the arrays are tracers and only the
shape checks run (shapes are static); code that must check values inside `jit` uses
`equinox.error_if`.
"""

from __future__ import annotations

import jax.core
import jax.numpy as jnp
import numpy as np

from ._types import Array, ArrayLike


def is_concrete(*xs: object) -> bool:
    """True if none of `xs` is a JAX tracer (so its values can be read now)."""
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def default_float() -> jnp.dtype:
    """The default floating dtype (float64 under `jax_enable_x64`, else float32)."""
    return jnp.asarray(0.0).dtype


def as_float_array(x: ArrayLike, name: str, dtype: jnp.dtype | None = None) -> Array:
    """`x` as a floating JAX array (integers and booleans are cast to `dtype` or the default)."""
    arr = jnp.asarray(x)
    if dtype is not None:
        return arr.astype(dtype)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        return arr.astype(default_float())
    return arr


def row_sum_tolerance(dtype: jnp.dtype) -> float:
    """How far a probability row may sum from one before it is rejected."""
    return 1e-6 if jnp.finfo(dtype).bits >= 64 else 1e-4


def check_finite(x: Array, name: str, where: str) -> None:
    """Refuse NaN or infinity in a concrete array."""
    if is_concrete(x):
        bad = ~np.isfinite(np.asarray(x))
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{where}: `{name}` must be finite, but {name}{list(index)} = {np.asarray(x)[index]}.")


def check_distribution(x: Array, name: str, where: str, axis_names: str) -> None:
    """Refuse a concrete array whose last axis is not a probability distribution.

    `axis_names` names the leading indices in messages, e.g. `"s, a"`.
    """
    check_finite(x, name, where)
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    if (arr < 0).any():
        index = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ValueError(
            f"{where}: `{name}` must be non-negative (probabilities), but {name}{list(index)} = {arr[index]}."
        )
    sums = arr.sum(axis=-1)
    err = np.abs(sums - 1.0)
    tol = row_sum_tolerance(arr.dtype)
    if (err > tol).any():
        index = tuple(int(i) for i in np.argwhere(err > tol)[0])
        where_txt = f" at ({axis_names}) = {index}" if index else ""
        raise ValueError(
            f"{where}: `{name}` must sum to 1 along its last axis{where_txt}, but the sum is "
            f"{float(np.asarray(sums)[index]):.10g} (tolerance {tol:g})."
        )


def check_shape(x: Array, expected: tuple[int, ...], name: str, where: str, meaning: str) -> None:
    """Refuse an array whose shape is not `expected`; `meaning` spells out the axes."""
    if tuple(x.shape) != tuple(expected):
        raise ValueError(
            f"{where}: `{name}` must have shape {meaning} = {tuple(expected)}, but has shape {tuple(x.shape)}."
        )


def check_policy(pi: ArrayLike, num_states: int, num_actions: int, where: str, name: str = "pi") -> Array:
    """Validate a stochastic policy `pi[s, a]` against an MDP's sizes; return it as an array."""
    arr = as_float_array(pi, name)
    check_shape(arr, (num_states, num_actions), name, where, "[S, A]")
    check_distribution(arr, name, where, "s")
    return arr


def check_gamma(gamma: ArrayLike, where: str, name: str = "gamma") -> None:
    """Refuse a concrete discount outside [0, 1)."""
    g = jnp.asarray(gamma)
    if g.ndim != 0:
        raise ValueError(f"{where}: `{name}` must be a scalar, but has shape {tuple(g.shape)}.")
    if is_concrete(g):
        value = float(g)
        if not np.isfinite(value):
            raise ValueError(f"{where}: `{name}` must be finite, but is {value}.")
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{where}: `{name}` must lie in [0, 1), but is {value}.")


def check_positive_int(value: int, name: str, where: str, minimum: int = 1) -> None:
    """Refuse a non-integer or an integer below `minimum` (e.g. `num_states`)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{where}: `{name}` must be an integer >= {minimum}, but is {value!r}.")


def check_positive_scalar(value: ArrayLike, name: str, where: str, meaning: str) -> None:
    """Refuse a concrete scalar that is not finite and > 0; `meaning` says what it is, e.g. "the KL radius"."""
    v = jnp.asarray(value)
    if is_concrete(v) and not (bool(jnp.isfinite(v)) and float(v) > 0):
        raise ValueError(f"{where}: `{name}` ({meaning}) must be finite and > 0, but is {float(v)}.")


def check_same_shape(a: Array, b: Array, names: tuple[str, str], where: str) -> None:
    """Refuse two arrays whose shapes differ."""
    if a.shape != b.shape:
        raise ValueError(
            f"{where}: `{names[0]}` and `{names[1]}` must have the same shape, "
            f"but have {tuple(a.shape)} and {tuple(b.shape)}."
        )
