"""float32 never turns to NaN: the public functions on float32 inputs at γ ∈ {0.9, 0.99, 0.999},
near-deterministic policies (probabilities down to 1e-30, and exact zeros) and rewards up to 1e6
are finite and within a derived error of the float64 result on the SAME inputs (the float32
arrays, upcast exactly), or refused with a clear error; where the math is infinite (a KL to a
policy without support) the documented value, +inf, is returned, never NaN.

The error model (u = 2⁻²⁴ ≈ 6e-8, float32's unit round-off): the library forms P_π and r_π with
sums over A actions (relative error ≤ A·u each entry), then solves (I − γP_π)V = r_π by a
backward-stable elimination (backward error ≤ c·S·u). Perturbation theory for linear systems
(Higham, Thm 7.2) bounds the forward error by κ∞ times the backward error, with
κ∞(I − γP_π) ≤ (1 + γ)/(1 − γ), and ‖V‖∞ ≤ ‖r_π‖∞/(1 − γ). So each value function satisfies

    ‖V₃₂ − V₆₄‖∞ ≤ 8(S + A)·u·κ∞·scale,   scale = ‖R‖∞/(1 − γ),

with the factor 8 covering the constant of the elimination and of the two sums. Everything built
from V (Q = R + γPV, A = Q − V, J = ρ₀ᵀV, ρ_π) inherits the same bound with its own scale.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import reference as rf
from proofs_as_tests.strategies import at_most, transition_tensor

U32 = float(np.finfo(np.float32).eps) / 2


@st.composite
def float32_problems(draw):
    """(P, R, ρ₀, γ, π) as float32 arrays; π soft, near-deterministic (1e-30) or with exact zeros."""
    S, A = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    gamma = draw(st.sampled_from([0.9, 0.99, 0.999]))
    scale = draw(st.sampled_from([1.0, 1e3, 1e6]))
    kind = draw(st.sampled_from(["soft", "tiny", "zeros"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    P = transition_tensor(rng, S, A, draw(st.sampled_from(["dense", "deterministic", "sparse"])))
    R = rng.uniform(-scale, scale, (S, A))
    rho0 = rng.dirichlet(np.ones(S))
    pi = rng.dirichlet(np.ones(A), size=S)
    if kind != "soft":
        best = rng.integers(0, A, S)
        pi = np.full((S, A), 1e-30 if kind == "tiny" else 0.0)
        pi[np.arange(S), best] = 1.0 - (A - 1) * pi[0, 0]
    f32 = lambda x: np.asarray(x, np.float32)
    return f32(P), f32(R), f32(rho0), gamma, f32(pi), kind


def both(P, R, rho0, gamma, pi):
    """The same MDP and policy in float32 and in float64 (the float32 values, upcast exactly)."""
    m32 = rf.FiniteMDP(jnp.asarray(P), jnp.asarray(R), jnp.float32(gamma), jnp.asarray(rho0))
    m64 = rf.FiniteMDP(
        jnp.asarray(P, jnp.float64),
        jnp.asarray(R, jnp.float64),
        float(np.float32(gamma)),
        jnp.asarray(rho0, jnp.float64),
    )
    return m32, m64, jnp.asarray(pi), jnp.asarray(pi, jnp.float64)


def value_bound(S, A, gamma, R):
    kappa = (1 + gamma) / (1 - gamma)
    return 8 * (S + A) * U32 * kappa * float(np.max(np.abs(R)) + 1e-30) / (1 - gamma)


def close(x32, x64, bound, what):
    x32, x64 = np.asarray(x32, np.float64), np.asarray(x64)
    assert x32.dtype == np.float64 and np.all(np.isfinite(x32)), f"{what}: not finite in float32: {x32}"
    err = float(np.max(np.abs(x32 - x64))) if x32.size else 0.0
    assert err <= bound, f"{what}: |float32 − float64| = {err:.3g} > bound {bound:.3g}"


@at_most(30)  # every example compiles ~20 functions twice (float32 and float64) for its shape
@given(float32_problems())
def test_float32_values_are_finite_and_within_the_derived_bound(problem):
    """V, Q, A, J, ρ_π, T^π V, T*V, the greedy policy's value and the trust-region quantities in
    float32 against float64 on the same inputs, each within the module docstring's bound."""
    P, R, rho0, gamma, pi, _ = problem
    S, A = pi.shape
    m32, m64, p32, p64 = both(P, R, rho0, gamma, pi)
    bound = value_bound(S, A, gamma, R)
    V32 = rf.policy_evaluation(m32, p32)
    assert V32.dtype == jnp.float32
    V64 = rf.policy_evaluation(m64, p64)
    close(V32, V64, bound, "policy_evaluation")
    close(rf.state_values(m32, p32), V64, bound, "state_values")
    close(rf.action_values(m32, p32), rf.action_values(m64, p64), bound, "action_values")
    close(rf.advantages(m32, p32), rf.advantages(m64, p64), 2 * bound, "advantages")
    close(rf.expected_return(m32, p32), rf.expected_return(m64, p64), bound, "expected_return")
    # ρ_π solves the transposed system with right side ρ₀ (‖ρ₀‖₁ = 1): scale 1/(1 − γ)
    rho_bound = 8 * (S + A) * U32 * (1 + gamma) / (1 - gamma) ** 2
    close(rf.discounted_visitation(m32, p32), rf.discounted_visitation(m64, p64), rho_bound, "discounted_visitation")
    close(
        rf.bellman_expectation_operator(m32, p32, V32),
        rf.bellman_expectation_operator(m64, p64, V32.astype(jnp.float64)),
        bound,
        "T^π",
    )
    close(
        rf.bellman_optimality_operator(m32, V32),
        rf.bellman_optimality_operator(m64, V32.astype(jnp.float64)),
        bound,
        "T*",
    )
    # the trust-region penalty C = 4γ max|A|/(1 − γ)²: max|A| within 2·bound
    C_bound = 4 * gamma * 2 * bound / (1 - gamma) ** 2
    close(rf.penalty_coefficient(m32, p32), rf.penalty_coefficient(m64, p64), C_bound, "penalty_coefficient")
    close(
        rf.surrogate_objective(m32, p32, p32),
        rf.surrogate_objective(m64, p64, p64),
        2 * bound + rho_bound * 2 * bound,
        "surrogate",
    )


