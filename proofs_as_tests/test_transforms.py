"""Every §1–§2 function gives the same answer called plainly, under `jax.jit`, and under
`jax.vmap` over a batch of MDPs and of policies (rlax's "variants")."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference as rf

S, A, BATCH = 4, 3, 5


def batch():
    keys = jax.random.split(jax.random.key(7), BATCH)
    mdps = jax.vmap(lambda k: rf.random_mdp(k, S, A, 0.9))(keys)
    logits = jax.random.normal(jax.random.key(8), (BATCH, S, A))
    return mdps, jax.nn.softmax(logits, axis=-1)


POLICY_FUNCTIONS = [
    rf.policy_evaluation,
    rf.state_values,
    rf.action_values,
    rf.advantages,
    rf.expected_return,
    rf.discounted_visitation,
    rf.policy_transition_matrix,
    rf.policy_reward,
]
MDP_FUNCTIONS = [
    rf.value_iteration,
    lambda m: rf.policy_iteration(m)[1],
    lambda m: rf.policy_iteration(m)[0],
]


def unbatch(mdps, i):
    return jax.tree_util.tree_map(lambda x: x[i], mdps)


@pytest.mark.parametrize("fn", POLICY_FUNCTIONS, ids=lambda f: f.__name__)
def test_policy_functions_plain_jit_vmap_agree(fn):
    mdps, pis = batch()
    vmapped = jax.vmap(fn)(mdps, pis)
    jitted_vmapped = jax.jit(jax.vmap(fn))(mdps, pis)
    for i in range(BATCH):
        mdp_i = unbatch(mdps, i)
        plain = fn(mdp_i, pis[i])
        np.testing.assert_allclose(jax.jit(fn)(mdp_i, pis[i]), plain, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(vmapped[i], plain, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(jitted_vmapped[i], plain, rtol=1e-12, atol=1e-12)
    # one MDP, a batch of policies
    mdp0 = unbatch(mdps, 0)
    over_policies = jax.vmap(fn, in_axes=(None, 0))(mdp0, pis)
    for i in range(BATCH):
        np.testing.assert_allclose(over_policies[i], fn(mdp0, pis[i]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn", MDP_FUNCTIONS)
def test_solvers_plain_jit_vmap_agree(fn):
    mdps, _ = batch()
    vmapped = jax.vmap(fn)(mdps)
    for i in range(BATCH):
        plain = fn(unbatch(mdps, i))
        np.testing.assert_allclose(vmapped[i], plain, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(jax.jit(fn)(unbatch(mdps, i)), plain, rtol=1e-9, atol=1e-9)


def test_operators_and_returns_under_jit_and_vmap():
    mdps, pis = batch()
    V = jax.random.normal(jax.random.key(3), (BATCH, S))
    for fn, args in [
        (rf.bellman_expectation_operator, (mdps, pis, V)),
        (rf.bellman_optimality_operator, (mdps, V)),
        (rf.greedy_policy, (mdps, V)),
        (rf.one_step_lookahead, (mdps, V)),
    ]:
        out = jax.jit(jax.vmap(fn))(*args)
        for i in range(BATCH):
            single = [unbatch(a, i) if isinstance(a, rf.FiniteMDP) else a[i] for a in args]
            np.testing.assert_allclose(out[i], fn(*single), rtol=1e-12, atol=1e-12)
    rewards = jax.random.normal(jax.random.key(4), (BATCH, 9))
    np.testing.assert_allclose(
        jax.jit(jax.vmap(rf.discounted_return, in_axes=(0, None)))(rewards, 0.9),
        rf.discounted_return(rewards, 0.9),
        rtol=1e-12,
    )


def test_random_mdp_and_sampling_vmap_over_keys():
    keys = jax.random.split(jax.random.key(0), BATCH)
    mdps = jax.vmap(lambda k: rf.random_mdp(k, S, A, 0.5))(keys)
    assert mdps.P.shape == (BATCH, S, A, S)
    np.testing.assert_allclose(mdps.P.sum(-1), 1.0, atol=1e-12)
    pi = jnp.full((S, A), 1.0 / A)
    states, actions, rewards = jax.vmap(lambda k, m: rf.sample_trajectory(k, m, pi, 6))(keys, mdps)
    assert states.shape == actions.shape == rewards.shape == (BATCH, 6)
    np.testing.assert_allclose(rewards, jax.vmap(lambda m, s, a: m.R[s, a])(mdps, states, actions), atol=0)


def test_library_runs_in_float32():
    """The library runs without x64: a float32 MDP gives float32 results close to float64."""
    mdp64 = rf.random_mdp(jax.random.key(1), S, A, 0.9)
    mdp32 = rf.FiniteMDP(
        mdp64.P.astype(jnp.float32),
        mdp64.R.astype(jnp.float32),
        0.9,
        mdp64.rho0.astype(jnp.float32),
    )
    pi = jnp.full((S, A), 1.0 / A, jnp.float32)
    V32 = rf.policy_evaluation(mdp32, pi)
    assert V32.dtype == jnp.float32
    np.testing.assert_allclose(V32, rf.policy_evaluation(mdp64, pi.astype(jnp.float64)), rtol=1e-4)
    res = rf.value_iteration_with_bound(mdp32, tol=1e-10)
    assert res.values.dtype == jnp.float32 and int(res.num_iterations) < 10_000
    np.testing.assert_allclose(res.values, rf.value_iteration(mdp64), rtol=1e-4)
