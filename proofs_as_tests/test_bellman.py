"""Notes §1 (马可夫决策过程): Bellman equations, value and policy iteration. Catalogue items B1–B6 (`docs/notes.md`)."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, strategies as st

import reference as rf
from proofs_as_tests.strategies import at_most, mdp_and_policy, mdps, policies, tol


@jax.jit
def iterate_expectation_operator(mdp: rf.FiniteMDP, pi, V0, num_iters):
    """Apply T^π `num_iters` times: the truncated series Σ_{t<K} γ^t P_π^t r_π from V0 = 0."""
    return jax.lax.fori_loop(0, num_iters, lambda _, V: rf.bellman_expectation_operator(mdp, pi, V), V0)


evaluate_many = jax.jit(jax.vmap(rf.policy_evaluation, in_axes=(None, 0)))


def horizon_for(gamma: float, scale: float, eps: float = 1e-13) -> int:
    """K with γ^K · scale ≤ eps."""
    if gamma == 0.0:
        return 1
    return max(1, math.ceil(math.log(eps / max(scale, 1e-300)) / math.log(gamma)))


@given(mdp_and_policy())
def test_policy_evaluation_is_fixed_point_of_expectation_operator(case):
    """B1 (A9, A10): the linear solve V^π equals T^π iterated to its fixed point, and
    T^π V^π = V^π."""
    mdp, pi = case
    V = rf.policy_evaluation(mdp, pi)
    g = float(mdp.gamma)
    bound = float(jnp.max(jnp.abs(mdp.R))) / (1 - g)
    K = horizon_for(g, bound)
    V_iter = iterate_expectation_operator(mdp, pi, jnp.zeros_like(V), K)
    np.testing.assert_allclose(V, V_iter, rtol=0, atol=tol(V, rel=1e-9))
    residual = rf.bellman_expectation_operator(mdp, pi, V) - V
    assert float(jnp.max(jnp.abs(residual))) <= tol(V, rel=1e-11)
    np.testing.assert_allclose(rf.state_values(mdp, pi), V, rtol=0, atol=tol(V, rel=1e-14))


@given(mdps(), st.data())
def test_bellman_operators_are_gamma_contractions(mdp, data):
    """B2: ‖T^π U − T^π W‖∞ ≤ γ‖U − W‖∞ and ‖T* U − T* W‖∞ ≤ γ‖U − W‖∞."""
    S = mdp.num_states
    vec = st.lists(st.floats(-10, 10), min_size=S, max_size=S).map(lambda x: jnp.asarray(x))
    U, W = data.draw(vec), data.draw(vec)
    pi = data.draw(policies(S, mdp.num_actions))
    g = float(mdp.gamma)
    dist = float(jnp.max(jnp.abs(U - W)))
    lhs_pi = float(
        jnp.max(jnp.abs(rf.bellman_expectation_operator(mdp, pi, U) - rf.bellman_expectation_operator(mdp, pi, W)))
    )
    lhs_opt = float(jnp.max(jnp.abs(rf.bellman_optimality_operator(mdp, U) - rf.bellman_optimality_operator(mdp, W))))
    assert lhs_pi <= g * dist + 1e-12
    assert lhs_opt <= g * dist + 1e-12


def all_deterministic_values(mdp: rf.FiniteMDP):
    """V^π for every one of the |A|^|S| deterministic policies (vmapped linear solves)."""
    S, A = mdp.num_states, mdp.num_actions
    table = jnp.asarray(list(itertools.product(range(A), repeat=S)))
    pis = jax.nn.one_hot(table, A, dtype=mdp.P.dtype)
    return table, evaluate_many(mdp, pis)


@at_most(40)  # each example compiles new shapes
@given(mdps(max_states=4, max_actions=3), st.sampled_from([0, 1, 2, 10]))
def test_value_iteration_equals_enumeration_and_policy_iteration(mdp, warm_start_sweeps):
    """B3 (A11, A12, A14, A14a, A14b): V* from value iteration equals the elementwise max of
    V^π over all deterministic policies and the V of policy iteration, whatever its start;
    V* = T* V*."""
    _, values = all_deterministic_values(mdp)
    V_enum = values.max(axis=0)
    V_vi = rf.value_iteration(mdp, tol=1e-11)
    actions, V_pi = rf.policy_iteration(mdp, warm_start_sweeps=warm_start_sweeps)
    np.testing.assert_allclose(V_vi, V_enum, rtol=0, atol=tol(V_enum, rel=1e-9))
    np.testing.assert_allclose(V_pi, V_enum, rtol=0, atol=tol(V_enum, rel=1e-9))
    V_of_actions = rf.policy_evaluation(mdp, rf.one_hot_policy(actions, mdp.num_actions))
    np.testing.assert_allclose(V_of_actions, V_pi, rtol=0, atol=tol(V_pi, rel=1e-12))
    residual = rf.bellman_optimality_operator(mdp, V_vi) - V_vi
    assert float(jnp.max(jnp.abs(residual))) <= tol(V_vi, rel=1e-9)


@given(mdps(max_gamma=0.99), st.sampled_from([1e-2, 1e-5, 1e-9]))
def test_value_iteration_bound_is_certified(mdp, requested):
    """A14a: the span bounds certify the result: ‖V_vi − V*‖∞ ≤ error_bound ≤ tol, with
    V* from policy iteration (an independent computation)."""
    result = rf.value_iteration_with_bound(mdp, tol=requested)
    _, V_star = rf.policy_iteration(mdp)
    err = float(jnp.max(jnp.abs(result.values - V_star)))
    assert float(result.error_bound) <= requested
    assert err <= float(result.error_bound) + tol(V_star, rel=1e-11)


@at_most(60)
@given(mdps(max_gamma=0.99), st.sampled_from([1e-2, 1e-5, 1e-9]))
def test_value_iteration_bound_is_the_closed_form(mdp, requested):
    """A14a's constants pinned: after k sweeps from V_0 = 0, with d = V_k − V_{k−1} (numpy's own
    sweeps, V_{j+1}(s) = max_a [R(s,a) + γ Σ_s' P(s'|s,a) V_j(s')]), the result is the span midpoint
    V_k + γ/(1−γ)·(max d + min d)/2 and its bound γ/(1−γ)·(max d − min d)/2 (this pins the factor
    γ/(1−γ), the halving and the midpoint; the certificate itself is
    `test_value_iteration_bound_is_certified`)."""
    result = rf.value_iteration_with_bound(mdp, tol=requested)
    k = int(result.num_iterations)
    P, R, g = np.asarray(mdp.P), np.asarray(mdp.R), float(mdp.gamma)
    V_prev, V = np.zeros(mdp.num_states), np.zeros(mdp.num_states)
    for _ in range(k):  # k >= 1: the first sweep is always made
        V_prev, V = V, (R + g * P @ V).max(axis=1)
    d = V - V_prev
    c = g / (1 - g)
    t = tol(V, rel=1e-12) * k  # k sweeps, each rounding by a few ulps of |V|
    np.testing.assert_allclose(result.values, V + c * (d.max() + d.min()) / 2, rtol=0, atol=t * (1 + c))
    assert abs(float(result.error_bound) - c * (d.max() - d.min()) / 2) <= t * (1 + c)


@at_most(60)
@given(mdps(max_states=4, max_actions=3))
def test_policy_iteration_needs_at_most_A_to_the_S_iterations(mdp):
    """B6: policy iteration reaches V* within |A|^|S| evaluations (each strict improvement visits a
    new deterministic policy, and there are |A|^|S| of them): with `max_iters` = |A|^|S| and no
    warm start it returns V* (the best of every deterministic policy, enumerated) and a policy
    whose values are V*."""
    S, A = mdp.num_states, mdp.num_actions
    actions, V = rf.policy_iteration(mdp, max_iters=A**S, warm_start_sweeps=0)
    P, R, g = np.asarray(mdp.P), np.asarray(mdp.R), float(mdp.gamma)
    best = np.full(S, -np.inf)
    for choice in itertools.product(range(A), repeat=S):
        p = np.eye(A)[list(choice)]
        best = np.maximum(best, np.linalg.solve(np.eye(S) - g * np.einsum("sa,sat->st", p, P), (p * R).sum(1)))
    np.testing.assert_allclose(V, best, rtol=0, atol=tol(best, rel=1e-9))
    p = np.eye(A)[np.asarray(actions)]
    V_actions = np.linalg.solve(np.eye(S) - g * np.einsum("sa,sat->st", p, P), (p * R).sum(1))
    np.testing.assert_allclose(V_actions, best, rtol=0, atol=tol(best, rel=1e-9))


@given(mdp_and_policy())
def test_optimal_values_dominate_every_policy(case):
    """B4 (A14): V*(s) ≥ V^π(s) for every state and every stochastic policy."""
    mdp, pi = case
    V_star = rf.value_iteration(mdp)
    V = rf.policy_evaluation(mdp, pi)
    assert bool(jnp.all(V_star >= V - tol(V_star, rel=1e-9)))


@given(mdps())
def test_greedy_policy_of_optimal_values_is_optimal(mdp):
    """B5 (A13, A14): the greedy policy of V* attains V*: V^{π*} = V*."""
    V_star = rf.value_iteration(mdp, tol=1e-11)
    actions = rf.greedy_policy(mdp, V_star)
    V = rf.policy_evaluation(mdp, rf.one_hot_policy(actions, mdp.num_actions))
    np.testing.assert_allclose(V, V_star, rtol=0, atol=tol(V_star, rel=1e-8))


@given(mdps(state_reward=True))
def test_cs229_greedy_formula_is_optimal_for_state_rewards(mdp):
    """B5, C5: with a state reward R(s) and γ > 0, CS229's π*(s) = argmax_a Σ P_sa(s')V*(s')
    (no R inside the argmax) attains V*."""
    if float(mdp.gamma) == 0.0:
        return  # every action is optimal at γ = 0 and the formula's argmax is arbitrary
    V_star = rf.value_iteration(mdp, tol=1e-11)
    actions = jnp.argmax(jnp.einsum("sat,t->sa", mdp.P, V_star), axis=-1)
    V = rf.policy_evaluation(mdp, rf.one_hot_policy(actions, mdp.num_actions))
    np.testing.assert_allclose(V, V_star, rtol=0, atol=tol(V_star, rel=1e-7))


def test_cs229_greedy_formula_fails_for_action_rewards():
    """C5 counter-example: one state, two actions with R(s, a) = (0, 1). CS229's formula
    (no R in the argmax) sees a tie and picks action 0 with V = 0, while greedy_policy picks
    action 1 with V* = 1/(1−γ)."""
    mdp = rf.FiniteMDP(jnp.ones((1, 2, 1)), jnp.asarray([[0.0, 1.0]]), 0.5, jnp.ones(1))
    V_star = rf.value_iteration(mdp)
    cs229 = jnp.argmax(jnp.einsum("sat,t->sa", mdp.P, V_star), axis=-1)
    ours = rf.greedy_policy(mdp, V_star)
    V_cs229 = rf.policy_evaluation(mdp, rf.one_hot_policy(cs229, 2))
    V_ours = rf.policy_evaluation(mdp, rf.one_hot_policy(ours, 2))
    np.testing.assert_allclose(V_ours, jnp.asarray([2.0]), atol=1e-12)
    assert float(V_cs229[0]) < float(V_ours[0]) - 1.0


@given(mdp_and_policy())
def test_policy_improvement_never_lowers_values(case):
    """B6: the greedy policy of Q^π has V^{π'} ≥ V^π everywhere; more generally any π' with
    Σ_a π'(a|s) A_π(s,a) ≥ 0 in every state (here a mixture of π and the greedy policy)."""
    mdp, pi = case
    V = rf.policy_evaluation(mdp, pi)
    greedy = rf.one_hot_policy(rf.greedy_policy(mdp, V), mdp.num_actions)
    V_greedy = rf.policy_evaluation(mdp, greedy)
    assert bool(jnp.all(V_greedy >= V - tol(V, rel=1e-9)))
    mixture = 0.7 * pi + 0.3 * greedy
    gain = jnp.sum(mixture * rf.advantages(mdp, pi), axis=-1)
    assert bool(jnp.all(gain >= -tol(V, rel=1e-12)))
    assert bool(jnp.all(rf.policy_evaluation(mdp, mixture) >= V - tol(V, rel=1e-9)))


def test_cs229_gridworld_optimal_values():
    """A11–A13 on the notes' running example: V* of the 4×3 gridworld (R = −0.02, γ = 0.99)
    rounds to the values printed in CS229's figure (ch. 15 §15.2, Russell & Norvig), and the
    greedy policy is the figure's (→ → → / ↑ · ↑ / ↑ ← ← ←)."""
    mdp = rf.gridworld_4x3(-0.02, 0.99)
    V = rf.value_iteration(mdp)
    index = {cell: i for i, cell in enumerate(rf.GRIDWORLD_CELLS)}
    printed = {
        (1, 3): 0.86,
        (2, 3): 0.90,
        (3, 3): 0.93,
        (1, 2): 0.82,
        (3, 2): 0.69,
        (1, 1): 0.78,
        (2, 1): 0.75,
        (3, 1): 0.71,
        (4, 1): 0.49,
    }
    for cell, value in printed.items():
        assert abs(float(V[index[cell]]) - value) <= 0.005 + 1e-12, cell
    arrows = {
        (1, 3): "E",
        (2, 3): "E",
        (3, 3): "E",
        (1, 2): "N",
        (3, 2): "N",
        (1, 1): "N",
        (2, 1): "W",
        (3, 1): "W",
        (4, 1): "W",
    }
    actions = rf.greedy_policy(mdp, V)
    for cell, name in arrows.items():
        assert rf.GRIDWORLD_ACTIONS[int(actions[index[cell]])] == name, cell