@at_most(30)  # every example compiles ~20 functions twice (float32 and float64) for its shape
@given(float32_problems())
def test_float32_optimal_values_are_finite_and_close(problem):
    """Certified value iteration in float32 stops at the float32 floor (its bound stops shrinking):
    the result is finite and within the value bound plus its own certificate of V* computed in
    float64; policy iteration's value agrees likewise."""
    P, R, rho0, gamma, pi, _ = problem
    S, A = pi.shape
    m32, m64, _, _ = both(P, R, rho0, gamma, pi)
    bound = value_bound(S, A, gamma, R)
    V64 = rf.value_iteration(m64)
    result = rf.value_iteration_with_bound(m32)
    assert np.isfinite(float(result.error_bound))
    close(result.values, V64, bound + 2 * float(result.error_bound), "value_iteration")
    _, V_pi = rf.policy_iteration(m32)
    close(V_pi, V64, bound, "policy_iteration")


@at_most(30)  # every example compiles ~20 functions twice (float32 and float64) for its shape
@given(float32_problems())
def test_float32_divergences_never_turn_to_nan(problem):
    """KL and TV between float32 policies with 1e-30 entries and exact zeros: finite where the
    support allows (within u·(A + 2)·Σ p|log p − log q| + 4Au of float64), +inf where the new
    policy lacks the old one's support (documented), never NaN."""
    _, _, _, _, pi, _ = problem
    A = pi.shape[1]
    q = np.roll(pi, 1, axis=-1)  # another near-deterministic policy
    kl32 = np.asarray(rf.kl_divergence(jnp.asarray(pi), jnp.asarray(q)), np.float64)
    kl64 = np.asarray(rf.kl_divergence(jnp.asarray(pi, jnp.float64), jnp.asarray(q, jnp.float64)))
    assert not np.isnan(kl32).any()
    np.testing.assert_array_equal(np.isinf(kl32), np.isinf(kl64))
    lacks = ((pi > 0) & (q == 0)).any(-1)
    assert (np.isinf(kl64) == lacks).all()  # +inf exactly where q lacks p's support
    finite = ~np.isinf(kl64)
    p64, q64 = pi.astype(np.float64), q.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            p64 > 0, p64 * np.abs(np.log(np.where(p64 > 0, p64, 1)) - np.log(np.where(q64 > 0, q64, 1))), 0
        )
    kl_bound = (A + 2) * U32 * terms.sum(-1) + 4 * A * U32 * (1 + terms.sum(-1))
    assert (np.abs(kl32[finite] - kl64[finite]) <= kl_bound[finite]).all()
    tv32 = float(rf.max_total_variation(jnp.asarray(pi), jnp.asarray(q)))
    assert (
        np.isfinite(tv32)
        and abs(tv32 - float(rf.max_total_variation(jnp.asarray(p64), jnp.asarray(q64)))) <= 4 * A * U32
    )


