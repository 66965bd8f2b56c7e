"""Notes §3 (信赖域算法): the surrogate, the TRPO bound, the exact MM iteration. Catalogue items B8–B12 (`docs/notes.md`)."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.optimize
import scipy.stats
from hypothesis import given, strategies as st

import reference as rf
from proofs_as_tests.strategies import at_most, mdp_and_policy, mdp_and_policy_pair, mdps, policy_pairs, tol


@given(mdp_and_policy_pair())
def test_performance_difference_lemma(case):
    """B8: J(π̄) − J(π) = Σ_s ρ_π̄(s) Σ_a π̄(a|s) A_π(s,a), with the new policy's unnormalised ρ."""
    mdp, pi, pi_bar = case
    lhs = rf.expected_return(mdp, pi_bar) - rf.expected_return(mdp, pi)
    rhs = rf.performance_difference(mdp, pi, pi_bar)
    assert abs(float(lhs - rhs)) <= tol(rf.state_values(mdp, pi), rf.state_values(mdp, pi_bar), rel=1e-9)


surrogate_grad = jax.jit(
    jax.grad(lambda th, th0, mdp: rf.surrogate_objective(mdp, jax.nn.softmax(th0, -1), jax.nn.softmax(th, -1)))
)
objective_grad = jax.jit(jax.grad(lambda th, mdp: rf.expected_return(mdp, jax.nn.softmax(th, -1))))


@at_most(40)  # each example compiles new shapes
@given(mdps(), st.data())
def test_surrogate_matches_objective_to_first_order(mdp, data):
    """B9 (A22, A25): L_π(π) = J(π), and ∇_θ L_{π_θ0}(π_θ) = ∇_θ J(π_θ) at θ = θ0 (TRPO eq. 4);
    the gradient of J is taken through the linear solve."""
    S, A = mdp.num_states, mdp.num_actions
    theta = jnp.asarray(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(-3, 3, (S, A)))
    pi = jax.nn.softmax(theta, -1)
    J = rf.expected_return(mdp, pi)
    assert abs(float(rf.surrogate_objective(mdp, pi, pi) - J)) <= tol(rf.state_values(mdp, pi), rel=1e-10)
    np.testing.assert_allclose(
        surrogate_grad(theta, theta, mdp),
        objective_grad(theta, mdp),
        rtol=0,
        atol=tol(rf.state_values(mdp, pi), rel=1e-9),
    )


def tv_two_sided_bound(mdp, pi, pi_bar):
    g = float(mdp.gamma)
    eps = float(jnp.max(jnp.abs(rf.advantages(mdp, pi))))
    alpha = float(rf.max_total_variation(pi, pi_bar))
    return 4 * alpha**2 * g * eps / ((1 - g) * (1 - g * (1 - alpha)))


@given(mdp_and_policy_pair(max_gamma=0.95))
def test_trpo_lower_bound_holds(case):
    """B10 (A24, A25): J(π̄) ≥ L_π(π̄) − C·D_KL^max(π, π̄) (Theorem 1), also with the KL reversed,
    J(π̄) ≥ L_π(π̄) − C·α² with α = max_s D_TV, and the two-sided
    |J(π̄) − L_π(π̄)| ≤ 4α²γε/((1−γ)(1−γ(1−α))) (TRPO App. A), for near and far-apart policies."""
    mdp, pi, pi_bar = case
    J_bar = float(rf.expected_return(mdp, pi_bar))
    L = float(rf.surrogate_objective(mdp, pi, pi_bar))
    C = float(rf.penalty_coefficient(mdp, pi))
    t = tol(rf.state_values(mdp, pi), rf.state_values(mdp, pi_bar), rel=1e-9)
    assert J_bar >= float(rf.trpo_lower_bound(mdp, pi, pi_bar)) - t
    assert J_bar >= L - C * float(rf.max_kl(pi_bar, pi)) - t
    alpha = float(rf.max_total_variation(pi, pi_bar))
    assert J_bar >= L - C * alpha**2 - t
    assert abs(J_bar - L) <= tv_two_sided_bound(mdp, pi, pi_bar) + t


