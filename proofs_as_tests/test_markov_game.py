"""Notes §4 (信赖域算法在MARL中的应用): multi-agent values, advantages, surrogates and Lemma 2.
Catalogue items B16–B20 (`docs/notes.md`)."""

import itertools

import jax.numpy as jnp
import numpy as np
from hypothesis import given, strategies as st

import reference as rf
from proofs_as_tests.strategies import at_most, games, joint_policy_pairs, tol


def numpy_joint_Q(game, pis):
    """Q_π over joint actions from numpy's own linear solve (independent of the library)."""
    S, sizes = game.num_states, game.action_sizes
    P = np.asarray(game.P).reshape(S, -1, S)
    R = np.asarray(game.R).reshape(S, -1)
    joint = np.ones((S, 1))
    for p in pis:
        joint = (joint[:, :, None] * np.asarray(p)[:, None, :]).reshape(S, -1)
    g = float(game.gamma)
    P_pi = np.einsum("sa,sat->st", joint, P)
    V = np.linalg.solve(np.eye(S) - g * P_pi, (joint * R).sum(1))
    return (R + g * P @ V).reshape(S, *sizes), V


def brute_force_marginal(game, pis, agents):
    """Q^{agents}(s, a^{agents}) by looping over every joint action."""
    Q, _ = numpy_joint_Q(game, pis)
    S, sizes, n = game.num_states, game.action_sizes, game.num_agents
    out = np.zeros((S, *[sizes[i] for i in agents]))
    for s in range(S):
        for joint_a in itertools.product(*[range(a) for a in sizes]):
            w = np.prod([float(pis[k][s, joint_a[k]]) for k in range(n) if k not in agents])
            out[(s, *[joint_a[i] for i in agents])] += w * Q[(s, *joint_a)]
    return out


def random_subset(data, n, min_size=0):
    order = data.draw(st.permutations(range(n)))
    m = data.draw(st.integers(min_size, n))
    return tuple(order[:m])


@at_most(60)  # each example compiles new shapes
@given(games(), st.data())
def test_marginal_values_match_enumeration(game, data):
    """A20, Definition 1: Q^{i_{1:m}} by einsum equals brute-force enumeration of joint actions
    (numpy's own joint solve), for a drawn ordered subset and for the full set in reverse order
    (axes follow the given order, never the sorted one); Q^∅ = V and Q^N = Q."""
    pis, _ = data.draw(joint_policy_pairs(game))
    reverse = tuple(reversed(range(game.num_agents)))
    for agents in (random_subset(data, game.num_agents), reverse):
        ours = rf.marginal_action_values(game, pis, agents)
        expected = brute_force_marginal(game, pis, agents)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=tol(expected, rel=1e-10))
    Q, V = numpy_joint_Q(game, pis)
    np.testing.assert_allclose(rf.marginal_action_values(game, pis, ()), V, atol=tol(V, rel=1e-10))
    np.testing.assert_allclose(
        rf.marginal_action_values(game, pis, tuple(range(game.num_agents))), Q, atol=tol(Q, rel=1e-10)
    )


@given(games(), st.data())
def test_advantage_decomposition(game, data):
    """Lemma 1 (A38, B16): A^{i_{1:m}}(s, a^{i_{1:m}}) = Σ_j A^{i_j}(s, a^{i_{1:j−1}}, a^{i_j}) for any
    ordered subset, each side equal to its definition computed by enumerating joint actions in numpy
    (Q^{i_{1:j}} − Q^{i_{1:j−1}}); with all agents it is the joint advantage A_π = Q_π − V_π."""
    pis, _ = data.draw(joint_policy_pairs(game))
    agents = random_subset(data, game.num_agents, min_size=1)
    whole = rf.multi_agent_advantage(game, pis, (), agents)
    V = brute_force_marginal(game, pis, ())
    S = game.num_states
    # each side against its definition by enumeration of joint actions (numpy), not against the
    # library's own marginals (whose differences would telescope for any tensor)
    expected_whole = brute_force_marginal(game, pis, agents) - V.reshape((S,) + (1,) * len(agents))
    np.testing.assert_allclose(whole, expected_whole, rtol=0, atol=tol(expected_whole, rel=1e-10))
    total = jnp.zeros_like(whole)
    for j, agent in enumerate(agents):
        term = rf.multi_agent_advantage(game, pis, agents[:j], (agent,))
        prefix = brute_force_marginal(game, pis, agents[:j])
        expected_term = brute_force_marginal(game, pis, agents[: j + 1]) - prefix[..., None]
        np.testing.assert_allclose(term, expected_term, rtol=0, atol=tol(expected_term, rel=1e-10))
        total = total + term.reshape(term.shape + (1,) * (len(agents) - j - 1))
    np.testing.assert_allclose(whole, total, rtol=0, atol=tol(whole, rel=1e-10))
    full = tuple(range(game.num_agents))
    Q, V = numpy_joint_Q(game, pis)
    np.testing.assert_allclose(
        rf.multi_agent_advantage(game, pis, (), full),
        Q - V.reshape((-1,) + (1,) * game.num_agents),
        atol=tol(Q, rel=1e-10),
    )


