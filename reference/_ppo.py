r"""PPO's clipped objective and generalised advantage estimation (notes §3, A29–A35).

Sources: Schulman et al. (2017), "Proximal Policy Optimization Algorithms", §3 eq. (6)–(7);
Schulman et al. (2016), "High-Dimensional Continuous Control Using Generalized Advantage
Estimation", eq. (16).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from beartype import beartype
from equinox.internal import unvmap_any
from jaxtyping import jaxtyped

from ._checks import (
    TRACED,
    as_float_array,
    check_epsilon,
    check_finite,
    check_interval,
    check_same_shape,
    check_where,
    is_concrete,
)
from ._types import Array, ArrayLike, Float, Real, ScalarLike


@jaxtyped(typechecker=beartype)
def probability_ratio(
    logp_new: Float[ArrayLike, "*batch"], logp_old: Float[ArrayLike, "*batch"]
) -> Float[Array, "*batch"]:
    r"""The probability ratio of the new to the old policy, from log-probabilities.

    $$r_\theta(s,a) = \frac{\pi_\theta(a|s)}{\pi_{\theta_k}(a|s)}
      = \exp\big(\log\pi_\theta(a|s) - \log\pi_{\theta_k}(a|s)\big),\qquad r_{\theta_k} = 1$$

    Notes A30 (策略比). Schulman et al. (2017) §3. Correction C13: the notes define
    $r_\theta$ with the advantage folded in ($\pi_\theta/\pi_{\theta_k}\cdot A$); the ratio
    is the plain quotient, and the clip acts on it before $A$ multiplies.

    **Arguments:** `logp_new`, `logp_old`: log-probabilities of the taken actions, same shape.

    **Returns:** the ratios, same shape (`proofs_as_tests/test_ppo.py::test_ppo_clip_closed_form`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> r = rf.probability_ratio(jnp.log(jnp.asarray([0.2, 0.5])), jnp.log(jnp.asarray([0.1, 0.5])))
    >>> [round(x, 4) for x in r.tolist()]
    [2.0, 1.0]

    ```
    """
    new = as_float_array(logp_new, "logp_new")
    old = as_float_array(logp_old, "logp_old", new.dtype)
    check_same_shape(new, old, ("logp_new", "logp_old"), "probability_ratio")
    return jnp.exp(new - old)


def check_ratio(r: Array, name: str, where: str) -> Array:
    """Refuse a probability ratio that is negative or not finite; return it."""
    r = check_finite(r, name, where)
    return check_where(r, r, lambda xp, x: x < 0, f"{where}: `{name}` must be >= 0 (a ratio of probabilities)", name)


@jaxtyped(typechecker=beartype)
def ppo_clip_objective(
    ratio: Float[ArrayLike, "*batch"], advantage: Float[ArrayLike, "*batch"], epsilon: ScalarLike
) -> Float[Array, "*batch"]:
    r"""PPO's clipped surrogate, per sample (not averaged).

    $$f(r, A) = \min\big(rA,\ \mathrm{clip}(r, 1-\epsilon, 1+\epsilon)\,A\big)
      = \begin{cases}A\min(r, 1+\epsilon) & A\ge0\\ A\max(r,1-\epsilon) & A<0\end{cases}$$

    Notes A29, A32–A35 (PPO 目标). Schulman et al. (2017) eq. (7); Kuba et al. (2022) eq. (4).
    Correction C15: the notes describe only the capped regions; for $A>0, r<1-\epsilon$ and
    for $A<0, r>1+\epsilon$ the min picks the unclipped $rA$ and the gradient is kept.
    Average it over samples of the old policy to get $L^{PPO}$.

    **Arguments:** `ratio` $r$; `advantage` $A$ (same shape); `epsilon` $> 0$.

    **Returns:** $f(r, A)$ per sample (`proofs_as_tests/test_ppo.py::test_ppo_clip_closed_form`,
    `::test_ppo_clip_gradient_regions`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> f = rf.ppo_clip_objective(jnp.asarray([1.5, 0.5, 1.5]), jnp.asarray([1.0, 1.0, -1.0]), 0.2)
    >>> [round(x, 4) for x in f.tolist()]  # capped at (1 + ε)A; kept below; kept for A < 0
    [1.2, 0.5, -1.5]

    ```
    """
    where = "ppo_clip_objective"
    r = as_float_array(ratio, "ratio")
    A = as_float_array(advantage, "advantage", r.dtype)
    check_same_shape(r, A, ("ratio", "advantage"), where)
    eps = check_epsilon(epsilon, where).astype(r.dtype)
    r = check_ratio(r, "ratio", where)
    A = check_finite(A, "advantage", where)
    return jnp.minimum(r * A, jnp.clip(r, 1.0 - eps, 1.0 + eps) * A)


@jaxtyped(typechecker=beartype)
def generalized_advantage_estimate(
    rewards: Float[ArrayLike, " T"],
    values: Float[ArrayLike, " T1"],
    dones: Real[ArrayLike, " T"] | jax.Array,
    gamma: ScalarLike,
    lam: ScalarLike,
) -> Float[Array, " T"]:
    r"""Generalised advantage estimation, GAE($\gamma, \lambda$), with episode ends.

    $$\hat A_t = \sum_{l\ge0}(\gamma\lambda)^l\delta_{t+l},\qquad
      \delta_t = r_t + \gamma(1-d_t)V(s_{t+1}) - V(s_t),$$

    $$\hat A_t = \delta_t + \gamma\lambda(1-d_t)\hat A_{t+1}$$

    where $d_t = 1$ ends the episode after step $t$ (no bootstrap, no carry across). $\lambda=0$
    gives the TD error, $\lambda=1$ the discounted return minus $V$. Notes A31 (常用 GAE 估计).
    Schulman et al. (2016) eq. (16). Written as a reverse `jax.lax.scan`; `vmap` over
    environments.

    **Arguments:**

    - `rewards`: $r_t$, `[T]`.
    - `values`: $V(s_0), \dots, V(s_T)$, `[T + 1]` (the last one bootstraps the cut-off).
    - `dones`: $d_t \in \{0, 1\}$, `[T]` (bool or number).
    - `gamma`: $\gamma\in[0,1]$; `lam`: $\lambda\in[0,1]$.

    **Returns:** $\hat A_t$, `[T]`. Unbiasedness with the exact $V_\pi$ for every $\lambda$ is
    proved by exact enumeration in
    `proofs_as_tests/test_ppo.py::test_gae_with_exact_values_is_unbiased`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> r, v, d = jnp.asarray([1.0, 1.0]), jnp.asarray([0.0, 0.0, 0.0]), jnp.asarray([0.0, 1.0])
    >>> A = rf.generalized_advantage_estimate(r, v, d, 0.9, 1.0)  # λ = 1: discounted returns
    >>> [round(x, 4) for x in A.tolist()]
    [1.9, 1.0]

    ```
    """
    where = "generalized_advantage_estimate"
    r = as_float_array(rewards, "rewards")
    v = as_float_array(values, "values", r.dtype)
    d = jnp.asarray(dones)
    if v.shape != (r.shape[0] + 1,):
        raise ValueError(
            f"{where}: `values` must have shape [T + 1] = ({r.shape[0] + 1},) (one more than "
            f"`rewards`, to bootstrap the last state), but has shape {tuple(v.shape)}."
        )
    if d.shape != r.shape:
        raise ValueError(
            f"{where}: `dones` must have the shape of `rewards` {tuple(r.shape)}, but has shape {tuple(d.shape)}."
        )
    g = check_interval(gamma, "gamma", where, 0.0, 1.0).astype(r.dtype)
    lam_arr = check_interval(lam, "lam", where, 0.0, 1.0).astype(r.dtype)
    check_dones = d.dtype != jnp.bool_  # booleans are 0 or 1 by construction
    if is_concrete(r, v, d):
        r = check_finite(r, "rewards", where)
        v = check_finite(v, "values", where)
        if check_dones:
            d = check_where(d, d, lambda xp, x: (x != 0) & (x != 1), f"{where}: `dones` must be 0 or 1", "dones")
        return _gae(r, v, d.astype(r.dtype), g, lam_arr)
    return _gae_checked(r, v, d, g, lam_arr, check_dones)


_GAE_MESSAGES = [
    f"generalized_advantage_estimate: `{name}` must be {what}{TRACED}."
    for name, what in (("rewards", "finite"), ("values", "finite"), ("dones", "0 or 1"))
]


def _gae_checked(r: Array, v: Array, d: Array, gamma: Array, lam: Array, check_dones: bool) -> Array:
    """GAE on traced inputs, the input checks read off the result.

    Â_t = δ_t + γλ(1 − d_t)Â_{t+1} with δ_t = r_t + γ(1 − d_t)V_{t+1} − V_t uses every r_t and every
    V_t, and a NaN or an infinity (even times 1 − d_t = 0) propagates into Â, so "every Â_t is
    finite" is "rewards and values are finite". Checking the result costs one reduction over Â
    (about +0–6% on a 10⁶-step batch with boolean `dones`) where checking r and v before the scan
    kept XLA from fusing the TD errors into it (+17–20%); numeric `dones` add one more pass for
    their 0-or-1 check (+13–18% in all). Which argument is bad is worked out only when one is (a
    `lax.cond` on an unbatched predicate).
    """
    df = d.astype(r.dtype)
    adv = _gae(r, v, df, gamma, lam)
    bad_dones = jnp.any((df != 0) & (df != 1)) if check_dones else jnp.asarray(False)
    pred = unvmap_any(~jnp.all(jnp.isfinite(adv)) | bad_dones)

    def which() -> Array:
        flags = jnp.stack([~jnp.all(jnp.isfinite(r)), ~jnp.all(jnp.isfinite(v)), bad_dones])
        return jnp.argmax(flags).astype(jnp.int32)

    index = jax.lax.cond(pred, which, lambda: jnp.asarray(0, jnp.int32))
    return eqx.branched_error_if(adv, pred, index, _GAE_MESSAGES)


@jax.jit
def _gae(r: Array, v: Array, d: Array, gamma: Array, lam: Array) -> Array:
    not_done = 1.0 - d
    deltas = r + gamma * not_done * v[1:] - v[:-1]
    decay = gamma * lam * not_done

    def step(carry: Array, x: tuple[Array, Array]) -> tuple[Array, Array]:
        delta, c = x
        adv = delta + c * carry
        return adv, adv

    _, adv = jax.lax.scan(step, jnp.zeros((), r.dtype), (deltas, decay), reverse=True)
    return adv