@given(mdp_and_policy_pair(max_gamma=0.95))
def test_surrogate_error_bound_is_the_closed_form(case):
    """A25: `surrogate_error_bound` equals 4α²γε/((1−γ)(1−γ(1−α))) computed in numpy from an
    independently solved A_π (np.linalg.solve of the Bellman system), α the max TV distance and
    ε = max|A_π| — this pins every constant (the 4, γ, the max) — and it bounds |J(π̄) − L_π(π̄)|."""
    mdp, pi, pi_bar = case
    P, R, g = np.asarray(mdp.P), np.asarray(mdp.R), float(mdp.gamma)
    p = np.asarray(pi)
    S = P.shape[0]
    V = np.linalg.solve(np.eye(S) - g * np.einsum("sa,sat->st", p, P), (p * R).sum(1))
    A = R + g * P @ V - V[:, None]
    alpha = 0.5 * np.abs(p - np.asarray(pi_bar)).sum(1).max()
    expected = 4 * alpha**2 * g * np.abs(A).max() / ((1 - g) * (1 - g * (1 - alpha)))
    got = float(rf.surrogate_error_bound(mdp, pi, pi_bar))
    assert abs(got - expected) <= 1e-9 * (1 + abs(expected))
    t = tol(rf.state_values(mdp, pi), rf.state_values(mdp, pi_bar), rel=1e-9)
    assert abs(float(rf.expected_return(mdp, pi_bar)) - float(rf.surrogate_objective(mdp, pi, pi_bar))) <= got + t


def _numpy_values(P, R, g, p):
    """V_π and A_π by numpy's own linear solve (independent of the library)."""
    S = P.shape[0]
    V = np.linalg.solve(np.eye(S) - g * np.einsum("sa,sat->st", p, P), (p * R).sum(1))
    return V, R + g * P @ V - V[:, None]


@at_most(50)
@given(mdp_and_policy_pair(max_gamma=0.95))
def test_lower_bound_and_penalty_are_the_closed_form(case):
    """A24–A25's constants pinned: `penalty_coefficient` = 4γ·max_{s,a}|A_π(s,a)|/(1−γ)² and
    `trpo_lower_bound` = J(π) + Σ_s ρ_π(s) Σ_a π̄(a|s) A_π(s,a) − C·max_s Σ_a π(a|s) log(π(a|s)/π̄(a|s)),
    every term computed in numpy from an independently solved V_π, A_π and ρ_π (numpy's linear
    solves). This pins the 4, γ, the square of 1−γ, `max` (not `mean`) over states and (s, a), the
    KL's direction and the unnormalised ρ — which the inequality alone cannot (see
    `test_trpo_lower_bound_holds`)."""
    mdp, pi, pi_bar = case
    P, R, g = np.asarray(mdp.P), np.asarray(mdp.R), float(mdp.gamma)
    p, q = np.asarray(pi), np.asarray(pi_bar)
    S = P.shape[0]
    V, A = _numpy_values(P, R, g, p)
    rho = np.linalg.solve((np.eye(S) - g * np.einsum("sa,sat->st", p, P)).T, np.asarray(mdp.rho0))
    C = 4 * g * np.abs(A).max() / (1 - g) ** 2
    kl = (p * (np.log(p) - np.log(q))).sum(axis=1).max()
    expected = np.asarray(mdp.rho0) @ V + rho @ (q * A).sum(axis=1) - C * kl
    t = 1e-9 * (1 + np.abs(V).max())
    assert abs(float(rf.penalty_coefficient(mdp, pi)) - C) <= 1e-9 * (1 + C)
    assert abs(float(rf.trpo_lower_bound(mdp, pi, pi_bar)) - expected) <= t * (1 + C * (1 + kl))


