"""Notes §4 HATRPO/HAPPO: Algorithm 1, Proposition 1, MAPPO, Proposition 3, HAPPO and HATRPO.
Catalogue items B15, B21–B24 (`docs/notes.md`)."""

import functools
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize
from hypothesis import assume, given, strategies as st

import reference as rf
from proofs_as_tests.strategies import at_most, games, joint_policy_pairs, tol


def joint_J(game, pis):
    S = game.num_states
    return float(rf.expected_return(rf.joint_action_mdp(game), rf.joint_policy(pis).reshape(S, -1)))


# One iteration count for the three proofs that run Algorithm 1: it is static, so with one count they
# share its compiled program per game shape (the first two read only the iterations they need).
ALGORITHM_1_ITERATIONS = 30


@at_most(30)
@given(games(max_gamma=0.9), st.data())
def test_algorithm_1_improves_monotonically(game, data):
    """Theorem 2 (A44c, B21): every iteration of Algorithm 1 (random order, exact per-agent
    argmax of L^{i_{1:m}} − C·D^max) has J(π_{k+1}) ≥ J(π_k); the nash gap is reported, not
    asserted to vanish (convergence to a NE is asymptotic)."""
    pis, _ = data.draw(joint_policy_pairs(game))
    seed = data.draw(st.integers(0, 2**31 - 1))
    history = rf.multi_agent_policy_iteration(jax.random.key(seed), game, pis, ALGORITHM_1_ITERATIONS)
    Js = [joint_J(game, [h[k] for h in history]) for k in range(6)]  # the first five iterations
    scale = tol(rf.value_iteration(rf.joint_action_mdp(game)), rel=1e-9)
    for a, b in itertools.pairwise(Js):
        assert b >= a - scale
    assert float(rf.nash_gap(game, [h[-1] for h in history])) >= 0.0


@at_most(30)
@given(games(max_gamma=0.0), st.data())
def test_fixed_point_of_algorithm_1_is_a_nash_equilibrium(game, data):
    """B22 as a fixed-point statement: with γ = 0 the penalty C vanishes and each exact step is a
    best response; when Algorithm 1 reaches a fixed point (π_{k+1} = π_k) the nash gap — best
    responses solved independently by policy iteration — is zero. Each change of policy (ties aside)
    raises J, so a fixed point is reached; an example that has not reached it within 30 iterations is
    discarded (`assume`: hypothesis fails the test if too many are, so the assertion always runs)."""
    pis, _ = data.draw(joint_policy_pairs(game))
    key = jax.random.key(data.draw(st.integers(0, 2**31 - 1)))
    history = rf.multi_agent_policy_iteration(key, game, pis, ALGORITHM_1_ITERATIONS)
    last, before = [h[-1] for h in history], [h[-2] for h in history]
    assume(all(bool(jnp.all(a == b)) for a, b in zip(last, before, strict=True)))
    assert float(rf.nash_gap(game, last)) <= 1e-12


def _numpy_joint_return(P, R, rho0, g, pis):
    """J of a product policy by numpy alone: the joint policy by outer products, then a solve."""
    S = P.shape[0]
    joint = np.ones((S,))
    for p in pis:
        joint = joint[..., None] * p.reshape((S,) + (1,) * (joint.ndim - 1) + (-1,))
    joint = joint.reshape(S, -1)
    P2, R2 = P.reshape(S, -1, S), R.reshape(S, -1)
    V = np.linalg.solve(np.eye(S) - g * np.einsum("sa,sat->st", joint, P2), (joint * R2).sum(1))
    return float(rho0 @ V)


@at_most(20)
@given(games(max_states=2, max_agents=3, max_actions=3, max_gamma=0.9), st.data())
def test_nash_gap_is_the_best_unilateral_gain_by_enumeration(game, data):
    """A44d: `nash_gap` equals max_i max_{π′ⁱ} J(π′ⁱ, π⁻ⁱ) − J(π), where each best response is found
    by enumerating every deterministic policy of agent i (|Aᵢ|^|S| of them; a best response in an
    MDP can always be deterministic) and J is computed in numpy. Not clamped: the enumeration's gain
    can be checked to be ≥ 0 on its own (the current policy is one candidate only if deterministic),
    and a deterministic Nash equilibrium has gap exactly 0."""
    pis, _ = data.draw(joint_policy_pairs(game))
    P, R, rho0, g = (np.asarray(x) for x in (game.P, game.R, game.rho0, game.gamma))
    g = float(g)
    S = game.num_states
    base = _numpy_joint_return(P, R, rho0, g, [np.asarray(p) for p in pis])
    best_gain = -np.inf
    for i, A_i in enumerate(game.action_sizes):
        for actions in itertools.product(range(A_i), repeat=S):
            deviation = [np.asarray(p) for p in pis]
            deviation[i] = np.eye(A_i)[list(actions)]
            best_gain = max(best_gain, _numpy_joint_return(P, R, rho0, g, deviation) - base)
    gap = float(rf.nash_gap(game, pis))
    assert abs(gap - best_gain) <= 1e-9 * (1 + abs(base)), (gap, best_gain)
    # at a joint best response found by enumeration (agent by agent, deterministic), the gap is 0
    # exactly when no agent can gain: check the identity on a deterministic joint policy too
    det = tuple(jnp.asarray(np.eye(a)[np.zeros(S, int)]) for a in game.action_sizes)
    det_base = _numpy_joint_return(P, R, rho0, g, [np.asarray(p) for p in det])
    det_gain = max(
        _numpy_joint_return(
            P, R, rho0, g, [np.eye(a)[list(acts)] if j == i else np.asarray(det[j]) for j in range(len(det))]
        )
        - det_base
        for i, a in enumerate(game.action_sizes)
        for acts in itertools.product(range(a), repeat=S)
    )
    assert abs(float(rf.nash_gap(game, det)) - max(det_gain, 0.0)) <= 1e-9 * (1 + abs(det_base))