@at_most(30)
@given(st.sampled_from([0.9, 0.99, 0.999]), st.sampled_from([1.0, 1e3, 1e6]), st.integers(0, 2**32 - 1))
def test_float32_gae_and_clip_are_finite_and_close(gamma, scale, seed):
    """GAE over 200 steps with episode ends and rewards up to 1e6, and PPO's clip objective: finite
    and within the bound of a reverse recursion in float32. Each step adds one rounding of the
    running sum, so |Â₃₂ − Â₆₄| ≤ 4T·u·max_t Σ_l (γλ)^l |δ_{t+l}| ≤ 4T·u·‖δ‖∞/(1 − γλ)."""
    rng = np.random.default_rng(seed)
    T, lam = 200, 0.95
    r = np.float32(scale) * rng.standard_normal(T).astype(np.float32)
    v = np.float32(scale / (1 - gamma)) * rng.standard_normal(T + 1).astype(np.float32)
    d = (rng.random(T) < 0.05).astype(np.float32)
    a32 = rf.generalized_advantage_estimate(
        jnp.asarray(r), jnp.asarray(v), jnp.asarray(d), np.float32(gamma), np.float32(lam)
    )
    r64, v64, d64 = (jnp.asarray(x, jnp.float64) for x in (r, v, d))
    a64 = rf.generalized_advantage_estimate(r64, v64, d64, float(np.float32(gamma)), float(np.float32(lam)))
    delta_max = np.max(np.abs(r)) + 2 * np.max(np.abs(v))
    close(
        a32,
        a64,
        4 * T * U32 * delta_max / (1 - gamma * lam) + 4 * T * U32 * delta_max,
        "generalized_advantage_estimate",
    )
    ratio = np.exp(rng.normal(0, 0.5, T)).astype(np.float32)
    f32 = rf.ppo_clip_objective(jnp.asarray(ratio), a32, 0.2)
    f64 = rf.ppo_clip_objective(jnp.asarray(ratio, jnp.float64), a32.astype(jnp.float64), 0.2)
    close(f32, f64, 4 * U32 * float(np.max(np.abs(np.asarray(a32)))) * 1.2, "ppo_clip_objective")


def test_float32_policy_rows_are_checked_with_float32_tolerance():
    """A float32 policy whose rows sum to 1 within float32 rounding is accepted; one that is off by
    1e-3 is refused with the usual message (tolerance 1e-4 in float32)."""
    mdp = rf.FiniteMDP(jnp.full((2, 2, 2), 0.5, jnp.float32), jnp.zeros((2, 2), jnp.float32), jnp.float32(0.9))
    third = jnp.full((2, 3), 1 / 3, jnp.float32)[:, :2]
    with pytest.raises(ValueError, match="`pi` must sum to 1"):
        rf.policy_evaluation(mdp, third)
    ok = jnp.asarray([[0.1, 0.9], [0.7, 0.3]], jnp.float32)
    assert np.isfinite(np.asarray(rf.policy_evaluation(mdp, ok))).all()
    with pytest.raises(Exception, match="`pi` must sum to 1"):
        jax.block_until_ready(jax.jit(rf.policy_evaluation)(mdp, ok + jnp.float32(1e-3)))