@given(mdp_and_policy_pair(max_gamma=0.95), st.sampled_from([0.0, 0.05, 0.3, 1.0]))
def test_kakade_langford_bound_for_mixtures(case, alpha):
    """B11 (TRPO eq. 6, Kakade & Langford 2002): for the mixture π_new = (1 − α)π + απ′,
    J(π_new) ≥ L_π(π_new) − 2εγα²/(1 − γ)² with ε = max_s |E_{a∼π′} A_π(s, a)|. Both sides in
    numpy (J by a linear solve, L = J(π) + Σ_s ρ_π(s) Σ_a π_new A_π), independent of the library;
    the library's `surrogate_objective` and `expected_return` are checked against them."""
    mdp, pi, pi_prime = case
    P, R, g = np.asarray(mdp.P), np.asarray(mdp.R), float(mdp.gamma)
    p, q = np.asarray(pi), np.asarray(pi_prime)
    new = (1 - alpha) * p + alpha * q
    rho0 = np.asarray(mdp.rho0)
    V, A = _numpy_values(P, R, g, p)
    V_new, _ = _numpy_values(P, R, g, new)
    S = P.shape[0]
    rho = np.linalg.solve((np.eye(S) - g * np.einsum("sa,sat->st", p, P)).T, rho0)
    J, J_new = rho0 @ V, rho0 @ V_new
    L = J + rho @ (new * A).sum(1)
    eps = np.abs((q * A).sum(1)).max()
    t = 1e-9 * (1 + np.abs(V).max() + np.abs(V_new).max())
    assert J_new >= L - 2 * eps * g * alpha**2 / (1 - g) ** 2 - t
    assert abs(float(rf.surrogate_objective(mdp, pi, jnp.asarray(new))) - L) <= t
    assert abs(float(rf.expected_return(mdp, jnp.asarray(new))) - J_new) <= t


def _negative_control_instance(key):
    """A random 3-state MDP (γ = 0.5) and a small random step π → π̄ (scale 0.03)."""
    k1, k2, k3 = jax.random.split(key, 3)
    mdp = rf.random_mdp(k1, 3, 2, 0.5)
    theta = jax.random.uniform(k2, (3, 2), minval=-3, maxval=3)
    return mdp, jax.nn.softmax(theta, -1), jax.nn.softmax(theta + 0.03 * jax.random.normal(k3, (3, 2)), -1)


def _normalised_violation(key):
    """J(π̄) − [J(π) + (1−γ)Σ ρ_π π̄ A_π − C·D^max]: negative means the bound with the
    normalised visitation fails."""
    mdp, pi, pi_bar = _negative_control_instance(key)
    A = rf.advantages(mdp, pi)
    rho = rf.discounted_visitation(mdp, pi)
    L_normalised = rf.expected_return(mdp, pi) + (1 - mdp.gamma) * jnp.dot(rho, jnp.sum(pi_bar * A, -1))
    return rf.expected_return(mdp, pi_bar) - (L_normalised - rf.penalty_coefficient(mdp, pi) * rf.max_kl(pi, pi_bar))


def test_normalised_visitation_breaks_the_bound():
    """B10 negative control (C8): with the NORMALISED (1−γ)ρ_π in the surrogate,
    the bound fails on some random instance; the same instances satisfy it with the
    unnormalised ρ_π. So the convention matters and the bound test would notice a wrong ρ."""
    keys = jax.random.split(jax.random.key(2024), 1000)
    margins = jax.jit(jax.vmap(_normalised_violation))(keys)
    worst = int(jnp.argmin(margins))
    assert float(margins[worst]) < -1e-3, float(margins[worst])
    mdp, pi, pi_bar = _negative_control_instance(keys[worst])
    assert float(rf.expected_return(mdp, pi_bar)) >= float(rf.trpo_lower_bound(mdp, pi, pi_bar)) - 1e-12


@given(st.integers(1, 4), st.integers(1, 5), st.data())
def test_kl_is_nonnegative_and_zero_iff_equal(S, A, data):
    """A23: D_KL(p‖q) ≥ 0 with equality at q = p, equal to the explicit Σ p log(p/q); +inf (never
    NaN) where q misses p's support; additive over product distributions (B19 preview)."""
    p, q = data.draw(policy_pairs(S, A))
    kl = rf.kl_divergence(p, q)
    expected = np.sum(np.asarray(p) * np.log(np.asarray(p) / np.asarray(q)), -1)
    np.testing.assert_allclose(kl, expected, rtol=1e-10, atol=1e-14)
    assert bool(jnp.all(kl >= -1e-15))
    np.testing.assert_allclose(rf.kl_divergence(p, p), 0.0, atol=1e-15)
    if A >= 2:
        q0 = q.at[:, 0].set(0.0)
        q0 = q0 / q0.sum(-1, keepdims=True)
        out = rf.kl_divergence(p, q0)
        assert bool(jnp.all(jnp.isinf(out))) and not bool(jnp.any(jnp.isnan(out)))
    joint_p = (p[:, :, None] * p[:, None, :]).reshape(S, -1)
    joint_q = (q[:, :, None] * q[:, None, :]).reshape(S, -1)
    np.testing.assert_allclose(rf.kl_divergence(joint_p, joint_q), 2 * kl, rtol=1e-9, atol=1e-13)