@given(games(), st.data())
def test_zero_expected_local_advantage(game, data):
    """A42 / Kuba eq. (6), B17: Σ_a π^{i_m}(a|s) A^{i_m}(s, a^{i_{1:m−1}}, a) = 0 for every prefix,
    hence L^{i_{1:m}}(π̄^{i_{1:m−1}}, π^{i_m}) = 0 for any π̄."""
    pis, new = data.draw(joint_policy_pairs(game))
    agents = random_subset(data, game.num_agents, min_size=1)
    local = rf.multi_agent_advantage(game, pis, agents[:-1], agents[-1:])
    # the local advantage against its definition by enumeration (numpy), then its π-average is zero
    brute = brute_force_marginal(game, pis, agents) - brute_force_marginal(game, pis, agents[:-1])[..., None]
    np.testing.assert_allclose(local, brute, rtol=0, atol=tol(brute, rel=1e-10))
    pi_last = np.asarray(pis[agents[-1]]).reshape((game.num_states,) + (1,) * (len(agents) - 1) + (-1,))
    np.testing.assert_allclose(np.sum(brute * pi_last, axis=-1), 0.0, atol=tol(brute, rel=1e-10))
    mixed = tuple(pis[agents[-1]] if i == agents[-1] else new[i] for i in range(game.num_agents))
    assert abs(float(rf.multi_agent_surrogate(game, pis, mixed, agents))) <= tol(
        rf.marginal_action_values(game, pis, ()), rel=1e-9
    )


@at_most(60)  # each example compiles new shapes
@given(games(), st.data())
def test_surrogate_splits_across_agents(game, data):
    """B18 (A41): L_π(π̄) − J(π) = Σ_m L^{i_{1:m}}_π(π̄^{i_{1:m−1}}, π̄^{i_m}) for any ordering, with
    the left side from the single-agent surrogate on the joint-action MDP (§3)."""
    pis, new = data.draw(joint_policy_pairs(game))
    order = tuple(data.draw(st.permutations(range(game.num_agents))))
    mdp = rf.joint_action_mdp(game)
    S = game.num_states
    joint, joint_new = rf.joint_policy(pis).reshape(S, -1), rf.joint_policy(new).reshape(S, -1)
    lhs = rf.surrogate_objective(mdp, joint, joint_new) - rf.expected_return(mdp, joint)
    rhs = sum(float(rf.multi_agent_surrogate(game, pis, new, order[: m + 1])) for m in range(len(order)))
    assert abs(float(lhs) - rhs) <= tol(rf.state_values(mdp, joint), rel=1e-9)


@given(games(), st.data())
def test_kl_of_product_policies_is_sum(game, data):
    """B19: D_KL(π(·|s) ‖ π̄(·|s)) = Σ_i D_KL(π^i(·|s) ‖ π̄^i(·|s)) for product policies, so
    D^max_KL(π, π̄) ≤ Σ_i D^max_KL(π^i, π̄^i)."""
    pis, new = data.draw(joint_policy_pairs(game))
    S = game.num_states
    joint_kl = rf.kl_divergence(rf.joint_policy(pis).reshape(S, -1), rf.joint_policy(new).reshape(S, -1))
    per_agent = sum(rf.kl_divergence(p, q) for p, q in zip(pis, new, strict=True))
    np.testing.assert_allclose(joint_kl, per_agent, rtol=1e-9, atol=1e-13)
    assert float(jnp.max(joint_kl)) <= sum(float(rf.max_kl(p, q)) for p, q in zip(pis, new, strict=True)) + 1e-12