@pytest.mark.parametrize("n", [2, 4, 6, 8])
def test_parameter_sharing_ratio(n):
    """Proposition 1 (A37, B15b): on the parameter-sharing game J*_share / J* = 2/2ⁿ, with J* from
    value iteration over joint actions and J*_share from a bounded 1-D maximisation over the
    shared Bernoulli(p) policy (both exact computations)."""
    game = rf.parameter_sharing_game(n, 0.5)
    J_star = float(jnp.dot(game.rho0, rf.value_iteration(rf.joint_action_mdp(game))))

    def neg_shared(p):
        pi = jnp.asarray([[1 - p, p]])
        return -joint_J(game, [pi] * n)

    res: Any = scipy.optimize.minimize_scalar(
        neg_shared, bounds=(1e-9, 1 - 1e-9), method="bounded", options={"xatol": 1e-10}
    )
    grid = max(-neg_shared(p) for p in np.linspace(0.01, 0.99, 99))
    J_share = max(-float(res.fun), grid)
    assert abs(J_share / J_star - 2 / 2**n) <= 1e-9
    assert abs(float(res.x) - 0.5) <= 1e-4


def mappo_value(game, theta, theta_old, eps):
    """L^MAPPO(θ) exactly: Σ_s ρ(s) Σ_a π_old(a|s) mappo_objective(r(s, a), A(s, a)) for a
    shared tabular softmax policy π_θ over the common action set."""
    S, n, k = game.num_states, game.num_agents, game.action_sizes[0]
    pi, pi_old = jax.nn.softmax(theta, -1), jax.nn.softmax(theta_old, -1)
    mdp = rf.joint_action_mdp(game)
    joint_old = rf.joint_policy([pi_old] * n).reshape(S, -1)
    rho, A = rf.discounted_visitation(mdp, joint_old), rf.advantages(mdp, joint_old)
    acts = jnp.asarray(list(itertools.product(range(k), repeat=n)))  # [K^n, n]
    ratios = (pi / pi_old)[:, acts]  # [S, K^n, n]
    return jnp.dot(rho, jnp.sum(joint_old * rf.mappo_objective(ratios, A, eps), -1))


@jax.jit
def _mappo_value_and_gradients(game, theta):
    """L^MAPPO(θ_k) at θ = θ_k, its gradient there and ∇_θ J(π_θ), in one program per game shape."""
    S, n = game.num_states, game.num_agents
    mdp = rf.joint_action_mdp(game)
    g_mappo = jax.grad(lambda t: mappo_value(game, t, theta, 0.2))(theta)
    g_J = jax.grad(lambda t: rf.expected_return(mdp, rf.joint_policy([jax.nn.softmax(t, -1)] * n).reshape(S, -1)))(
        theta
    )
    return mappo_value(game, theta, theta, 0.2), g_mappo, g_J


@at_most(40)
@given(games(max_actions=2, max_agents=3), st.data())
def test_mappo_objective_at_old_policy(game, data):
    """B15a (A36): with a shared tabular softmax, L^MAPPO(θ_k) = 0 and ∇L^MAPPO(θ_k) = ∇_θ J(π_θ)
    (the joint log-probability is the sum of the agents')."""
    assert set(game.action_sizes) == {2}  # one action set, shared (max_actions=2)
    S, k = game.num_states, game.action_sizes[0]
    theta = jnp.asarray(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(-2, 2, (S, k)))
    value, g_mappo, g_J = _mappo_value_and_gradients(game, theta)
    scale = tol(rf.value_iteration(rf.joint_action_mdp(game)), rel=1e-10)
    assert abs(float(value)) <= scale
    np.testing.assert_allclose(g_mappo, g_J, rtol=0, atol=10 * scale)


def along_agent(x, i, n):
    """An agent's per-state array [S, A_i] reshaped to broadcast against joint tensors [S, A_1, …, A_n]
    (its actions on axis 1 + i, size 1 on every other agent's axis)."""
    return x.reshape((x.shape[0], *(-1 if k == i else 1 for k in range(n))))


def joint_expectation(game, weights_per_agent, tensor):
    """E_{a ∼ Π_i weights_i(·|s)}[tensor(s, a)] per state."""
    return jnp.sum(rf.joint_policy(weights_per_agent) * tensor, axis=tuple(range(1, game.num_agents + 1)))


@at_most(50)
@given(games(min_agents=1), st.data())
def test_happo_factor_is_importance_weight(game, data):
    """Proposition 3 (A50, B23): per state,
    E_{π̄^{i_{1:m−1}}, π̂^{i_m}}[A^{i_m}] = E_{a∼π}[(π̂^{i_m}/π^{i_m} − 1)·M^{i_{1:m}}(s, a)] with
    M = happo_factor(earlier agents' ratios, A_π) = (π̄^{i_{1:m−1}}/π^{i_{1:m−1}})·A_π; and the
    sequential update M^{i_{1:m+1}} = (π̄^{i_m}/π^{i_m})·M^{i_{1:m}} agrees with happo_factor."""
    pis, new = data.draw(joint_policy_pairs(game))
    order = tuple(data.draw(st.permutations(range(game.num_agents))))
    m = data.draw(st.integers(1, game.num_agents))
    agents, agent = order[:m], order[m - 1]
    n = game.num_agents
    A = rf.multi_agent_advantage(game, pis, (), tuple(range(n)))  # joint A_π

    def ratio_tensor(i):
        r = new[i] / pis[i]
        return along_agent(r, i, n)

    prev = jnp.stack(jnp.broadcast_arrays(*[ratio_tensor(i) for i in agents[:-1]], A), axis=-1)[..., :-1]
    M = rf.happo_factor(prev, A)
    rhs = joint_expectation(game, pis, (ratio_tensor(agent) - 1.0) * M)
    local = rf.multi_agent_advantage(game, pis, agents[:-1], (agent,))
    w = [new[i] for i in agents[:-1]] + [new[agent]]
    lhs = jnp.einsum("s...,s...->s", rf.joint_policy(w), local)
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=tol(A, rel=1e-10))
    prev_next = jnp.concatenate([prev, jnp.broadcast_to(ratio_tensor(agent), A.shape)[..., None]], axis=-1)
    np.testing.assert_allclose(
        rf.happo_factor(prev_next, A), jnp.broadcast_to(ratio_tensor(agent), A.shape) * M, rtol=1e-12, atol=1e-14
    )


