"""Input validation shared by every module.

Every check refuses bad input before any computation, with a message that names the function,
the argument and the violated condition:

- on concrete arrays (an eager call) it raises `ValueError` at once, with the index and value of
  the first bad entry;
- on traced arrays (inside `jax.jit`, `jax.vmap`, `jax.grad`, `lax.scan`, …) the values are not
  known yet, so the check is attached to the array with `equinox.error_if`: the compiled program
  raises a runtime error carrying the same message when it runs on bad values. Under `vmap` one
  bad member of the batch is enough. The value checks therefore *return* the array the caller
  must go on computing with, so that the check is part of the computation and survives `jit`.

Shape checks are static and raise `ValueError` in every mode. The traced checks follow
equinox's switch: `EQX_ON_ERROR=off` in the environment (read when equinox is imported) removes
them from compiled code; eager checks always run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from ._types import Array, ArrayLike

T = TypeVar("T")

#: Appended to a traced check's message: the index of the first bad entry is not known there.
TRACED = " (checked at run time under a JAX transformation)"


def is_concrete(*xs: object) -> bool:
    """True if none of `xs` (or their pytree leaves) is a JAX tracer (so values can be read now)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(xs))


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


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


Rule = tuple[Callable[[Any, Any], Any], str, Callable[[np.ndarray, np.ndarray, tuple[int, ...]], str] | None]
"""(bad(xp, x) → boolean mask, message, detail(x, mask, index) → text after the message) — one condition."""


def enforce(x: T, value: ArrayLike, rules: Sequence[Rule]) -> T:
    """Check `value` against `rules` (in order); return `x` (with the traced check attached).

    Eagerly the first violated rule raises `ValueError(message + detail + ".")` (the detail names
    the first bad entry, e.g. ", but pi[1, 0] = -0.5").
    Traced, one `equinox.branched_error_if` raises the first violated rule's message at run time.
    """
    if is_concrete(value):
        arr = np.asarray(value)
        for bad, message, detail in rules:
            mask = np.asarray(bad(np, arr))
            if mask.any():
                index = _first(mask) if mask.ndim else ()
                text = detail(arr, mask, index) if detail is not None else ""
                raise ValueError(f"{message}{text}.")
        return x
    arr = jnp.asarray(value)
    flags = jnp.stack([jnp.any(bad(jnp, arr)) for bad, _, _ in rules])
    return _thread(x, jnp.any(flags), jnp.argmax(flags), [m + TRACED + "." for _, m, _ in rules])


def _thread(x: T, pred: Array, index: Array, msgs: list[str]) -> T:
    """Attach a runtime error to `x` so that any computation using `x` waits for the check.

    `equinox.error_if` returns its argument through a `lax.cond`, which copies it: for a large
    array that copy costs as much as a pass over the data. So the error is attached to a scalar
    zero, which is then subtracted from every floating or integer leaf of `x` (an exact identity:
    x − (+0) = x for every x, signed zeros and NaN included) — an elementwise operation that XLA
    fuses into whatever consumes `x`.
    """
    leaves = [leaf for leaf in jax.tree.leaves(x) if eqx.is_array(leaf)]
    if all(leaf.size <= 64 for leaf in leaves):
        return eqx.branched_error_if(x, pred, index, msgs)
    token = eqx.branched_error_if(jnp.zeros((), jnp.int32), pred, index, msgs)

    attached = False

    def attach(leaf: Any) -> Any:
        nonlocal attached
        if not eqx.is_array(leaf):
            return leaf
        if jnp.issubdtype(leaf.dtype, jnp.floating) or jnp.issubdtype(leaf.dtype, jnp.integer):
            attached = True
            return leaf - token.astype(leaf.dtype)
        if leaf.dtype == jnp.bool_:
            attached = True
            return leaf ^ token.astype(jnp.bool_)
        return leaf

    out = jax.tree.map(attach, x)
    return out if attached else eqx.branched_error_if(x, pred, index, msgs)


# The rules' functions are module-level functions bound by `functools.partial`, not closures: a
# `def` inside a check would be a new function at every call, and a runtime type checker that
# decorates every function of the package (jaxtyping's import hook, as the tests run) would
# decorate it again at every call (about 1 ms each, more than the check itself).


def _entry_detail(name: str, arr: np.ndarray, mask: np.ndarray, index: tuple[int, ...]) -> str:
    return f", but {name}{list(index)} = {arr[index]}" if index else f", but is {arr.item()}"


def _entry(name: str) -> Callable[[np.ndarray, np.ndarray, tuple[int, ...]], str]:
    return functools.partial(_entry_detail, name)


def _sum_detail(axis_names: str, tol: float, arr: np.ndarray, mask: np.ndarray, index: tuple[int, ...]) -> str:
    where_txt = f" at ({axis_names}) = {index}" if index else ""
    return f"{where_txt}, but the sum is {float(arr.sum(axis=-1)[index]):.10g} (tolerance {tol:g})"


def _outside(lo: float, hi: float, closed_lo: bool, closed_hi: bool, xp: Any, a: Any) -> Any:
    below = (a < lo) if closed_lo else (a <= lo)
    above = (a > hi) if closed_hi else (a >= hi)
    return below | above


def _finite_rule(name: str, where: str) -> Rule:
    return (lambda xp, a: ~xp.isfinite(a), f"{where}: `{name}` must be finite", _entry(name))