@given(mdp_and_policy_pair())
def test_mean_kl_uses_normalised_visitation(case):
    """A27, C26: mean_kl averages D_KL over the normalised (1−γ)ρ_π, i.e. over the time marginals
    μ_t = ρ0 P_π^t with weights (1−γ)γ^t (series computed in numpy)."""
    mdp, pi, pi_bar = case
    P_pi = np.einsum("sa,sat->st", np.asarray(pi), np.asarray(mdp.P))
    kl = np.asarray(rf.kl_divergence(pi, pi_bar))
    g, mu, total, w = float(mdp.gamma), np.asarray(mdp.rho0), 0.0, 1.0
    for _ in range(20000):
        total += (1 - g) * w * mu @ kl
        mu, w = mu @ P_pi, w * g
        if w < 1e-17:
            break
    np.testing.assert_allclose(float(rf.mean_kl(mdp, pi, pi_bar)), total, rtol=1e-9, atol=1e-12)


def penalised_objective(w, a, p, C, q):
    """M(q) = Σ_s w_s ⟨q_s, a_s⟩ − C max_s D_KL(p_s‖q_s)."""
    return float(jnp.sum(w * jnp.sum(q * a, -1)) - C * jnp.max(rf.kl_divergence(p, q)))


@given(st.integers(1, 5), st.integers(2, 5), st.data())
def test_exact_step_is_the_maximiser(S, A, data):
    """A26, B12: exact_trust_region_step returns the maximiser of
    Σ_s w_s⟨q_s, a_s⟩ − C·max_s D_KL(p_s‖q_s): every active state's KL equals the budget δ*,
    the KKT residual Σ_s w_s λ_s − C vanishes, and no random perturbation scores higher."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    p = jnp.asarray(rng.dirichlet(np.ones(A), size=S) * 0.98 + 0.02 / A)
    w = jnp.asarray(rng.uniform(0, 3, S) * (rng.random(S) < 0.85))
    a = jnp.asarray(rng.normal(size=(S, A)))
    C = float(data.draw(st.sampled_from([0.1, 1.0, 10.0, 1000.0])))
    step = rf.exact_trust_region_step(p, w, a, C)
    q = step.policy
    active = np.asarray(w) > 0
    best = penalised_objective(w, a, p, C, q)
    assert best >= penalised_objective(w, a, p, C, p) - 1e-12
    if active.any() and float(step.budget) > 1e-12 and float(step.budget) < 10:
        kls = np.asarray(rf.kl_divergence(p, q))[active]
        # The KL recomputed from the stored q carries an absolute rounding error: q's entries are
        # within a few ulps (relative δ_i ≤ 4u) of the exact maximiser, which moves the KL by
        # −Σ_i p_i δ_i + O(δ²), and the sum Σ p(log p − log q) adds ≤ (A + 2)u Σ p(|log p| + |log q|).
        # So a tiny budget (≈1e-10, found by the thorough profile) cannot be matched to 1e-6
        # relative; the absolute term is 4(A + 4)u(1 + max|log q|) ≈ 1e-14, far below any budget
        # error the math could hide (the relative 1e-6 still binds from budgets of ~1e-8 up).
        u = float(np.finfo(np.float64).eps) / 2
        kl_rounding = 4 * (A + 4) * u * (1 + float(np.max(np.abs(np.log(np.asarray(q)[active])))))
        np.testing.assert_allclose(kls, float(step.budget), rtol=1e-6, atol=kl_rounding)
        assert abs(float(step.kkt_residual)) <= 1e-6 * C
    np.testing.assert_allclose(np.asarray(q)[~active], np.asarray(p)[~active], atol=1e-15)
    logq = jnp.log(q)
    for scale in (1e-4, 1e-2, 1e-1, 1.0):
        noise = jnp.asarray(rng.standard_normal((S, A)))
        other = jax.nn.softmax(logq + scale * noise, -1)
        assert penalised_objective(w, a, p, C, other) <= best + 1e-9 * (1 + abs(best))


@at_most(30)
@given(st.integers(2, 4), st.data())
def test_exact_step_single_state_matches_direct_optimisation(A, data):
    """B12 (|S| = 1): the step's value equals that of a direct numerical maximisation of
    q·g − C·D_KL(p‖q) over softmax logits (scipy BFGS, an independent method)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    p = rng.dirichlet(np.ones(A)) * 0.9 + 0.1 / A
    g = rng.normal(size=A)
    C = float(data.draw(st.sampled_from([0.3, 1.0, 5.0])))

    def neg(z):
        q = np.exp(z - z.max())
        q /= q.sum()
        return -(q @ g - C * np.sum(p * np.log(p / q)))

    direct = -min(
        (
            scipy.optimize.minimize(neg, np.log(p) + rng.normal(size=A) * s, method="BFGS", options={"gtol": 1e-12})
            for s in (0, 1)
        ),
        key=lambda r: r.fun,
    ).fun
    step = rf.exact_trust_region_step(jnp.asarray(p)[None], jnp.ones(1), jnp.asarray(g)[None], C)
    ours = penalised_objective(jnp.ones(1), jnp.asarray(g)[None], jnp.asarray(p)[None], C, step.policy)
    assert ours >= direct - 1e-9
    assert abs(ours - direct) <= 1e-7