@given(games(), st.data())
def test_multi_agent_lower_bound_holds(game, data):
    """Lemma 2 (A44a, B20): J(π̄) ≥ J(π) + Σ_m [L^{i_{1:m}}(π̄^{i_{1:m−1}}, π̄^{i_m}) − C·D^max_KL(π^{i_m}, π̄^{i_m})]
    for random games, near and far-apart joint policies and any ordering."""
    pis, new = data.draw(joint_policy_pairs(game))
    order = tuple(data.draw(st.permutations(range(game.num_agents))))
    mdp = rf.joint_action_mdp(game)
    S = game.num_states
    J_new = float(rf.expected_return(mdp, rf.joint_policy(new).reshape(S, -1)))
    bound = float(rf.multi_agent_lower_bound(game, pis, new, order))
    assert J_new >= bound - tol(rf.state_values(mdp, rf.joint_policy(pis).reshape(S, -1)), rel=1e-9)


@at_most(50)
@given(games(), st.data())
def test_multi_agent_lower_bound_is_the_closed_form(game, data):
    """Lemma 2's constants pinned (A44a): `multi_agent_lower_bound` equals
    J(π) + Σ_m [Σ_s ρ_π(s) Σ_a π̄^{i_{1:m}}(a|s) A^{i_m}_π(s, a^{i_{1:m−1}}, a^{i_m})
    − C·max_s D_KL(π^{i_m}(·|s) ‖ π̄^{i_m}(·|s))] with C = 4γ·max|A_π|/(1−γ)², every term computed in
    numpy by enumerating joint actions (Q^{i_{1:m}} by `brute_force_marginal`, ρ_π by numpy's solve)."""
    pis, new = data.draw(joint_policy_pairs(game))
    order = tuple(data.draw(st.permutations(range(game.num_agents))))
    S, sizes = game.num_states, game.action_sizes
    Q, V = numpy_joint_Q(game, pis)
    g = float(game.gamma)
    A = Q - V.reshape((S,) + (1,) * game.num_agents)
    C = 4 * g * np.abs(A).max() / (1 - g) ** 2
    P = np.asarray(game.P).reshape(S, -1, S)
    joint = np.asarray(rf.joint_policy([np.asarray(p) for p in pis])).reshape(S, -1)
    rho = np.linalg.solve((np.eye(S) - g * np.einsum("sa,sat->st", joint, P)).T, np.asarray(game.rho0))
    total = float(np.asarray(game.rho0) @ V)
    for m, agent in enumerate(order):
        # E_{a^{i_{1:m-1}} ~ π̄^{i_{1:m-1}}, a^{i_m} ~ π̄^{i_m}} [Q^{i_{1:m}} − Q^{i_{1:m-1}}], by enumeration
        prior, upto = order[:m], order[: m + 1]
        Q_both = brute_force_marginal(game, pis, upto)
        Q_prior = brute_force_marginal(game, pis, prior)
        gain = np.zeros(S)
        for s in range(S):
            for acts in itertools.product(*[range(sizes[i]) for i in upto]):
                w = np.prod([float(new[i][s, a]) for i, a in zip(upto, acts, strict=True)])
                gain[s] += w * (Q_both[(s, *acts)] - Q_prior[(s, *acts[:-1])])
        p, q = np.asarray(pis[agent]), np.asarray(new[agent])
        D = (p * (np.log(p) - np.log(q))).sum(axis=1).max()
        total += rho @ gain - C * D
    got = float(rf.multi_agent_lower_bound(game, pis, new, order))
    assert abs(got - total) <= 1e-9 * (1 + np.abs(V).max()) * (1 + C) * (1 + game.num_agents)