def check_finite(x: Array, name: str, where: str) -> Array:
    """Refuse NaN or infinity anywhere in `x`; return `x`."""
    return enforce(x, x, [_finite_rule(name, where)])


def check_distribution(x: Array, name: str, where: str, axis_names: str) -> Array:
    """Refuse an array whose last axis is not a probability distribution; return it.

    Finite, non-negative, and each row summing to one within `row_sum_tolerance`. `axis_names`
    names the leading indices in messages, e.g. `"s, a"`.
    """
    tol = row_sum_tolerance(x.dtype)
    rules: list[Rule] = [
        _finite_rule(name, where),
        (lambda xp, a: a < 0, f"{where}: `{name}` must be non-negative (probabilities)", _entry(name)),
        (
            lambda xp, a: xp.abs(a.sum(axis=-1) - 1.0) > tol,
            f"{where}: `{name}` must sum to 1 along its last axis",
            functools.partial(_sum_detail, axis_names, tol),
        ),
    ]
    return enforce(x, x, rules)


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
    return check_distribution(arr, name, where, "s")


def check_scalar(value: ArrayLike, name: str, where: str) -> Array:
    """`value` as a 0-d array; refuse any other shape (a static check)."""
    v = jnp.asarray(value)
    if v.ndim != 0:
        raise ValueError(f"{where}: `{name}` must be a scalar, but has shape {tuple(v.shape)}.")
    return v


def check_interval(
    value: ArrayLike,
    name: str,
    where: str,
    lo: float,
    hi: float,
    *,
    closed_hi: bool = True,
    closed_lo: bool = True,
    meaning: str = "",
) -> Array:
    """Refuse a scalar that is not finite or lies outside the interval; return it as a 0-d array.

    The message reads e.g. "`gamma` must lie in [0, 1)".
    """
    v = check_scalar(value, name, where)
    interval = f"{'[' if closed_lo else '('}{lo:g}, {hi:g}{']' if closed_hi else ')'}"
    label = f"`{name}`" + (f" ({meaning})" if meaning else "")

    return enforce(
        v,
        v,
        [
            (lambda xp, a: ~xp.isfinite(a), f"{where}: {label} must be finite", _entry(name)),
            (
                functools.partial(_outside, lo, hi, closed_lo, closed_hi),
                f"{where}: {label} must lie in {interval}",
                _entry(name),
            ),
        ],
    )


def check_gamma(gamma: ArrayLike, where: str, name: str = "gamma") -> Array:
    """Refuse a discount outside [0, 1) (or not finite, or not a scalar); return it as a 0-d array."""
    return check_interval(gamma, name, where, 0.0, 1.0, closed_hi=False)


def check_positive_int(value: int, name: str, where: str, minimum: int = 1) -> None:
    """Refuse a non-integer or an integer below `minimum` (e.g. `num_states`); a static check."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{where}: `{name}` must be an integer >= {minimum}, but is {value!r}.")


def check_positive_scalar(value: ArrayLike, name: str, where: str, meaning: str) -> Array:
    """Refuse a scalar that is not finite and > 0; `meaning` says what it is, e.g. "the KL radius"."""
    v = check_scalar(value, name, where)
    return enforce(
        v,
        v,
        [
            (
                lambda xp, a: ~(xp.isfinite(a) & (a > 0)),
                f"{where}: `{name}` ({meaning}) must be finite and > 0",
                _entry(name),
            )
        ],
    )


def check_epsilon(epsilon: ArrayLike, where: str) -> Array:
    """PPO's clip width ε: a finite scalar > 0."""
    return check_positive_scalar(epsilon, "epsilon", where, "the clip width")


def check_delta(delta: ArrayLike, where: str) -> Array:
    """The trust region's KL radius δ: a finite scalar > 0."""
    return check_positive_scalar(delta, "delta", where, "the KL radius")


def check_nonnegative_scalar(value: ArrayLike, name: str, where: str) -> Array:
    """Refuse a scalar that is not finite and >= 0."""
    v = check_scalar(value, name, where)
    return enforce(
        v, v, [(lambda xp, a: ~(xp.isfinite(a) & (a >= 0)), f"{where}: `{name}` must be finite and >= 0", _entry(name))]
    )


def check_same_shape(a: Array, b: Array, names: tuple[str, str], where: str) -> None:
    """Refuse two arrays whose shapes differ."""
    if a.shape != b.shape:
        raise ValueError(
            f"{where}: `{names[0]}` and `{names[1]}` must have the same shape, "
            f"but have {tuple(a.shape)} and {tuple(b.shape)}."
        )


def check_where(x: T, value: ArrayLike, bad: Callable[[Any, Any], Any], message: str, name: str | None = None) -> T:
    """Refuse `value` where `bad(xp, value)` holds anywhere (a one-off condition); return `x`.

    `message` is the whole condition, e.g. "f: `pi_old` must have full support (every π(a|s) > 0)";
    eagerly the first bad entry is named after it when `name` is given.
    """
    return enforce(x, value, [(bad, message, _entry(name) if name is not None else None)])


def check_full_support(pi: Array, name: str, where: str) -> Array:
    """Refuse a policy with a zero (or negative) probability anywhere; return it."""
    message = f"{where}: `{name}` must have full support (every π(a|s) > 0)"
    return check_where(pi, pi, lambda xp, x: x <= 0, message, name)