MM_ITERATIONS = 6  # one count for both proofs of the MM iteration: it is static, so they share its programs


@at_most(40)
@given(mdp_and_policy(kinds=("soft", "uniform"), min_actions=2, max_gamma=0.95))
def test_monotonic_policy_iteration_never_decreases_J(case):
    """B12 (A26): every exact MM step has J(π_{k+1}) ≥ J(π_k), and
    J(π_{k+1}) − J(π_k) ≥ M_k(π_{k+1}) − M_k(π_k) ≥ 0 with M_k = L_{π_k} − C_k D^max_KL."""
    mdp, pi0 = case
    path = rf.monotonic_policy_iteration(mdp, pi0, MM_ITERATIONS)
    Js = [float(rf.expected_return(mdp, p)) for p in path]
    scale = tol(rf.value_iteration(mdp), rel=1e-10)
    for k in range(len(path) - 1):
        assert Js[k + 1] >= Js[k] - scale
        M_new = float(rf.trpo_lower_bound(mdp, path[k], path[k + 1]))
        assert M_new >= Js[k] - scale  # M_k(π_k) = J(π_k)
        assert Js[k + 1] - Js[k] >= M_new - Js[k] - scale


@jax.jit
def _bounds_at(mdp, pi, candidates):
    return jax.vmap(lambda q: rf.trpo_lower_bound(mdp, pi, q))(candidates)


@at_most(30)
@given(mdp_and_policy(kinds=("soft", "uniform"), min_actions=2, max_gamma=0.95), st.data())
def test_monotonic_policy_iteration_steps_maximise_the_bound(case, data):
    """B12 (A26): each MM step π_{k+1} maximises M_k(π̄) = L_{π_k}(π̄) − C_k·D^max_KL(π_k, π̄)
    (`trpo_lower_bound`, whose constants are pinned above): M_k is concave in π̄ (linear minus a
    maximum of convex KLs), so no random perturbation of π_{k+1}, small or large, scores higher —
    a step taken with another penalty or other state weights would be beaten."""
    mdp, pi0 = case
    path = rf.monotonic_policy_iteration(mdp, pi0, MM_ITERATIONS)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    scale = tol(rf.value_iteration(mdp), rel=1e-10)
    for k in range(len(path) - 1):
        logits = np.log(np.maximum(np.asarray(path[k + 1]), 1e-300))  # γ = 0 steps are greedy (one-hot)
        noise = np.concatenate([s * rng.normal(size=(6, *logits.shape)) for s in (1e-4, 1e-2, 1.0)])
        candidates = jnp.concatenate([path[k + 1][None], jax.nn.softmax(jnp.asarray(logits + noise), -1)])
        bounds = np.asarray(_bounds_at(mdp, path[k], candidates))  # the step's own bound first
        assert np.all(bounds[1:] <= bounds[0] + scale), (k, bounds[0], bounds[1:].max())