@at_most(40)  # each example compiles new shapes
@given(games(), st.data(), st.floats(0.05, 0.5))
def test_happo_objective_properties(game, data, eps):
    """B24: with ρ-weighted exact expectations over a ∼ π, (b) the unclipped HAPPO objective minus
    its value at θ_k equals L^{i_{1:m}}(π̄^{i_{1:m−1}}, π̂^{i_m}) (Prop. 3); (c) clipped ≤ unclipped;
    eq. (11) equals its closed form min(rM, clip(r, 1 ± ε)M) written in numpy (for m = 1, M = Â:
    PPO's clip with the joint advantage)."""
    pis, new = data.draw(joint_policy_pairs(game))
    order = tuple(data.draw(st.permutations(range(game.num_agents))))
    m = data.draw(st.integers(1, game.num_agents))
    agents, agent = order[:m], order[m - 1]
    n, S = game.num_agents, game.num_states
    mdp = rf.joint_action_mdp(game)
    rho = rf.discounted_visitation(mdp, rf.joint_policy(pis).reshape(S, -1))
    A = rf.multi_agent_advantage(game, pis, (), tuple(range(n)))

    def ratio_tensor(i):
        return jnp.broadcast_to(along_agent(new[i] / pis[i], i, n), A.shape)

    M = A
    for i in agents[:-1]:
        M = ratio_tensor(i) * M
    r = ratio_tensor(agent)
    unclipped = jnp.dot(rho, joint_expectation(game, pis, r * M))
    at_old = jnp.dot(rho, joint_expectation(game, pis, M))
    surrogate = rf.multi_agent_surrogate(game, pis, new, agents)
    assert abs(float(unclipped - at_old - surrogate)) <= tol(A, rho, rel=1e-9)
    clipped = rf.happo_objective(r, M, eps)
    # eq. (11) written out in numpy (not through ppo_clip_objective, which happo_objective calls)
    r_np, M_np = np.asarray(r), np.asarray(M)
    expected = np.minimum(r_np * M_np, np.clip(r_np, 1 - eps, 1 + eps) * M_np)
    np.testing.assert_allclose(clipped, expected, rtol=1e-15, atol=1e-15 * (1 + np.abs(expected).max()))
    assert bool(jnp.all(clipped <= r * M + 1e-12))
    # (e) for m = 1, M = Â and the numpy form above is PPO's clip objective with the joint advantage


def tabular_agents(game, key):
    """Per-agent tabular softmax policies over one-hot states, and a batch of samples."""
    n, S = game.num_agents, game.num_states
    keys = jax.random.split(key, n + 3)
    params = tuple(0.5 * jax.random.normal(keys[i], (S, a)) for i, a in enumerate(game.action_sizes))
    fns = tuple((lambda p, o: jax.nn.log_softmax(o @ p, -1)) for _ in range(n))
    B = 64
    states = jax.random.randint(keys[n], (B,), 0, S)
    obs = tuple(jax.nn.one_hot(states, S) for _ in range(n))
    acts = jnp.stack(
        [jax.random.categorical(jax.random.fold_in(keys[n + 1], i), params[i][states]) for i in range(n)], -1
    )
    old = jnp.stack(
        [
            jnp.take_along_axis(jax.nn.log_softmax(params[i][states], -1), acts[:, i : i + 1], -1)[:, 0]
            for i in range(n)
        ],
        -1,
    )
    adv = jax.random.normal(keys[n + 2], (B,))
    return params, fns, obs, acts, old, adv


@at_most(15)
@given(games(max_agents=3), st.integers(0, 2**31 - 1), st.sampled_from([1e-3, 1e-2, 5e-2]))
def test_hatrpo_update_respects_the_kl_threshold(game, seed, delta):
    """A45–A49, D: after a HATRPO iteration every agent's mean KL from its old policy over the batch
    is within δ, and (small δ, non-zero advantages) at least one agent took a step."""
    params, fns, obs, acts, old, adv = tabular_agents(game, jax.random.key(seed))
    new = rf.hatrpo_update(jax.random.key(seed + 1), params, fns, obs, acts, old, adv, delta)
    for i in range(game.num_agents):
        p_old, p_new = jax.nn.softmax(obs[i] @ params[i], -1), jax.nn.softmax(obs[i] @ new[i], -1)
        assert float(jnp.mean(rf.kl_divergence(p_old, p_new))) <= delta * (1 + 1e-9)
    # the first agent of the order sees M = Â: with non-zero advantages its surrogate gradient is
    # non-zero, and with a small radius its line search must accept a step (a search that never
    # accepts would pass the KL assertion above)
    if delta <= 1e-2 and float(jnp.max(jnp.abs(adv))) > 1e-6:
        assert any(not bool(jnp.all(a == b)) for a, b in zip(new, params, strict=True)), "no agent moved"


