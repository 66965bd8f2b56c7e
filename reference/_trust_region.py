r"""The trust-region theory of TRPO on finite MDPs (notes §3, 信赖域算法).

The surrogate, KL divergences, the penalty coefficient, the lower bound and the exact MM
iteration.

Sources: Schulman et al. (2015), "Trust Region Policy Optimization", §2–§3, App. A;
Kuba et al. (2022) §2.2 (Theorem 1 restated). The notes' items A21–A28.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from beartype import beartype
from jax.scipy.special import xlogy
from jaxtyping import jaxtyped

from ._checks import (
    as_float_array,
    check_distribution,
    check_finite,
    check_full_support,
    check_nonnegative_scalar,
    check_policy,
    check_positive_int,
    check_same_shape,
    check_shape,
    check_where,
)
from ._mdp import FiniteMDP
from ._types import Array, ArrayLike, Float, ScalarLike
from ._values import advantages, discounted_visitation, expected_return


def _check_pair(p: ArrayLike, q: ArrayLike, where: str, names: tuple[str, str]) -> tuple[Array, Array]:
    p_arr = as_float_array(p, names[0])
    q_arr = as_float_array(q, names[1], p_arr.dtype)
    check_same_shape(p_arr, q_arr, names, where)
    p_arr = check_distribution(p_arr, names[0], where, "...")
    q_arr = check_distribution(q_arr, names[1], where, "...")
    return p_arr, q_arr


@jaxtyped(typechecker=beartype)
def kl_divergence(p: Float[ArrayLike, "*batch A"], q: Float[ArrayLike, "*batch A"]) -> Float[Array, "*batch"]:
    r"""The Kullback–Leibler divergence along the last axis (KL 散度).

    $$D_{KL}(p\,\|\,q) = \sum_a p(a)\,\log\frac{p(a)}{q(a)}$$

    with $0\log(0/q) = 0$. Where $q(a) = 0 < p(a)$ the divergence is $+\infty$ (returned as
    `inf`, never NaN). Notes A23; Schulman et al. (2015) §3. The notes write
    $D_{KL}(\pi,\bar\pi)$ for $D_{KL}(\pi(\cdot|s)\,\|\,\bar\pi(\cdot|s))$ (old policy first).

    **Arguments:** `p`, `q`: distributions along the last axis, the same shape.

    **Returns:** `[...]`, one divergence per leading index. Additivity over product policies is
    proved in `proofs_as_tests/test_trust_region.py::test_kl_is_nonnegative_and_zero_iff_equal`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> p, q = jnp.asarray([0.5, 0.5]), jnp.asarray([0.9, 0.1])
    >>> round(float(rf.kl_divergence(p, q)), 4), float(rf.kl_divergence(p, p))
    (0.5108, 0.0)

    ```
    """
    p_arr, q_arr = _check_pair(p, q, "kl_divergence", ("p", "q"))
    return jnp.sum(xlogy(p_arr, p_arr) - xlogy(p_arr, q_arr), axis=-1)


def _check_gaussian(
    mean: ArrayLike, log_std: ArrayLike, where: str, names: tuple[str, str], dtype: jnp.dtype | None = None
) -> tuple[Array, Array]:
    mu = check_finite(as_float_array(mean, names[0], dtype), names[0], where)
    ls = check_finite(as_float_array(log_std, names[1], mu.dtype), names[1], where)
    if mu.shape[-1:] != ls.shape[-1:]:
        raise ValueError(
            f"{where}: `{names[0]}` and `{names[1]}` must end in the same action dimension D, "
            f"but have shapes {mu.shape} and {ls.shape}."
        )
    return mu, ls


@jaxtyped(typechecker=beartype)
def gaussian_log_prob(
    mean: Float[ArrayLike, "*#batch D"], log_std: Float[ArrayLike, "*#batch D"], action: Float[ArrayLike, "*#batch D"]
) -> Float[Array, "*batch"]:
    r"""Log-density of an action under a diagonal-Gaussian policy $\mathcal N(\mu, \mathrm{diag}\,\sigma^2)$.

    $$\log\pi(a\mid s) = -\sum_{d=1}^{D}\Big[\frac{(a_d-\mu_d)^2}{2\sigma_d^2} + \log\sigma_d
      + \tfrac12\log 2\pi\Big],\qquad \sigma_d = e^{\text{log\_std}_d}$$

    The policy of continuous actions the HATRPO/HAPPO authors use (a network's mean and a
    state-independent log-std). Notes A23a: beyond the notes, whose policies are tabular; the
    probability ratio and every objective of §3–§4 take these log-densities as they take
    log-probabilities.

    **Arguments:** `mean`, `log_std`, `action`: `[..., D]`, broadcast together (a
    state-independent `log_std` of shape `[D]` is the usual case); finite.

    **Returns:** `[...]` (`proofs_as_tests/test_trust_region.py::test_gaussian_log_prob_and_entropy_are_scipys`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> round(float(rf.gaussian_log_prob(jnp.zeros(1), jnp.zeros(1), jnp.zeros(1))), 4)  # −½ log 2π
    -0.9189

    ```
    """
    where = "gaussian_log_prob"
    mu, ls = _check_gaussian(mean, log_std, where, ("mean", "log_std"))
    a = check_finite(as_float_array(action, "action", mu.dtype), "action", where)
    return unchecked_gaussian_log_prob(mu, ls, a)


def unchecked_gaussian_log_prob(mu: Array, ls: Array, a: Array) -> Array:
    z = (a - mu) * jnp.exp(-ls)
    return -jnp.sum(0.5 * z**2 + ls + 0.5 * jnp.log(2 * jnp.pi), axis=-1)


@jaxtyped(typechecker=beartype)
def gaussian_entropy(log_std: Float[ArrayLike, "*batch D"]) -> Float[Array, "*batch"]:
    r"""Entropy of a diagonal Gaussian policy, in closed form.

    $$\mathcal H\big(\mathcal N(\mu, \mathrm{diag}\,\sigma^2)\big) = -\mathbb E[\log\pi(a\mid s)]
      = \sum_{d=1}^{D}\Big(\log\sigma_d + \tfrac12\log(2\pi e)\Big)$$

    It does not depend on the mean. The entropy bonus of HAPPO/MAPPO for continuous actions.
    Notes A23a (beyond the notes).

    **Arguments:** `log_std`: `[..., D]`, finite.

    **Returns:** `[...]` (`proofs_as_tests/test_trust_region.py::test_gaussian_log_prob_and_entropy_are_scipys`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> round(float(rf.gaussian_entropy(jnp.zeros(2))), 4)  # log(2πe)
    2.8379

    ```
    """
    ls = check_finite(as_float_array(log_std, "log_std"), "log_std", "gaussian_entropy")
    return unchecked_gaussian_entropy(ls)


def unchecked_gaussian_entropy(ls: Array) -> Array:
    return jnp.sum(ls + 0.5 * jnp.log(2 * jnp.pi * jnp.e), axis=-1)


@jaxtyped(typechecker=beartype)
def gaussian_kl(
    mean_p: Float[ArrayLike, "*#batch D"],
    log_std_p: Float[ArrayLike, "*#batch D"],
    mean_q: Float[ArrayLike, "*#batch D"],
    log_std_q: Float[ArrayLike, "*#batch D"],
) -> Float[Array, "*batch"]:
    r"""KL divergence between diagonal Gaussians, in closed form.

    $$D_{KL}(p\,\|\,q) = \sum_{d=1}^{D}\Big[\log\frac{\sigma_{q,d}}{\sigma_{p,d}}
      + \frac{\sigma_{p,d}^2 + (\mu_{p,d}-\mu_{q,d})^2}{2\sigma_{q,d}^2} - \frac12\Big]$$

    The constraint and line search of HATRPO with continuous actions (with $p$ the old policy,
    as for `kl_divergence`, A23). Its Hessian in $(\mu_q, \log\sigma_q)$ at $q = p$ is the Fisher
    information $\mathrm{diag}(1/\sigma^2,\ 2)$, which `fisher_vector_product` applies. Kullback
    (1959). Notes A23a (beyond the notes, whose KL is between categorical distributions).

    **Arguments:** the means and log-standard deviations of $p$ and $q$, `[..., D]`, broadcast
    together; finite.

    **Returns:** `[...]`, $\ge 0$, zero iff $p = q$
    (`proofs_as_tests/test_trust_region.py::test_gaussian_kl_is_the_integral`,
    `proofs_as_tests/test_trust_region.py::test_gaussian_fisher_is_the_closed_form`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> float(rf.gaussian_kl(jnp.zeros(1), jnp.zeros(1), jnp.ones(1), jnp.zeros(1)))  # (0 − 1)² / 2
    0.5

    ```
    """
    where = "gaussian_kl"
    mp, lp = _check_gaussian(mean_p, log_std_p, where, ("mean_p", "log_std_p"))
    mq, lq = _check_gaussian(mean_q, log_std_q, where, ("mean_q", "log_std_q"), mp.dtype)
    return unchecked_gaussian_kl(mp, lp, mq, lq)


def unchecked_gaussian_kl(mp: Array, lp: Array, mq: Array, lq: Array) -> Array:
    log_ratio = lp - lq  # log σ_p/σ_q
    t = ((mp - mq) * jnp.exp(-lq)) ** 2
    return jnp.sum(0.5 * (jnp.exp(2 * log_ratio) + t - 1.0) - log_ratio, axis=-1)


@jaxtyped(typechecker=beartype)
def max_kl(pi: Float[ArrayLike, "S A"], pi_bar: Float[ArrayLike, "S A"]) -> Float[Array, ""]:
    r"""The maximum over states of the KL divergence between two policies.

    $$D^{\max}_{KL}(\pi, \bar\pi) = \max_s D_{KL}\big(\pi(\cdot|s)\,\|\,\bar\pi(\cdot|s)\big)$$

    Notes A23. Schulman et al. (2015) eq. (9); Kuba et al. (2022) Theorem 1.

    **Arguments:** `pi` (old), `pi_bar` (new), both `[S, A]`.

    **Returns:** a scalar ($+\infty$ if `pi_bar` lacks support where `pi` has it). Used in
    the bound proved by `proofs_as_tests/test_trust_region.py::test_trpo_lower_bound_holds`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> pi = jnp.asarray([[0.5, 0.5], [0.2, 0.8]])
    >>> float(rf.max_kl(pi, pi)), float(rf.max_kl(pi, jnp.asarray([[1.0, 0.0], [0.2, 0.8]])))
    (0.0, inf)

    ```
    """
    return jnp.max(kl_divergence(pi, pi_bar))


@jaxtyped(typechecker=beartype)
def max_total_variation(pi: Float[ArrayLike, "S A"], pi_bar: Float[ArrayLike, "S A"]) -> Float[Array, ""]:
    r"""The maximum over states of the total-variation distance between two policies.

    $$\alpha = D^{\max}_{TV}(\pi,\bar\pi) = \max_s \tfrac12\sum_a\big|\pi(a|s)-\bar\pi(a|s)\big|$$

    Notes A25. Schulman et al. (2015) eq. (8) and App. A; $D_{TV}^2 \le D_{KL}$ (Pollard).

    **Arguments:** `pi`, `pi_bar`, both `[S, A]`.

    **Returns:** a scalar in $[0, 1]$ (`proofs_as_tests/test_trust_region.py::
    test_trpo_lower_bound_holds`, TV and two-sided forms).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> pi = jnp.asarray([[0.5, 0.5], [0.2, 0.8]])
    >>> round(float(rf.max_total_variation(pi, jnp.asarray([[0.5, 0.5], [0.6, 0.4]]))), 4)
    0.4

    ```
    """
    p, q = _check_pair(pi, pi_bar, "max_total_variation", ("pi", "pi_bar"))
    return jnp.max(0.5 * jnp.sum(jnp.abs(p - q), axis=-1))


@jaxtyped(typechecker=beartype)
def mean_kl(mdp: FiniteMDP, pi: Float[ArrayLike, "S A"], pi_bar: Float[ArrayLike, "S A"]) -> Float[Array, ""]:
    r"""The expected KL divergence under the NORMALISED discounted visitation of `pi`.

    $$\bar D_{KL}(\pi,\bar\pi) = \sum_s (1-\gamma)\rho_\pi(s)\,
      D_{KL}\big(\pi(\cdot|s)\,\|\,\bar\pi(\cdot|s)\big)$$

    Notes A27 (the TRPO constraint $\mathbb E_{s\sim\rho_{\pi_{\theta_k}}}[D_{KL}] \le \delta$),
    A45. Schulman et al. (2015) eq. (12). Correction C26: an expectation is
    read with the normalised weights $(1-\gamma)\rho_\pi$ (what a sample average estimates), so
    $\delta$ has the same scale for every $\gamma$.

    **Arguments:** `mdp`; `pi` (old, defines the weights); `pi_bar` (new).

    **Returns:** a scalar. Its Hessian is the Fisher matrix proved in
    `proofs_as_tests/test_trpo.py::test_tabular_softmax_fisher_matches_closed_form`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> float(rf.mean_kl(mdp, pi, pi))
    0.0

    ```
    """
    pi_arr = check_policy(pi, mdp.num_states, mdp.num_actions, "mean_kl")
    pi_bar_arr = check_policy(pi_bar, mdp.num_states, mdp.num_actions, "mean_kl", "pi_bar")
    weights = (1.0 - mdp.gamma) * discounted_visitation(mdp, pi_arr)
    return jnp.dot(weights, kl_divergence(pi_arr, pi_bar_arr))


@jaxtyped(typechecker=beartype)
def surrogate_objective(
    mdp: FiniteMDP, pi: Float[ArrayLike, "S A"], pi_bar: Float[ArrayLike, "S A"]
) -> Float[Array, ""]:
    r"""The surrogate $L_\pi(\bar\pi)$: $J(\pi)$ plus the advantage of $\bar\pi$ under $\rho_\pi$.

    $$L_\pi(\bar\pi) = J(\pi) + \sum_s\rho_\pi(s)\sum_a\bar\pi(a|s)A_\pi(s,a)$$

    with the UNNORMALISED $\rho_\pi$. Notes A22. Schulman et al. (2015) eq. (3); Kuba et al.
    (2022) §2.2. $L_\pi(\pi) = J(\pi)$ and $\nabla_{\bar\pi}L = \nabla J$ at $\bar\pi=\pi$
    (`proofs_as_tests/test_trust_region.py::test_surrogate_matches_objective_to_first_order`).

    **Arguments:** `mdp`; `pi` (current); `pi_bar` (candidate).

    **Returns:** a scalar.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> bool(jnp.isclose(rf.surrogate_objective(mdp, pi, pi), rf.expected_return(mdp, pi)))  # L_π(π) = J(π)
    True

    ```
    """
    pi_arr = check_policy(pi, mdp.num_states, mdp.num_actions, "surrogate_objective")
    pi_bar_arr = check_policy(pi_bar, mdp.num_states, mdp.num_actions, "surrogate_objective", "pi_bar")
    rho = discounted_visitation(mdp, pi_arr)
    gain = jnp.dot(rho, jnp.sum(pi_bar_arr * advantages(mdp, pi_arr), axis=-1))
    return expected_return(mdp, pi_arr) + gain


@jaxtyped(typechecker=beartype)
def performance_difference(
    mdp: FiniteMDP, pi: Float[ArrayLike, "S A"], pi_bar: Float[ArrayLike, "S A"]
) -> Float[Array, ""]:
    r"""The performance-difference lemma's right side: $\bar\pi$'s advantage under $\rho_{\bar\pi}$.

    $$J(\bar\pi) - J(\pi) = \sum_s\rho_{\bar\pi}(s)\sum_a\bar\pi(a|s)A_\pi(s,a)$$

    Note the visitation of the NEW policy (unnormalised). Notes A22 (what $L$ approximates).
    Schulman et al. (2015) eq. (1)–(2); Kakade & Langford (2002) Lemma 6.1.

    **Arguments:** `mdp`; `pi` (whose advantage is used); `pi_bar`.

    **Returns:** a scalar equal to $J(\bar\pi) - J(\pi)$
    (`proofs_as_tests/test_trust_region.py::test_performance_difference_lemma`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> pi_bar = jnp.full((12, 4), 0.1).at[:, 1].set(0.7)  # lean east
    >>> gap = rf.expected_return(mdp, pi_bar) - rf.expected_return(mdp, pi)
    >>> bool(jnp.isclose(rf.performance_difference(mdp, pi, pi_bar), gap, atol=1e-4))
    True

    ```
    """
    pi_arr = check_policy(pi, mdp.num_states, mdp.num_actions, "performance_difference")
    pi_bar_arr = check_policy(pi_bar, mdp.num_states, mdp.num_actions, "performance_difference", "pi_bar")
    rho_bar = discounted_visitation(mdp, pi_bar_arr)
    return jnp.dot(rho_bar, jnp.sum(pi_bar_arr * advantages(mdp, pi_arr), axis=-1))


def penalty_from_advantages(gamma: Array, A: Array) -> Array:
    """C = 4γ max|A| / (1−γ)² from an advantage tensor (single-agent or joint)."""
    return 4.0 * gamma * jnp.max(jnp.abs(A)) / (1.0 - gamma) ** 2


@jaxtyped(typechecker=beartype)
def penalty_coefficient(mdp: FiniteMDP, pi: Float[ArrayLike, "S A"]) -> Float[Array, ""]:
    r"""The penalty coefficient $C$ of the TRPO lower bound.

    $$C = \frac{4\gamma\,\epsilon_A}{(1-\gamma)^2},\qquad \epsilon_A = \max_{s,a}|A_\pi(s,a)|$$

    over all states and actions of the OLD policy $\pi$. Notes A24. Schulman et al. (2015)
    Theorem 1 / eq. (9); Kuba et al. (2022) Theorem 1. Correction C10: the notes reuse
    $\epsilon$ for PPO's clip width; here it is $\epsilon_A$.

    **Arguments:** `mdp`; `pi`.

    **Returns:** the scalar $C \ge 0$ (zero when $\gamma = 0$).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> C = rf.penalty_coefficient(mdp, pi)
    >>> bool(jnp.isclose(C, 4 * mdp.gamma * jnp.abs(rf.advantages(mdp, pi)).max() / (1 - mdp.gamma) ** 2))
    True

    ```
    """
    pi_arr = check_policy(pi, mdp.num_states, mdp.num_actions, "penalty_coefficient")
    return penalty_from_advantages(mdp.gamma, advantages(mdp, pi_arr))


@jaxtyped(typechecker=beartype)
def trpo_lower_bound(mdp: FiniteMDP, pi: Float[ArrayLike, "S A"], pi_bar: Float[ArrayLike, "S A"]) -> Float[Array, ""]:
    r"""The TRPO lower bound on $J(\bar\pi)$ (Theorem 1).

    $$J(\bar\pi) \;\ge\; L_\pi(\bar\pi) - C\,D^{\max}_{KL}(\pi,\bar\pi),\qquad
      C = \frac{4\gamma\max_{s,a}|A_\pi(s,a)|}{(1-\gamma)^2}$$

    Notes A24 (定理). Schulman et al. (2015) Theorem 1, eq. (9); Kuba et al. (2022) Theorem 1.
    It holds with the UNNORMALISED $\rho_\pi$ in $L$; with the normalised one it fails
    (`proofs_as_tests/test_trust_region.py::test_normalised_visitation_breaks_the_bound`).

    **Arguments:** `mdp`; `pi` (old); `pi_bar` (new).

    **Returns:** the scalar right side ($-\infty$ if `pi_bar` lacks support where `pi` has
    it and $C > 0$). Proved in `proofs_as_tests/test_trust_region.py::test_trpo_lower_bound_holds`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> pi_bar = jnp.full((12, 4), 0.2).at[:, 1].set(0.4)
    >>> bool(rf.expected_return(mdp, pi_bar) >= rf.trpo_lower_bound(mdp, pi, pi_bar))
    True

    ```
    """
    pi_arr = check_policy(pi, mdp.num_states, mdp.num_actions, "trpo_lower_bound")
    pi_bar_arr = check_policy(pi_bar, mdp.num_states, mdp.num_actions, "trpo_lower_bound", "pi_bar")
    C = penalty_coefficient(mdp, pi_arr)
    D = max_kl(pi_arr, pi_bar_arr)
    penalty = jnp.where(C > 0, C * D, 0.0)
    return surrogate_objective(mdp, pi_arr, pi_bar_arr) - penalty


@jaxtyped(typechecker=beartype)
def surrogate_error_bound(
    mdp: FiniteMDP, pi: Float[ArrayLike, "S A"], pi_bar: Float[ArrayLike, "S A"]
) -> Float[Array, ""]:
    r"""The two-sided bound on how far the surrogate is from the true objective (TRPO App. A).

    $$\big|J(\bar\pi) - L_\pi(\bar\pi)\big| \;\le\;
      \frac{4\alpha^2\gamma\,\epsilon_A}{(1-\gamma)\,(1-\gamma(1-\alpha))}
      \;\le\; \frac{4\gamma\,\epsilon_A}{(1-\gamma)^2}\,\alpha^2,$$

    $$\alpha = D^{\max}_{TV}(\pi,\bar\pi),\ \ \epsilon_A = \max_{s,a}|A_\pi(s,a)|$$

    Notes A25 (the claim that $L \approx J$ for nearby policies, made precise). Schulman et al.
    (2015) App. A, eqs. (41)–(45). The right-hand form is the TV version of Theorem 1 (A24):
    $J(\bar\pi) \ge L_\pi(\bar\pi) - C\alpha^2$.

    **Arguments:** `mdp`; `pi` (old); `pi_bar` (new).

    **Returns:** the bound (a scalar $\ge 0$; zero when $\gamma = 0$ or $\pi = \bar\pi$), proved in
    `proofs_as_tests/test_trust_region.py::test_trpo_lower_bound_holds`.

    **Examples:**

    ```pycon
    >>> import jax.numpy as jnp, reference as rf
    >>> mdp = rf.gridworld_4x3()
    >>> pi = jnp.full((12, 4), 0.25)
    >>> float(rf.surrogate_error_bound(mdp, pi, pi))
    0.0

    ```
    """
    where = "surrogate_error_bound"
    pi_arr = check_policy(pi, mdp.num_states, mdp.num_actions, where)
    pi_bar_arr = check_policy(pi_bar, mdp.num_states, mdp.num_actions, where, "pi_bar")
    eps = jnp.max(jnp.abs(advantages(mdp, pi_arr)))
    alpha = max_total_variation(pi_arr, pi_bar_arr)
    g = mdp.gamma
    return 4.0 * alpha**2 * g * eps / ((1.0 - g) * (1.0 - g * (1.0 - alpha)))


class TrustRegionStep(NamedTuple):
    """What `exact_trust_region_step` returns: the maximiser, its KL budget and multipliers.

    At an interior optimum every active state's KL equals `budget` and `kkt_residual` vanishes
    (the certificate tested in `proofs_as_tests/test_trust_region.py`).
    """

    policy: Float[Array, "S A"]
    """The maximiser $\\bar\\pi$."""
    budget: Float[Array, ""]
    """The optimal KL budget $\\delta^* = \\max_s D_{KL}(p_s\\|\\bar\\pi_s)$."""
    multipliers: Float[Array, " S"]
    """Each state's KL multiplier $\\lambda_s$ (0 where the state is inactive)."""
    kkt_residual: Float[Array, ""]
    """$\\sum_s w_s\\lambda_s - C$, zero at the optimum (when $\\delta^*$ is interior)."""


_MAX_NEWTON = 80


def _state_terms(p: Array, b: Array, x: Array) -> tuple[Array, Array, Array, Array, Array]:
    """Per-state terms at ν_s = max a_s + e^{x_s}.

    With b = max a − a ≥ 0, z = b e^{−x}, r = 1/(1+z):
    KL(p‖q) = E_p log1p(z) + log E_p r  (cancellation-free), dKL/dx = −Var_p(r)/E_p r,
    q ∝ p r, λ = e^x / E_p r and dλ/dδ = −λ E_p r² / Var_p(r).
    """
    z = b * jnp.exp(-x)[:, None]
    log_r = -jnp.log1p(z)
    r = jnp.exp(log_r)
    s = z / (1.0 + z)  # 1 − r, accurate when z is small
    Es = jnp.sum(p * s, axis=-1)
    # log E_p r: log1p(−E_p s) is accurate when E_p r ≈ 1; a logsumexp when E_p r is tiny (the
    # argmax action may carry p ≈ 1e-300 after many near-greedy steps).
    log_p = jnp.log(p)
    log_Er = jnp.where(Es < 0.5, jnp.log1p(-jnp.minimum(Es, 0.5)), jax.scipy.special.logsumexp(log_p + log_r, axis=-1))
    Er = jnp.exp(log_Er)
    Er2 = jnp.sum(p * r * r, axis=-1)
    var = jnp.maximum(jnp.sum(p * (s - Es[:, None]) ** 2, axis=-1), jnp.finfo(p.dtype).tiny)
    kl = jnp.sum(p * jnp.log1p(z), axis=-1) + log_Er
    dkl_dx = -var / Er
    lam = jnp.exp(x - log_Er)
    dlam_ddelta = -lam * Er2 / var
    q = jax.nn.softmax(log_p + log_r, axis=-1)
    return kl, dkl_dx, lam, dlam_ddelta, q


_NewtonCarry = tuple[Array, Array, Array, Array, Array, Array]


def _safeguarded_newton(fun, x0: Array, lo: Array, hi: Array, tol: float) -> Array:
    """Root of a decreasing `fun(x) -> (g, dg)` inside [lo, hi], elementwise.

    Newton steps are taken while they stay in the bracket and at least halve |g| (as in
    Numerical Recipes' rtsafe); otherwise the step bisects the bracket.
    """

    def cond(carry: _NewtonCarry) -> Array:
        _, _, _, _, k, err = carry
        return (k < _MAX_NEWTON) & (err > tol)

    def body(carry: _NewtonCarry) -> _NewtonCarry:
        x, lo, hi, g_prev, k, _ = carry
        g, dg = fun(x)
        lo = jnp.where(g > 0, x, lo)  # decreasing: g > 0 means the root lies to the right
        hi = jnp.where(g > 0, hi, x)
        step = x - g / jnp.where(dg < 0, dg, -1.0)
        # Inclusive: at an exact root (g = 0) the bracket closes on x and the step stays at x.
        inside = (step >= lo) & (step <= hi) & jnp.isfinite(step)
        progress = jnp.abs(g) <= 0.5 * g_prev
        done = jnp.abs(g) <= tol  # converged elements stay put (round-off cannot halve |g|)
        x_new = jnp.where(done, x, jnp.where(inside & progress, step, 0.5 * (lo + hi)))
        finite = jnp.isfinite(g)
        err = jnp.max(jnp.where(finite & (hi - lo > tol), jnp.abs(g), 0.0) + jnp.where(finite, 0.0, jnp.inf))
        return x_new, lo, hi, jnp.abs(g), k + 1, err

    inf = jnp.full_like(x0, jnp.inf)
    init = (jnp.clip(x0, lo, hi), lo, hi, inf, jnp.asarray(0, jnp.int32), jnp.asarray(jnp.inf, x0.dtype))
    x, *_ = jax.lax.while_loop(cond, body, init)
    return x


@jax.jit
def exact_step_unchecked(p: Array, w: Array, a: Array, C: Array) -> TrustRegionStep:
    dtype = p.dtype
    tol = 1e-12 if jnp.finfo(dtype).bits >= 64 else 1e-5
    span = jnp.max(a, axis=-1) - jnp.min(a, axis=-1)
    active = (w > 0) & (span > 0)
    b = jnp.where(active[:, None], jnp.max(a, axis=-1, keepdims=True) - a, 0.0)
    safe_span = jnp.where(active, span, 1.0)
    var_a = jnp.maximum(jnp.sum(p * b * b, axis=-1) - jnp.sum(p * b, axis=-1) ** 2, 0.0)
    var_a = jnp.where(active, jnp.maximum(var_a, jnp.finfo(dtype).tiny), 1.0)
    # The bracket for x = log(ν − max a): wide enough for KL up to ~(1 − max p)·reach, narrow
    # enough that e^{-x}·span does not overflow.
    reach = 600.0 if jnp.finfo(dtype).bits >= 64 else 80.0
    x_lo, x_hi = jnp.log(safe_span) - reach, jnp.log(safe_span) + 35.0
    C_safe = jnp.where(C > 0, C, 1.0)

    def solve_states(log_delta: Array, x0: Array) -> Array:
        def fun(x: Array) -> tuple[Array, Array]:
            kl, dkl_dx, *_ = _state_terms(p, b, x)
            g = jnp.where(active, jnp.log(kl) - log_delta, 0.0)
            return g, jnp.where(active, dkl_dx / kl, -1.0)

        return _safeguarded_newton(fun, x0, x_lo, x_hi, tol)

    def x_guess(log_delta: Array) -> Array:
        # KL ≈ Var_p(a) / (2 t²) for a small budget: t = sqrt(Var / 2δ).
        return 0.5 * (jnp.log(var_a / 2.0) - log_delta)

    def outer(y: Array) -> tuple[Array, Array]:
        x = solve_states(y, x_guess(y))
        _, _, lam, dlam, _ = _state_terms(p, b, x)
        total = jnp.sum(jnp.where(active, w * lam, 0.0))
        dtotal_dy = jnp.exp(y) * jnp.sum(jnp.where(active, w * dlam, 0.0))
        return jnp.log(total) - jnp.log(C_safe), dtotal_dy / total

    y_lo, y_hi = jnp.asarray(-60.0, dtype), jnp.asarray(jnp.log(50.0), dtype)
    # Small-budget guess: Σ w λ ≈ Σ w sqrt(Var/2) / sqrt(δ) = C.
    y0 = 2.0 * (jnp.log(jnp.sum(jnp.where(active, w * jnp.sqrt(var_a / 2.0), 0.0))) - jnp.log(C_safe))
    y0 = jnp.where(jnp.isfinite(y0), y0, 0.5 * (y_lo + y_hi))
    y = _safeguarded_newton(lambda v: tuple(t[None] for t in outer(v[0])), y0[None], y_lo[None], y_hi[None], tol)[0]
    x = solve_states(y, x_guess(y))
    _, _, lam, _, q = _state_terms(p, b, x)
    lam = jnp.where(active, lam, 0.0)
    total = jnp.sum(w * lam)
    greedy = jax.nn.one_hot(jnp.argmax(a, axis=-1), p.shape[-1], dtype=dtype)
    # Floor at a tiny normal number: entries only underflow where p itself is < ~1e-47 (after
    # many near-greedy steps); the floor keeps D_KL(p‖q) finite and changes nothing visible.
    q = jnp.maximum(q, 1e3 * jnp.finfo(dtype).tiny)
    q = jnp.where(C > 0, q, greedy)
    q = jnp.where(active[:, None], q, p)
    any_active = jnp.any(active)
    budget = jnp.where(any_active, jnp.exp(y), 0.0)
    budget = jnp.where(C > 0, budget, jnp.inf)
    residual = jnp.where(any_active & (C > 0), total - C, 0.0)
    return TrustRegionStep(q, budget, lam, residual)


@jaxtyped(typechecker=beartype)
def exact_trust_region_step(
    pi_old: Float[ArrayLike, "S A"],
    weights: Float[ArrayLike, " S"],
    scores: Float[ArrayLike, "S A"],
    penalty: ScalarLike,
) -> TrustRegionStep:
    r"""The exact maximiser of a linear objective minus a max-KL penalty over all policies.

    $$\bar\pi = \arg\max_{q}\ \sum_s w_s\langle q(\cdot|s), a_s\rangle
      - C\max_s D_{KL}\big(p(\cdot|s)\,\|\,q(\cdot|s)\big),\qquad p = \pi_{\text{old}}$$

    Notes A26 and A44b. This is the step of the MM iteration (A26: $w = \rho_\pi$, $a = A_\pi$, $C$ from
    A24) and of Algorithm 1 (A44b: $a$ the expected local advantage of agent $i_m$). Method
    (explained in `docs/trust_region.md`): with the shared budget $\delta = \max_s D_{KL}$, each state solves
    $\max\{\langle q, a_s\rangle : D_{KL}(p_s\|q)\le\delta\}$, whose solution is
    $q_i = \lambda_s p_i/(\nu_s - a_i)$, $\lambda_s = 1/\sum_i p_i/(\nu_s - a_i)$, with
    $\nu_s > \max a_s$ found by bisection on $D_{KL}(p_s\|q) = \delta$; then $\delta^*$ solves
    $\sum_s w_s\lambda_s(\delta) = C$ (the derivative of the concave value $g(\delta)$), by a
    second bisection in $\log\delta$. States with $w_s = 0$ or constant $a_s$ keep $p_s$;
    with $C = 0$ the maximiser is greedy. Jit-, vmap- and float32-safe.

    **Arguments:**

    - `pi_old`: $p$, `[S, A]`, with full support (a zero-probability action is never charged
      by $D_{KL}(p\|q)$, so the supremum may not be attained there).
    - `weights`: $w_s \ge 0$, `[S]`.
    - `scores`: $a_s$, `[S, A]`.
    - `penalty`: $C \ge 0$.

    **Returns:** `TrustRegionStep(policy, budget, multipliers, kkt_residual)`. Optimality (the
    KKT certificate, and no random feasible perturbation scoring higher) is proved in
    `proofs_as_tests/test_trust_region.py::test_exact_step_is_the_maximiser`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> step = rf.exact_trust_region_step(jnp.full((1, 3), 1 / 3), jnp.ones(1), jnp.asarray([[1.0, 0.0, 0.0]]), 1.0)
    >>> bool(step.policy[0, 0] > 1 / 3), bool(jnp.isclose(step.policy.sum(), 1.0))  # more mass on the best action
    (True, True)

    ```
    """
    where = "exact_trust_region_step"
    p = as_float_array(pi_old, "pi_old")
    if p.ndim != 2:
        raise ValueError(f"{where}: `pi_old` must have shape [S, A], but has shape {tuple(p.shape)}.")
    S, A = p.shape
    p = check_policy(p, S, A, where, "pi_old")
    w = as_float_array(weights, "weights", p.dtype)
    a = as_float_array(scores, "scores", p.dtype)
    check_shape(w, (S,), "weights", where, "[S]")
    check_shape(a, (S, A), "scores", where, "[S, A]")
    p = check_full_support(p, "pi_old", where)
    w = check_finite(w, "weights", where)
    w = check_where(w, w, lambda xp, x: x < 0, f"{where}: `weights` must be non-negative", "weights")
    a = check_finite(a, "scores", where)
    C = check_nonnegative_scalar(penalty, "penalty", where).astype(p.dtype)
    return exact_step_unchecked(p, w, a, C)


@jaxtyped(typechecker=beartype)
def monotonic_policy_iteration(mdp: FiniteMDP, pi0: Float[ArrayLike, "S A"], num_iters: int) -> Float[Array, "N S A"]:
    r"""The MM iteration of TRPO, each step the EXACT maximiser of the lower bound.

    $$\pi_{k+1} = \arg\max_{\pi}\Big(L_{\pi_k}(\pi) - C_k\,D^{\max}_{KL}(\pi_k,\pi)\Big),
      \qquad J(\pi_{k+1}) \ge J(\pi_k)$$

    with $C_k$ from $A_{\pi_k}$ (A24), fixed during the argmax. Notes A26. Schulman et al.
    (2015) Algorithm 1, eq. (10); Kuba et al. (2022) §2.2. Each step is
    `exact_trust_region_step` with $w = \rho_{\pi_k}$ and $a = A_{\pi_k}$ (the $J(\pi_k)$ term
    of $L$ does not depend on $\pi$). Runs in `jax.lax.scan`.

    **Arguments:**

    - `mdp`: the MDP.
    - `pi0`: the initial policy, full support.
    - `num_iters`: the number of steps (static).

    **Returns:** `[num_iters + 1, S, A]`: $\pi_0, \pi_1, \dots$. Monotone improvement is proved
    in `proofs_as_tests/test_trust_region.py::test_monotonic_policy_iteration_never_decreases_J`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> path = rf.monotonic_policy_iteration(mdp, pi, 5)
    >>> J = jax.vmap(lambda p: rf.expected_return(mdp, p))(path)
    >>> path.shape, bool(jnp.all(jnp.diff(J) >= -1e-5))  # J never decreases
    ((6, 12, 4), True)

    ```
    """
    where = "monotonic_policy_iteration"
    check_positive_int(num_iters, "num_iters", where, minimum=0)
    pi = check_policy(pi0, mdp.num_states, mdp.num_actions, where, "pi0")
    pi = check_full_support(pi, "pi0", where)
    return _monotonic_policy_iteration(mdp, pi, num_iters)


@partial(jax.jit, static_argnames="num_iters")
def _monotonic_policy_iteration(mdp: FiniteMDP, pi0: Array, num_iters: int) -> Array:
    def step(pi: Array, _: None) -> tuple[Array, Array]:
        A = advantages(mdp, pi)
        C = penalty_from_advantages(mdp.gamma, A)
        new = exact_step_unchecked(pi, discounted_visitation(mdp, pi), A, C).policy
        return new, new

    _, path = jax.lax.scan(step, pi0, None, length=num_iters)
    return jnp.concatenate([pi0[None], path], axis=0)