# ------------------------------------------------------------------------------------------------
# A23a: diagonal-Gaussian policies (continuous actions)
# ------------------------------------------------------------------------------------------------


@st.composite
def _gaussians(draw, max_dim=4):
    D, B = draw(st.integers(1, max_dim)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spread = draw(st.sampled_from([0.01, 0.5, 2.0]))
    mp, lp = rng.normal(0, 1, (B, D)), rng.normal(0, 0.7, D)  # a state-independent log-std, as the authors use
    mq, lq = mp + rng.normal(0, spread, (B, D)), lp + rng.normal(0, spread, D)
    return mp, lp, mq, lq, rng.normal(mp, np.exp(lp))


@at_most(40)
@given(_gaussians())
def test_gaussian_log_prob_and_entropy_are_scipys(x):
    """A23a: the log-density and the entropy against scipy's multivariate normal with a diagonal
    covariance (a dense density, not the per-dimension sum)."""
    mp, lp, _, _, a = x
    got = rf.gaussian_log_prob(jnp.asarray(mp), jnp.asarray(lp), jnp.asarray(a))
    cov: Any = np.diag(np.exp(2 * lp))  # (scipy's stubs type `cov` as a number)
    expected = [scipy.stats.multivariate_normal(mp[b], cov).logpdf(a[b]) for b in range(len(mp))]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    entropy = rf.gaussian_entropy(jnp.asarray(lp))
    np.testing.assert_allclose(entropy, scipy.stats.multivariate_normal(mp[0], cov).entropy(), rtol=1e-12)


@at_most(12)  # each example integrates numerically
@given(_gaussians(max_dim=2))
def test_gaussian_kl_is_the_integral(x):
    """A23a: the closed form against ∫ p log(p/q), by adaptive quadrature over the plane (D = 2)
    or the line (D = 1), with the densities written here from their definition."""
    mp, lp, mq, lq, _ = x
    got = np.asarray(rf.gaussian_kl(jnp.asarray(mp), jnp.asarray(lp), jnp.asarray(mq), jnp.asarray(lq)))
    sp, sq = np.exp(lp), np.exp(lq)

    def log_density(z, m, s):
        return float(np.sum(-0.5 * ((z - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)))

    for b in range(len(mp)):
        lo, hi = mp[b] - 12 * sp, mp[b] + 12 * sp  # p's mass outside: < 1e-30

        def integrand(*z, b=b):
            z = np.asarray(z[::-1])  # dblquad passes (y, x)
            lpz, lqz = log_density(z, mp[b], sp), log_density(z, mq[b], sq)
            return np.exp(lpz) * (lpz - lqz)

        if len(lp) == 1:
            expected = scipy.integrate.quad(integrand, lo[0], hi[0], epsabs=1e-11, epsrel=1e-11, limit=200)[0]
        else:
            expected = scipy.integrate.dblquad(integrand, lo[0], hi[0], lo[1], hi[1], epsabs=1e-10, epsrel=1e-10)[0]
        np.testing.assert_allclose(got[b], expected, rtol=1e-7, atol=1e-9)


@at_most(30)
@given(_gaussians())
def test_gaussian_fisher_is_the_closed_form(x):
    """A23a, A48: the Hessian of the mean KL from the old Gaussian policy, in (means, shared
    log-std) at the old parameters, is the Fisher information: 1/(Bσ²) on each state's mean and 2
    on the log-std (the mean over B states of the per-state 2). `fisher_vector_product` of
    `gaussian_kl` against that diagonal, on random vectors."""
    mp, lp, _, _, _ = x
    B = len(mp)

    def kl(params):
        means, log_std = params
        return jnp.mean(rf.gaussian_kl(jnp.asarray(mp), jnp.asarray(lp), means, log_std))

    fvp = rf.fisher_vector_product(kl, (jnp.asarray(mp), jnp.asarray(lp)))
    rng = np.random.default_rng(int(1e6 * abs(mp[0, 0])) % 2**32)
    v_mean, v_std = rng.normal(size=mp.shape), rng.normal(size=lp.shape)
    got_mean, got_std = fvp((jnp.asarray(v_mean), jnp.asarray(v_std)))
    np.testing.assert_allclose(got_mean, v_mean / (B * np.exp(2 * lp)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_std, 2 * v_std, rtol=1e-10, atol=1e-12)
