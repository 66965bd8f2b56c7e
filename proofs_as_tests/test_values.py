"""Notes §2: values, objective, advantage, visitation (A15–A19). Catalogue items B1, B7, B9 (`docs/notes.md`)."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, strategies as st

import reference as rf
from proofs_as_tests.strategies import at_most, mdp_and_policy, mdps, tol


def numpy_action_values(mdp: rf.FiniteMDP, pi) -> np.ndarray:
    """Q_π from its own |S||A| linear system Q = R + γ P Π Q (independent of V)."""
    P, R, g = np.asarray(mdp.P), np.asarray(mdp.R), float(mdp.gamma)
    S, A = R.shape
    # (P Π)[(s,a), (s',a')] = P[s,a,s'] π(a'|s')
    P_Pi = (P[:, :, :, None] * np.asarray(pi)[None, None, :, :]).reshape(S * A, S * A)
    return np.linalg.solve(np.eye(S * A) - g * P_Pi, R.reshape(-1)).reshape(S, A)


@given(mdp_and_policy())
def test_action_values_satisfy_bellman(case):
    """A16, B1: Q_π equals the solution of its own (S·A)-dimensional Bellman system, and
    Σ_a π(a|s) Q_π(s,a) = V_π(s)."""
    mdp, pi = case
    Q = rf.action_values(mdp, pi)
    np.testing.assert_allclose(Q, numpy_action_values(mdp, pi), rtol=0, atol=tol(Q, rel=1e-9))
    V = rf.state_values(mdp, pi)
    np.testing.assert_allclose(jnp.sum(pi * Q, axis=-1), V, rtol=0, atol=tol(V, rel=1e-10))


@given(mdp_and_policy())
def test_zero_expected_advantage(case):
    """B7 (A19): Σ_a π(a|s) A_π(s,a) = 0 in every state (TRPO eq. 29)."""
    mdp, pi = case
    A = rf.advantages(mdp, pi)
    Q = rf.action_values(mdp, pi)
    np.testing.assert_allclose(jnp.sum(pi * A, axis=-1), 0.0, rtol=0, atol=tol(Q, rel=1e-10))


@given(mdp_and_policy())
def test_discounted_visitation_is_truncated_series(case):
    """C8, A22: ρ_π = Σ_t γ^t Pr(s_t = s), unnormalised (mass 1/(1−γ)), computed here by
    propagating the state marginal μ_{t+1} = μ_t P_π (A2) in numpy; and J = ρ_π · r_π."""
    mdp, pi = case
    rho = rf.discounted_visitation(mdp, pi)
    P_pi = np.einsum("sa,sat->st", np.asarray(pi), np.asarray(mdp.P))
    g = float(mdp.gamma)
    mu, series, weight = np.asarray(mdp.rho0), np.zeros(mdp.num_states), 1.0
    while weight > 1e-15 / max(1e-300, 1 - g):
        series += weight * mu
        mu, weight = mu @ P_pi, weight * g
        if g == 0.0:
            break
    np.testing.assert_allclose(rho, series, rtol=0, atol=1e-9 / (1 - g))
    np.testing.assert_allclose(float(jnp.sum(rho)), 1.0 / (1.0 - g), rtol=1e-11)
    J = rf.expected_return(mdp, pi)
    np.testing.assert_allclose(float(jnp.dot(rho, rf.policy_reward(mdp, pi))), float(J), atol=tol(J, rel=1e-10))


@jax.jit
def monte_carlo_returns(keys, mdp, pi, horizon_array):
    horizon = horizon_array.shape[0]
    rollout = jax.vmap(lambda k: rf.sample_trajectory(k, mdp, pi, horizon)[2])(keys)
    return rf.discounted_return(rollout, mdp.gamma)


@at_most(12)
@given(mdp_and_policy(max_gamma=0.8), st.integers(0, 2**31 - 1))
def test_expected_return_matches_monte_carlo(case, seed):
    """A3, A5, A17: J(π) from the linear solve equals the mean discounted return of sampled
    trajectories, within the empirical Bernstein bound (Maurer & Pontil 2009, Thm 4; failure
    probability 1e-9) for returns in an interval of width (max R − min R)/(1−γ), plus the
    truncation bias γ^T max|R|/(1−γ). (A bare 6-standard-error bound is not valid when a rare
    state carries the variance: the sample may miss it, as a thorough run found.)"""
    mdp, pi = case
    num = 4000
    g = float(mdp.gamma)
    rmax = float(jnp.max(jnp.abs(mdp.R)))
    horizon = 1 if g == 0 else int(np.ceil(np.log(1e-6) / np.log(g)))
    returns = np.asarray(monte_carlo_returns(jax.random.split(jax.random.key(seed), num), mdp, pi, jnp.zeros(horizon)))
    J = float(rf.expected_return(mdp, pi))
    bias = g**horizon * rmax / (1 - g)
    span = float(jnp.max(mdp.R) - jnp.min(mdp.R)) / (1 - g)
    log_term = np.log(2 / 1e-9)
    bernstein = np.sqrt(2 * returns.var(ddof=1) * log_term / num) + 7 * span * log_term / (3 * (num - 1))
    # + float round-off of summing `horizon` discounted terms (the only term left for deterministic returns)
    bound = bernstein + bias + 1e-12 * horizon * (1 + rmax / (1 - g))
    assert abs(returns.mean() - J) <= bound, (returns.mean(), J, bound)


grad_of_expected_return = jax.jit(jax.grad(lambda theta, mdp: rf.expected_return(mdp, jax.nn.softmax(theta, axis=-1))))


@given(mdps(min_actions=2), st.data())
def test_gradient_of_expected_return_is_policy_gradient_theorem(mdp, data):
    """B9 (A17): for π = softmax(θ), autodiff through the linear solve gives
    ∂J/∂θ[s,a] = ρ_π(s) π(a|s) A_π(s,a) (the policy-gradient theorem, unnormalised ρ)."""
    S, A = mdp.num_states, mdp.num_actions
    theta = jnp.asarray(data.draw(st.lists(st.floats(-3, 3), min_size=S * A, max_size=S * A))).reshape(S, A)
    grad = grad_of_expected_return(theta, mdp)
    pi = jax.nn.softmax(theta, axis=-1)
    expected = rf.discounted_visitation(mdp, pi)[:, None] * pi * rf.advantages(mdp, pi)
    np.testing.assert_allclose(grad, expected, rtol=0, atol=tol(expected, rel=1e-9))


@given(mdp_and_policy())
def test_expected_return_is_initial_average_of_values(case):
    """A17: J(π) = Σ_s ρ0(s) V_π(s), checked against J = Σ_s ρ_π(s) r_π(s) from the
    visitation's transposed solve (a different linear system)."""
    mdp, pi = case
    J = rf.expected_return(mdp, pi)
    via_rho = jnp.dot(rf.discounted_visitation(mdp, pi), rf.policy_reward(mdp, pi))
    np.testing.assert_allclose(float(J), float(via_rho), rtol=0, atol=tol(J, rel=1e-10))


@given(mdps(), st.integers(1, 30), st.data())
def test_discounted_return_is_horner_recursion(mdp, T, data):
    """A3, A4: Σ_t γ^t r_t equals the backward recursion G_t = r_t + γ G_{t+1}."""
    rewards = jnp.asarray(data.draw(st.lists(st.floats(-5, 5), min_size=T, max_size=T)))
    g = float(mdp.gamma)
    G = 0.0
    for r in reversed(np.asarray(rewards).tolist()):
        G = r + g * G
    np.testing.assert_allclose(float(rf.discounted_return(rewards, g)), G, rtol=1e-12, atol=1e-12)