@pytest.mark.parametrize(("seed", "delta"), [(1, 1.0), (2, 0.3), (6, 1.0)])
def test_hatrpo_constraint_is_the_kl_from_the_old_policy(seed, delta):
    """A46, A48: HATRPO's trust region is the mean D_KL(π_old ‖ π_new), not D_KL(π_new ‖ π_old).
    The two agree to second order (same Fisher, so the same natural direction and step scale); they
    part only when the line search binds, so the instances are fixed ones (one agent, small
    damping 1e-3, large δ) on which they do: the step taken with the reversed KL is different and
    breaks the δ bound in the right direction, which the test checks first, so the instance keeps
    its power. hatrpo_update must equal trpo_update with the KL written here as Σ_a p log(p/q)."""
    game = rf.random_game(jax.random.key(seed), 3, (4,), 0.9)
    params, fns, obs, acts, old, adv = tabular_agents(game, jax.random.key(seed + 1))
    p_old = jax.nn.softmax(obs[0] @ params[0], -1)

    def kl(p, q):
        return jnp.mean(jnp.sum(p * (jnp.log(p) - jnp.log(q)), -1))

    def policy(theta):
        return jax.nn.softmax(obs[0] @ theta, -1)

    def surrogate(theta):
        return jnp.mean(_ratio(fns, obs, acts, old, 0, theta) * adv)

    forward = rf.trpo_update(surrogate, lambda t: kl(p_old, policy(t)), params[0], delta, 1e-3)
    reverse = rf.trpo_update(surrogate, lambda t: kl(policy(t), p_old), params[0], delta, 1e-3)
    assert float(jnp.max(jnp.abs(forward - reverse))) > 1e-3, "this instance no longer discriminates"
    assert float(kl(p_old, policy(reverse))) > delta, "this instance no longer discriminates"
    (ours,) = rf.hatrpo_update(jax.random.key(0), params, fns, obs, acts, old, adv, delta, damping=1e-3)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(forward), rtol=1e-9, atol=1e-9)
    assert float(kl(p_old, policy(ours))) <= delta * (1 + 1e-9)
    assert float(surrogate(ours)) > float(surrogate(params[0]))


def _ratio(fns, obs, acts, old, i, p):
    logp = jnp.take_along_axis(fns[i](p, obs[i]), acts[:, i : i + 1], -1)[:, 0]
    return jnp.exp(logp - old[:, i])


def _sequential_by_hand(order, params, fns, obs, acts, old, adv, agent_step):
    """The sequential scheme of §D written as a plain Python loop: agent order[m] is updated with
    M = Â · Π (new/old ratios of the agents already updated), then M takes its ratio."""
    new, M, seen = list(params), adv, []
    for i in order:
        seen.append(M)
        new[i] = agent_step(i, new[i], M)
        M = M * _ratio(fns, obs, acts, old, i, new[i])
    return new, seen


def _assert_matches_exactly_one_order(ours, by_order):
    """`ours` equals the hand-written loop for one order and only one (the orders' results differ)."""
    close = lambda a, b: all(bool(jnp.allclose(x, y, rtol=1e-9, atol=1e-12)) for x, y in zip(a, b, strict=True))
    matches = [order for order, (hand, _) in by_order.items() if close(ours, hand)]
    assert len(matches) == 1, f"matches the hand-written sequential update for orders {matches}"
    return matches[0]


@at_most(4)
@given(st.integers(2, 3), st.integers(0, 2**31 - 1), st.booleans())
def test_hatrpo_update_is_sequential_with_the_product_factor(n, seed, one_fn):
    """A45–A50, D, C21 (n ≥ 2 agents): hatrpo_update equals a hand-written loop over a permutation in
    which agent i_m takes `trpo_update` on its surrogate with M^{i_{1:m}} = Â Π_{j<m} r^{i_j}(θ_{k+1});
    the result matches that loop for exactly one of the n! orders, the one drawn from the key as the
    docstring states, and every agent's accepted step raised the surrogate it saw (at that M) and
    kept its KL within δ. Both code paths: one policy
    function object for all agents (gather by index, vmap-safe) or one per agent (`lax.switch`)."""
    game = rf.random_game(jax.random.key(seed), 3, (3,) * n, 0.9)
    params, fns, obs, acts, old, adv = tabular_agents(game, jax.random.key(seed + 1))
    fns = (fns[0],) * n if one_fn else fns  # one function object: the gather-by-index path
    delta = 0.02

    def surrogate(i, M):
        return lambda p: jnp.mean(_ratio(fns, obs, acts, old, i, p) * M)

    def kl(i):
        p_old = jax.nn.softmax(obs[i] @ params[i], -1)
        return lambda p: jnp.mean(rf.kl_divergence(p_old, jax.nn.softmax(obs[i] @ p, -1)))

    @functools.partial(jax.jit, static_argnums=0)  # one compilation per agent, reused by every order
    def step(i, p, M):
        return rf.trpo_update(surrogate(i, M), kl(i), p, delta)

    by_order = {
        order: _sequential_by_hand(order, params, fns, obs, acts, old, adv, step)
        for order in itertools.permutations(range(n))
    }
    key = jax.random.key(seed + 2)
    ours = rf.hatrpo_update(key, params, fns, obs, acts, old, adv, delta)
    order = _assert_matches_exactly_one_order(ours, by_order)
    # the order is the documented draw from the key (a fixed or reversed order is refused)
    assert order == tuple(int(i) for i in jax.random.permutation(jax.random.split(key)[0], n))
    _, seen = by_order[order]
    for i, M in zip(order, seen, strict=True):
        assert float(surrogate(i, M)(ours[i])) >= float(surrogate(i, M)(params[i]))
        assert float(kl(i)(ours[i])) <= delta * (1 + 1e-9)


@at_most(4)
@given(st.integers(2, 3), st.integers(0, 2**31 - 1), st.booleans())
@jax.numpy_dtype_promotion("standard")  # optax's Adam mixes its int32 step count with floats
def test_happo_update_is_sequential_with_the_product_factor(n, seed, one_fn):
    """A51, D, C21 (n ≥ 2 agents): happo_update (one minibatch) equals a hand-written loop over a
    permutation in which agent i_m takes Adam steps on happo_objective with
    M^{i_{1:m}} = Â Π_{j<m} r^{i_j}(θ_{k+1}), which `happo_factor` reproduces; the result matches
    that loop for exactly one of the n! orders, the one drawn from the key as documented. Both code paths: one policy function object for all
    agents (gather by index, vmap-safe) or one per agent (`lax.switch`)."""
    game = rf.random_game(jax.random.key(seed), 3, (3,) * n, 0.9)
    params, fns, obs, acts, old, adv = tabular_agents(game, jax.random.key(seed + 1))
    fns = (fns[0],) * n if one_fn else fns  # one function object: the gather-by-index path
    opt, epochs, eps = optax.adam(0.05), 3, 0.2

    @functools.partial(jax.jit, static_argnums=0)
    def step(i, p, M):
        s = opt.init(p)
        loss = lambda q: -jnp.mean(rf.happo_objective(_ratio(fns, obs, acts, old, i, q), M, eps))
        for _ in range(epochs):
            updates, s = opt.update(jax.grad(loss)(p), s, p)
            p = optax.apply_updates(p, updates)
        return p

    by_order = {
        order: _sequential_by_hand(order, params, fns, obs, acts, old, adv, step)
        for order in itertools.permutations(range(n))
    }
    states = tuple(opt.init(p) for p in params)
    key = jax.random.key(seed + 2)
    ours, _ = rf.happo_update(key, params, fns, obs, acts, old, adv, opt, states, eps, num_epochs=epochs)
    order = _assert_matches_exactly_one_order(ours, by_order)
    assert order == tuple(int(i) for i in jax.random.permutation(jax.random.split(key)[0], n))
    _, seen = by_order[order]
    for m, M in enumerate(seen):
        earlier = order[:m]
        ratios = [_ratio(fns, obs, acts, old, j, ours[j]) for j in earlier]
        factor = rf.happo_factor(jnp.stack(ratios, -1) if ratios else jnp.ones((adv.shape[0], 0)), adv)
        np.testing.assert_allclose(factor, M, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("entropy_coef", [0.0, 0.05])
@jax.numpy_dtype_promotion("standard")  # optax's Adam mixes its int32 step count with floats
def test_happo_with_one_agent_is_ppo(entropy_coef):
    """A51, B24(e): HAPPO with one agent (M = Â) takes exactly the steps of PPO-clip with the same
    optimiser: compared step for step over 3 iterations against a hand-written PPO loop, without
    and with the entropy bonus c_H·H(π) added to the objective (H = −Σ_a π log π, written here
    from the probabilities)."""
    game = rf.random_game(jax.random.key(0), 3, (4,), 0.9)
    params, fns, obs, acts, old, adv = tabular_agents(game, jax.random.key(1))
    opt = optax.adam(0.05)
    ours_p, ours_s = params, (opt.init(params[0]),)
    ppo_p, ppo_s = params[0], opt.init(params[0])

    def ppo_loss(p):
        probs = jax.nn.softmax(obs[0] @ p, -1)
        logp = jnp.log(jnp.take_along_axis(probs, acts[:, :1], -1)[:, 0])
        r = jnp.exp(logp - old[:, 0])
        clipped = jnp.minimum(r * adv, jnp.clip(r, 0.8, 1.2) * adv)
        entropy = -jnp.sum(probs * jnp.log(probs), -1)
        return -(jnp.mean(clipped) + entropy_coef * jnp.mean(entropy))

    for it in range(3):
        ours_p, ours_s = rf.happo_update(
            jax.random.key(it),
            ours_p,
            fns,
            obs,
            acts,
            old,
            adv,
            opt,
            ours_s,
            0.2,
            num_epochs=4,
            entropy_coef=entropy_coef,
        )
        for _ in range(4):
            updates, ppo_s = opt.update(jax.grad(ppo_loss)(ppo_p), ppo_s, ppo_p)
            ppo_p = optax.apply_updates(ppo_p, updates)
        np.testing.assert_allclose(np.asarray(ours_p[0]), np.asarray(ppo_p), rtol=1e-12, atol=1e-12)
    assert not bool(jnp.allclose(ours_p[0], params[0]))


def test_exact_computation_at_six_agents_three_actions_twenty_states():
    """Scale (issue: at least 6 agents × 3 actions × 20 states in float64): Lemma 1 holds for the
    full ordering and one iteration of Algorithm 1 raises J on a random game of that size."""
    game = rf.random_game(jax.random.key(0), 20, (3,) * 6, 0.9)
    keys = jax.random.split(jax.random.key(1), 6)
    pis = tuple(jax.nn.softmax(jax.random.normal(k, (20, 3)), -1) for k in keys)
    order = (3, 1, 5, 0, 2, 4)
    whole = rf.multi_agent_advantage(game, pis, (), order)
    total = sum(
        rf.multi_agent_advantage(game, pis, order[:j], (a,)).reshape((20, *(3,) * (j + 1), *(1,) * (5 - j)))
        for j, a in enumerate(order)
    )
    np.testing.assert_allclose(whole, total, rtol=0, atol=1e-10)
    history = rf.multi_agent_policy_iteration(jax.random.key(2), game, pis, 1)
    assert joint_J(game, [h[1] for h in history]) >= joint_J(game, pis) - 1e-10


def test_simultaneous_updates_can_lower_the_return():
    """A37, C28 (Kuba et al., Fig. 1): with r = a¹a² and unit-variance Gaussian policies, each
    agent's trust-region step is checked independently — the KL of two Gaussians by numerical
    integration equals ½Δμ² and the step sits on the KL boundary; a grid search over the feasible
    means finds no better objective; J = E[a¹a²] by Gauss–Hermite quadrature (exact for this
    polynomial) — and the simultaneous update lowers J while the sequential one raises it."""
    from scipy import integrate

    ex = rf.simultaneous_update_counterexample(jnp.asarray([-0.25, 0.25]), 0.5)
    old, sim, seq = (np.asarray(m) for m in (ex.old_means, ex.simultaneous_means, ex.sequential_means))

    def kl(m0, m1):
        f = lambda x: np.exp(-0.5 * (x - m0) ** 2) / np.sqrt(2 * np.pi) * 0.5 * ((x - m1) ** 2 - (x - m0) ** 2)
        return integrate.quad(f, -np.inf, np.inf, epsabs=1e-13)[0]

    def best_step(mu, other):
        grid = mu + np.linspace(-1, 1, 20001)  # |Δμ| ≤ √(2δ) = 1
        feasible = grid[np.abs(grid - mu) <= 1 + 1e-12]
        return feasible[np.argmax(feasible * other)]

    nodes, weights = np.polynomial.hermite_e.hermegauss(8)  # E over N(0, 1)

    def J(means):
        a1, a2 = means[0] + nodes[:, None], means[1] + nodes[None, :]
        return float(np.sum(weights[:, None] * weights[None, :] * a1 * a2) / (2 * np.pi))

    for new, mu, other in (
        (sim[0], old[0], old[1]),
        (sim[1], old[1], old[0]),
        (seq[0], old[0], old[1]),
        (seq[1], old[1], seq[0]),
    ):
        assert abs(kl(mu, new) - 0.5) < 1e-9  # on the boundary of the KL ball
        assert abs(best_step(mu, other) - new) < 1e-4
    assert abs(J(old) - float(ex.old_return)) < 1e-12
    assert abs(J(sim) - float(ex.simultaneous_return)) < 1e-12
    assert abs(J(seq) - float(ex.sequential_return)) < 1e-12
    assert J(sim) < J(old) < J(seq)


@functools.partial(jax.jit, static_argnums=(3, 4))
def bound_terms(game, pis, new, order, m, candidates):
    """Δ_m(c) = L^{i_{1:m}}_π(π̄^{i_{1:m−1}}, c) − C·D^max_KL(π^{i_m}, c) for each candidate c in
    `candidates` [K, S, A_{i_m}], the earlier agents at their NEW policies (eq. (6), Lemma 2's C;
    no penalty when C = 0)."""
    agent = order[m]
    S = game.P.shape[0]
    C = rf.penalty_coefficient(rf.joint_action_mdp(game), rf.joint_policy(pis).reshape(S, -1))

    def one(c):
        trial = tuple(c if i == agent else new[i] for i in range(len(pis)))
        L = rf.multi_agent_surrogate(game, pis, trial, order[: m + 1])
        return jnp.where(C > 0, L - C * rf.max_kl(pis[agent], c), L)

    return jax.vmap(one)(candidates)


@at_most(15)
@given(games(max_gamma=0.9, max_agents=3), st.data())
def test_algorithm_1_steps_maximise_their_terms_and_j_gains_at_least_their_sum(game, data):
    """Theorem 2 quantitatively (A44c, B21): in one iteration of Algorithm 1 with the order it
    documents, each agent's new policy maximises Δ_m = L^{i_{1:m}}(π_{k+1}^{i_{1:m−1}}, ·) −
    C·D^max_KL(π_k^{i_m}, ·) given the earlier agents' NEW policies (no random perturbation of it
    scores higher; Δ_m is concave, so a local maximum is the maximum), Δ_m ≥ 0 (staying put scores
    0), and J(π_{k+1}) − J(π_k) ≥ Σ_m Δ_m (Lemma 2). Δ_m comes from the library's surrogate and KL,
    each proved against enumeration in test_markov_game.py. The key is one whose documented first
    order is not 0, 1, …, n−1 (where n > 1), so that an iteration that ignored its key would be
    checked against the wrong order."""
    pis, _ = data.draw(joint_policy_pairs(game))
    n, seed = game.num_agents, data.draw(st.integers(0, 2**31 - 1))

    def first_order(seed):
        key = jax.random.split(jax.random.key(seed), ALGORITHM_1_ITERATIONS)[0]
        return tuple(int(i) for i in jax.random.permutation(key, n))

    while n > 1 and first_order(seed) == tuple(range(n)):
        seed += 1
    order = first_order(seed)
    history = rf.multi_agent_policy_iteration(jax.random.key(seed), game, pis, ALGORITHM_1_ITERATIONS)
    new = tuple(h[1] for h in history)  # the first iteration, in that order
    t = tol(rf.value_iteration(rf.joint_action_mdp(game)), rel=1e-9)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    deltas = []
    for m, agent in enumerate(order):
        logits = np.log(np.maximum(np.asarray(new[agent]), 1e-300))  # C = 0 steps are greedy (one-hot)
        noise = np.concatenate([s * rng.normal(size=(4, *logits.shape)) for s in (1e-4, 1e-2, 1.0)])
        candidates = jnp.concatenate([new[agent][None], jax.nn.softmax(jnp.asarray(logits + noise), -1)])
        terms = np.asarray(bound_terms(game, pis, new, order, m, candidates))
        best = float(terms[0])
        assert best >= -t, (m, best)
        assert np.all(terms[1:] <= best + t), (m, terms)
        deltas.append(best)
    assert joint_J(game, new) - joint_J(game, pis) >= sum(deltas) - t


@at_most(30)
@given(games(min_agents=1, max_states=3, max_agents=3, max_actions=3), st.data())
def test_happo_factor_by_importance_sampling(game, data):
    """Proposition 3 (A50, B23) by Monte Carlo: sampling a ∼ π (jax.random, each agent
    independently) and averaging X = (π̂^{i_m}/π^{i_m} − 1)·M with M = happo_factor(the earlier
    agents' ratios π̄/π at the sampled actions, A_π) estimates E_{π̄^{i_{1:m−1}}, π̂^{i_m}}[A^{i_m}]
    (enumerated with the library's multi_agent_advantage). |X| ≤ B = max|X| over joint actions, so
    by Hoeffding the mean of N draws lies within B·√(2·ln(2/10⁻⁹)/N) of the expectation except with
    probability 10⁻⁹ per state (the bound asserted)."""
    pis, new = data.draw(joint_policy_pairs(game))
    order = tuple(data.draw(st.permutations(range(game.num_agents))))
    m = data.draw(st.integers(1, game.num_agents))
    agents, agent = order[:m], order[m - 1]
    n, S, N = game.num_agents, game.num_states, 40_000
    A = rf.multi_agent_advantage(game, pis, (), tuple(range(n)))
    keys = jax.random.split(jax.random.key(data.draw(st.integers(0, 2**31 - 1))), n)
    acts = jnp.stack([jax.random.categorical(keys[i], jnp.log(pis[i]), shape=(N, S)) for i in range(n)], -1)
    states = jnp.arange(S)[None, :]
    ratio = lambda i: new[i][states, acts[..., i]] / pis[i][states, acts[..., i]]  # [N, S]
    A_at = A[(states, *[acts[..., i] for i in range(n)])]
    prev = jnp.stack([ratio(i) for i in agents[:-1]], -1) if m > 1 else jnp.ones((N, S, 0))
    X = (ratio(agent) - 1.0) * rf.happo_factor(prev, A_at)
    estimate = np.asarray(jnp.mean(X, axis=0))
    local = rf.multi_agent_advantage(game, pis, agents[:-1], (agent,))
    exact = np.asarray(jnp.einsum("s...,s...->s", rf.joint_policy([new[i] for i in agents]), local))
    # B: the largest |X| over every joint action, by enumeration
    full = jnp.ones_like(A)
    for i in agents[:-1]:
        full = full * along_agent(new[i] / pis[i], i, n)
    r_m = along_agent(new[agent] / pis[agent], agent, n)
    B = np.asarray(jnp.max(jnp.abs((r_m - 1.0) * full * A).reshape(S, -1), axis=-1))
    bound = B * np.sqrt(2 * np.log(2 / 1e-9) / N)
    assert np.all(np.abs(estimate - exact) <= bound + 1e-12), (estimate, exact, bound)


@at_most(30)
@given(games(max_agents=3, max_actions=3), st.data())
def test_happo_value_and_gradient_at_the_old_policy(game, data):
    """B24 (a) and (d): with exact ρ-weighted expectations over a ∼ π (the joint policy
    enumerated), the HAPPO objective of agent i_m at θ = θ_k equals Σ_{j<m} L^{i_{1:j}}(π̄^{i_{1:j−1}},
    π̄^{i_j}) (zero only for m = 1), and its gradient in agent i_m's logits equals
    ∇_θ L^{i_{1:m}}(π̄^{i_{1:m−1}}, π_θ^{i_m}) at θ_k — the right side by the library's
    `multi_agent_surrogate` (einsum contractions), the left by `happo_factor`/`happo_objective`
    on every joint action."""
    pis, new = data.draw(joint_policy_pairs(game))
    order = tuple(data.draw(st.permutations(range(game.num_agents))))
    m = data.draw(st.integers(1, game.num_agents))
    agents, agent = order[:m], order[m - 1]
    n, S = game.num_agents, game.num_states
    mdp = rf.joint_action_mdp(game)
    joint_old = rf.joint_policy(pis)
    rho = rf.discounted_visitation(mdp, joint_old.reshape(S, -1))
    A = rf.multi_agent_advantage(game, pis, (), tuple(range(n)))
    prev = [jnp.broadcast_to(along_agent(new[i] / pis[i], i, n), A.shape) for i in agents[:-1]]
    M = rf.happo_factor(jnp.stack(prev, -1) if prev else jnp.ones((*A.shape, 0)), A)
    theta_k = jnp.log(pis[agent])

    def happo(theta):
        r = jnp.broadcast_to(along_agent(jax.nn.softmax(theta, -1) / pis[agent], agent, n), A.shape)
        per_state = jnp.sum((joint_old * rf.happo_objective(r, M, 0.2)).reshape(S, -1), -1)
        return jnp.dot(rho, per_state)

    def surrogate(theta):
        trial = tuple(jax.nn.softmax(theta, -1) if i == agent else new[i] for i in range(n))
        return rf.multi_agent_surrogate(game, pis, trial, agents)

    earlier = sum(float(rf.multi_agent_surrogate(game, pis, new, agents[: j + 1])) for j in range(m - 1))
    t = tol(rf.state_values(mdp, joint_old.reshape(S, -1)), rel=1e-9)
    assert abs(float(happo(theta_k)) - earlier) <= t * (1 + n)
    np.testing.assert_allclose(jax.grad(happo)(theta_k), jax.grad(surrogate)(theta_k), rtol=0, atol=t * (1 + n))


def simultaneous_exact_steps(game, pis):
    """Every agent's exact trust-region step against the others' OLD policies at once (the update
    Algorithm 1 replaces): agent i maximises L^i_π(π^i) − C·D^max_KL(π^i_k, π^i) with its own local
    advantage A^i under π_k, from the library's public functions."""
    S = game.num_states
    mdp = rf.joint_action_mdp(game)
    joint = rf.joint_policy(pis).reshape(S, -1)
    C, rho = rf.penalty_coefficient(mdp, joint), rf.discounted_visitation(mdp, joint)
    return tuple(
        rf.exact_trust_region_step(p, rho, rf.multi_agent_advantage(game, pis, (), (i,)), C).policy
        for i, p in enumerate(pis)
    )


def miscoordination_game(gamma):
    """One state, two agents, two actions: reward +1 when they match, −1 otherwise (repeated with
    discount γ) — the tabular analogue of Kuba et al.'s Fig. 1."""
    return rf.CooperativeGame(jnp.ones((1, 2, 2, 1)), jnp.asarray([[[1.0, -1.0], [-1.0, 1.0]]]), gamma, jnp.ones(1))


@pytest.mark.parametrize("gamma", [0.05, 0.1])
@pytest.mark.parametrize("eps", [0.02, 0.05, 0.1])
def test_simultaneous_steps_lower_j_where_algorithm_1_raises_it(gamma, eps):
    """Kuba et al. Fig. 1 at γ > 0 (A44b, B21): agent 1 leans to action 1 and agent 2 to action 0
    (π¹ = (½ − ε, ½ + ε), π² = (½ + ε, ½ − ε)). Each agent's exact trust-region step against the
    other's OLD policy is an improvement on its own, but taken simultaneously they swap and still
    miscoordinate: J falls. Algorithm 1's sequential steps (the second agent against the first's
    NEW policy), in either order, raise J — Theorem 2 — and by more than the simultaneous step
    loses."""
    game = miscoordination_game(gamma)
    pis = (jnp.asarray([[0.5 - eps, 0.5 + eps]]), jnp.asarray([[0.5 + eps, 0.5 - eps]]))
    J0 = joint_J(game, pis)
    J_sim = joint_J(game, simultaneous_exact_steps(game, pis))
    assert J_sim < J0 - 1e-4 * (1 + abs(J0)), (J0, J_sim)
    orders = set()
    for seed in range(8):
        key = jax.random.key(seed)
        orders.add(tuple(int(i) for i in jax.random.permutation(jax.random.split(key, 1)[0], 2)))
        J_seq = joint_J(game, [h[1] for h in rf.multi_agent_policy_iteration(key, game, pis, 1)])
        assert J_seq > J0 + (J0 - J_sim), (J0, J_seq, J_sim)
    assert orders == {(0, 1), (1, 0)}  # both orders were exercised


@at_most(30)
@given(st.floats(0.2, 3.0), st.floats(0.2, 3.0), st.floats(0.05, 0.9), st.floats(-0.3, 0.3))
def test_interior_nash_equilibrium_is_a_fixed_point_at_positive_gamma(a, b, gamma, shift):
    """B22 as a fixed-point statement at γ > 0 (A44d): in the one-state coordination game
    R = [[a, 0], [0, b]] (discount γ), the mixed equilibrium — agent 1 plays action 0 with
    probability b/(a + b), which makes agent 2 indifferent, and symmetrically — has every local
    advantage Ā^i ≡ 0, so it is a fixed point of Algorithm 1 and its nash gap (best responses by
    policy iteration) is 0. Moving agent 1 off it (by `shift` in probability) leaves a positive gap
    and Algorithm 1 moves."""
    game = rf.CooperativeGame(jnp.ones((1, 2, 2, 1)), jnp.asarray([[[a, 0.0], [0.0, b]]]), gamma, jnp.ones(1))
    p = b / (a + b)
    ne = (jnp.asarray([[p, 1 - p]]), jnp.asarray([[p, 1 - p]]))
    after = rf.multi_agent_policy_iteration(jax.random.key(0), game, ne, 3)
    for h, pi in zip(after, ne, strict=True):
        np.testing.assert_allclose(h[-1], pi, rtol=0, atol=1e-9)
    scale = max(a, b) / (1 - gamma)
    assert float(rf.nash_gap(game, ne)) <= 1e-9 * scale
    off = min(max(p + shift, 0.02), 0.98)
    if abs(off - p) < 0.01:
        return
    moved = (jnp.asarray([[off, 1 - off]]), ne[1])
    assert float(rf.nash_gap(game, moved)) > 1e-6 * scale
    step = rf.multi_agent_policy_iteration(jax.random.key(0), game, moved, 1)
    assert any(float(jnp.max(jnp.abs(h[1] - h[0]))) > 1e-9 for h in step)


@at_most(40)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 6))
def test_haa2c_with_one_agent_is_a2c(seed, D, B):
    """A51a: for one agent (M = Â), the gradient of the mean HAA2C objective at the old policy is
    A2C's policy gradient (1/B)Σ Â ∇log π(a|s). Here for a diagonal-Gaussian policy with means μ_b
    and a shared log-std, against the score written by hand: ∂log π/∂μ = (a − μ)/σ²,
    ∂log π/∂log σ = (a − μ)²/σ² − 1. The objective's value there is (1/B)Σ Â (the ratio is 1)."""
    rng = np.random.default_rng(seed)
    mu, log_std = rng.normal(size=(B, D)), rng.normal(0, 0.5, D)
    a, adv = rng.normal(mu, np.exp(log_std)), rng.normal(size=B)
    old = rf.gaussian_log_prob(jnp.asarray(mu), jnp.asarray(log_std), jnp.asarray(a))

    def objective(params):
        m, s = params
        ratio = rf.probability_ratio(rf.gaussian_log_prob(m, s, jnp.asarray(a)), old)
        return jnp.mean(rf.haa2c_objective(ratio, jnp.asarray(adv)))

    value, (g_mu, g_std) = jax.value_and_grad(objective)((jnp.asarray(mu), jnp.asarray(log_std)))
    var = np.exp(2 * log_std)
    np.testing.assert_allclose(value, adv.mean(), rtol=1e-12)
    np.testing.assert_allclose(g_mu, adv[:, None] * (a - mu) / var / B, rtol=1e-10, atol=1e-12)
    expected_std = np.sum(adv[:, None] * ((a - mu) ** 2 / var - 1), axis=0) / B
    np.testing.assert_allclose(g_std, expected_std, rtol=1e-10, atol=1e-12)
    # and with a factor: the objective is r·M, so HAA2C's gradient is M∇log π (per sample)
    M = rng.normal(size=B)
    r = np.exp(rng.normal(0, 0.3, B))
    np.testing.assert_allclose(rf.haa2c_objective(jnp.asarray(r), jnp.asarray(M)), r * M, rtol=1e-15)
