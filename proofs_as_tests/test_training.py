"""`reference.training`: the sequential update, the registered algorithms, Gaussian and mixed agents.

Each proof compares the library with a computation written here independently: a hand-written
loop over the agents, the A2C step from the closed-form softmax score, PPO with a hand-written
Gaussian log-density, MAPPO's objective as `mappo_objective` defines it."""

import math
import os
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, strategies as st

import reference as rf
from proofs_as_tests.strategies import at_most
from reference import training

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
standard_promotion = jax.numpy_dtype_promotion("standard")  # optax's Adam mixes int32 counts with floats


def linear_softmax(p, o):
    return o @ p  # logits [B, A]


def random_batch(key, B, obs_size, num_actions):
    k1, k2, k3 = jax.random.split(key, 3)
    obs = jax.random.normal(k1, (B, obs_size))
    acts = jax.random.randint(k2, (B,), 0, num_actions)
    old = jnp.log(jax.random.uniform(k3, (B,), minval=0.2, maxval=0.9))
    return training.AgentBatch(obs, acts, old)


@at_most(20)
@given(st.integers(2, 4), st.integers(0, 2**31 - 1), st.booleans())
def test_sequential_update_is_the_hand_written_loop(n, seed, alike):
    """§D, A50: `sequential_update` runs the agents in the order permutation(split(key)[0], n), hands
    agent i_m the factor M = (∏_{j<m} π^{i_j}_new/π^{i_j}_old)·Â and its own key fold_in(split(key)[1],
    i_m), and returns each agent's result in place. The agent update here records what it was given
    (it moves its parameters by the factor's mean), so any slip in the order, the factor or the key
    shows; both the gathered (`agents_alike=True`) and the `lax.switch` path are checked."""
    with jax.enable_x64(True):
        key, k_data, k_adv = jax.random.split(jax.random.key(seed), 3)
        policy = training.Policy(linear_softmax, training.Categorical())
        params = tuple(jnp.zeros((3, 2)) + 0.1 * i for i in range(n))
        batches = tuple(random_batch(k, 5, 3, 2) for k in jax.random.split(k_data, n))
        adv = jax.random.normal(k_adv, (5,))

        def agent_update(k, pol, p, s, batch, factor):
            shift = jnp.mean(factor) + jax.random.uniform(k)
            return p + shift, s + 1.0

        states = tuple(jnp.zeros(()) for _ in range(n))
        new, new_states = training.sequential_update(
            key, agent_update, (policy,) * n, params, states, batches, adv, agents_alike=alike
        )

        # The same, written as the paper's loop.
        order = [int(i) for i in jax.random.permutation(jax.random.split(key)[0], n)]
        expected, M = list(params), np.asarray(adv)
        for i in order:
            k_i = jax.random.fold_in(jax.random.split(key)[1], i)
            expected[i] = params[i] + (M.mean() + float(jax.random.uniform(k_i)))
            logp_new = jax.nn.log_softmax(batches[i].observations @ expected[i])
            taken = np.take_along_axis(np.asarray(logp_new), np.asarray(batches[i].actions)[:, None], 1)[:, 0]
            M = M * np.exp(taken - np.asarray(batches[i].old_log_probs))
        for i in range(n):
            np.testing.assert_allclose(new[i], expected[i], rtol=1e-13, atol=1e-13)
            assert float(new_states[i]) == 1.0


def test_sequential_update_refuses_unlike_agents_declared_alike():
    """`agents_alike=True` needs one policy and equal shapes: agents with 2 and 3 actions are refused
    with the condition named, before any computation; mismatched lengths too."""
    policy = training.Policy(linear_softmax, training.Categorical())
    batches = (random_batch(jax.random.key(0), 4, 3, 2), random_batch(jax.random.key(1), 4, 3, 3))
    params = (jnp.zeros((3, 2)), jnp.zeros((3, 3)))
    noop = lambda k, pol, p, s, b, f: (p, s)
    adv = jnp.zeros(4)
    with pytest.raises(ValueError, match="sequential_update: `agents_alike=True` needs one Policy and equal"):
        training.sequential_update(jax.random.key(0), noop, (policy,) * 2, params, (None,) * 2, batches, adv,
                                   agents_alike=True)  # fmt: skip
    with pytest.raises(ValueError, match="must each hold one entry per agent"):
        training.sequential_update(jax.random.key(0), noop, (policy,), params, (None,) * 2, batches, adv,
                                   agents_alike=False)  # fmt: skip
    new, _ = training.sequential_update(
        jax.random.key(0), noop, (policy,) * 2, params, (None,) * 2, batches, adv, agents_alike=False
    )
    assert [p.shape for p in new] == [(3, 2), (3, 3)]


@jax.jit
def _haa2c_iteration(key, W, obs, acts, old, adv):
    """One HAA2C iteration of one linear-softmax agent: `a2c_agent_update` (SGD, lr 1, 3 epochs) through
    `sequential_update` (jitted once for all examples)."""
    policy = training.Policy(linear_softmax, training.Categorical())
    update = lambda *a: training.a2c_agent_update(*a, optimizer=optax.sgd(1.0), num_epochs=3)
    batch = training.AgentBatch(obs, acts, old)
    (new,), _ = training.sequential_update(
        key, update, (policy,), (W,), (optax.sgd(1.0).init(W),), (batch,), adv, agents_alike=True
    )
    return new


@standard_promotion
@at_most(20)
@given(st.integers(0, 2**31 - 1))
def test_haa2c_with_one_agent_is_a2c_step_for_step(seed):
    """A51a: with one agent (M = Â) and SGD, each HAA2C iteration (`a2c_agent_update` through
    `sequential_update`, 3 epochs of one minibatch) is: first the A2C step
    θ ← θ + lr·(1/B)Σ_b Â_b ∇log π_θ(a_b|o_b) at the current policy, then steps on the importance-
    weighted gradient (1/B)Σ_b r_b Â_b ∇log π_θ(a_b|o_b), r_b = π_θ/π_old, never clipped, with the
    linear-softmax score written in closed form, ∇_W log softmax(Wᵀo)_a = o(e_a − π)ᵀ. Three
    iterations on fresh batches; the steps are large enough that ratios leave [0.8, 1.2], so a
    clipped (HAPPO) step would differ."""
    with jax.enable_x64(True):
        lr, B, epochs = 1.0, 6, 3
        key = jax.random.key(seed)
        W = 0.1 * jax.random.normal(key, (3, 4))
        ours, theirs = W, np.asarray(W)
        left_the_clip_range = False
        for it in range(3):
            k_obs, k_act, k_adv = jax.random.split(jax.random.fold_in(key, it), 3)
            obs = np.asarray(jax.random.normal(k_obs, (B, 3)))
            acts = np.asarray(jax.random.randint(k_act, (B,), 0, 4))
            adv = np.asarray(jax.random.normal(k_adv, (B,)))
            old = np.asarray(jax.nn.log_softmax(obs @ ours))[np.arange(B), acts]
            ours = _haa2c_iteration(key, ours, jnp.asarray(obs), jnp.asarray(acts), jnp.asarray(old), jnp.asarray(adv))
            for _ in range(epochs):
                logits = obs @ theirs
                pi = np.exp(logits - logits.max(1, keepdims=True))
                pi /= pi.sum(1, keepdims=True)
                log_pi = logits - logits.max(1, keepdims=True)
                log_pi -= np.log(np.exp(log_pi).sum(1, keepdims=True))
                ratio = np.exp(log_pi[np.arange(B), acts] - old)
                score = np.einsum("bi,bj->bij", obs, np.eye(4)[acts] - pi)
                theirs = theirs + lr * np.mean((ratio * adv)[:, None, None] * score, axis=0)
                left_the_clip_range |= bool(np.any(np.abs(ratio - 1) > 0.2))
            np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-12)
        assert left_the_clip_range


@partial(jax.jit, static_argnums=0)
def _pooled_losses(n, W, obs, acts, old, adv, eps, c):
    """The pooled shared-actor loss and the loss written from `mappo_objective`, with their gradients."""
    policy = training.Policy(linear_softmax, training.Categorical())
    pooled = training.AgentBatch(
        jnp.concatenate([obs[:, i] for i in range(n)]),
        jnp.concatenate([acts[:, i] for i in range(n)]),
        jnp.concatenate([old[:, i] for i in range(n)]),
    )

    def ours(W):
        return training.clipped_surrogate_loss(policy, W, pooled, jnp.tile(adv, n), epsilon=eps, entropy_coef=c)

    def theirs(W):
        logp = jax.nn.log_softmax(obs @ W)  # [B, n, A]
        ratios = jnp.exp(jnp.take_along_axis(logp, acts[..., None], -1)[..., 0] - old)
        entropy = -jnp.sum(jnp.exp(logp) * logp, -1)
        return -(jnp.mean(rf.mappo_objective(ratios, adv, eps)) / n + c * jnp.mean(entropy))

    return jax.value_and_grad(ours)(W), jax.value_and_grad(theirs)(W)


@given(st.integers(2, 4), st.integers(0, 2**31 - 1), st.floats(0.05, 0.5), st.floats(0.0, 0.1))
@at_most(30)
def test_mappo_loss_is_the_pooled_clipped_surrogate(n, seed, eps, c):
    """A36: the shared actor's loss on the n agents' samples pooled (what the trainer's MAPPO entry
    minimises) equals −[(1/B)Σ_b mappo_objective(r_b, Â_b)/n + c_H·mean entropy], the objective
    summed over agents as `mappo_objective` defines it, in value and in gradient."""
    with jax.enable_x64(True):
        B = 5
        k = jax.random.split(jax.random.key(seed), 4)
        W = 0.5 * jax.random.normal(k[0], (3, 4))
        obs = jax.random.normal(k[1], (B, n, 3))
        acts = jax.random.randint(k[2], (B, n), 0, 4)
        adv = jax.random.normal(k[3], (B,))
        old = jnp.take_along_axis(jax.nn.log_softmax(obs @ (0.9 * W)), acts[..., None], -1)[..., 0]
        (v1, g1), (v2, g2) = _pooled_losses(n, W, obs, acts, old, adv, eps, c)
        np.testing.assert_allclose(v1, v2, rtol=1e-12)
        np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-13)


def gaussian_policy():
    return training.Policy(lambda p, o: (o @ p[0], p[1]), training.DiagonalGaussian())


@jax.jit
def _gaussian_happo_iteration(params, obs, acts, old, adv):
    """One agent's HAPPO iteration (Adam 0.05, ε = 0.2, 3 epochs) through `sequential_update`."""
    opt = optax.adam(0.05)
    update = lambda *a: training.ppo_agent_update(*a, optimizer=opt, epsilon=0.2, num_epochs=3)
    batch = training.AgentBatch(obs, acts, old)
    (new,), _ = training.sequential_update(
        jax.random.key(1), update, (gaussian_policy(),), (params,), (opt.init(params),), (batch,), adv,
        agents_alike=True,
    )  # fmt: skip
    return new


@standard_promotion
@at_most(15)
@given(st.integers(0, 2**31 - 1), st.integers(1, 3))
def test_gaussian_happo_with_one_agent_is_ppo(seed, D):
    """B24(e) for continuous actions: one agent's HAPPO (`ppo_agent_update` through
    `sequential_update`, M = Â) with a diagonal-Gaussian policy equals PPO's epochs of Adam on
    −mean(ppo_clip_objective) with the log-density written out here,
    log N(a; μ, σ²) = −Σ_d[(a−μ)²/(2σ²) + log σ + ½ log 2π]."""
    with jax.enable_x64(True):
        B, eps, epochs = 8, 0.2, 3
        k = jax.random.split(jax.random.key(seed), 4)
        params = (0.3 * jax.random.normal(k[0], (3, D)), jnp.full(D, -0.3))
        obs = jax.random.normal(k[1], (B, 3))
        acts = obs @ params[0] + jax.random.normal(k[2], (B, D))
        adv = jax.random.normal(k[3], (B,))

        def log_density(p, a):
            mu, log_std = obs @ p[0], p[1]
            return -jnp.sum((a - mu) ** 2 / (2 * jnp.exp(2 * log_std)) + log_std + 0.5 * math.log(2 * math.pi), -1)

        old = log_density(params, acts)
        ours = _gaussian_happo_iteration(params, obs, acts, old, adv)
        opt = optax.adam(0.05)
        theirs, state = params, opt.init(params)
        loss = lambda p: -jnp.mean(rf.ppo_clip_objective(jnp.exp(log_density(p, acts) - old), adv, eps))
        for _ in range(epochs):
            updates, state = opt.update(jax.grad(loss)(theirs), state, theirs)
            theirs = optax.apply_updates(theirs, updates)
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@partial(jax.jit, static_argnums=4)
def _gaussian_trpo_step(params, obs, acts, adv, delta):
    policy = gaussian_policy()
    batch = training.AgentBatch(obs, acts, policy.log_prob(params, obs, acts))
    return training.trpo_agent_update(jax.random.key(0), policy, params, None, batch, adv, delta=delta)[0]


@at_most(15)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.003, 0.01, 0.05]))
def test_gaussian_hatrpo_step_stays_in_the_kl_ball(seed, delta):
    """A45–A49 for continuous actions: `trpo_agent_update` with a Gaussian policy accepts a step whose
    mean KL from the old policy, computed here from the closed form
    Σ_d[log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½] in numpy, is ≤ δ, and it does move."""
    with jax.enable_x64(True):
        B, D = 16, 2
        k = jax.random.split(jax.random.key(seed), 4)
        params = (0.3 * jax.random.normal(k[0], (3, D)), jnp.full(D, -0.5))
        obs = jax.random.normal(k[1], (B, 3))
        acts = obs @ params[0] + 0.6 * jax.random.normal(k[2], (B, D))
        adv = jax.random.normal(k[3], (B,))
        new = _gaussian_trpo_step(params, obs, acts, adv, delta)
        mu_p, mu_q = np.asarray(obs @ params[0]), np.asarray(obs @ new[0])
        sp, sq = np.exp(np.asarray(params[1])), np.exp(np.asarray(new[1]))
        kl = np.sum(np.log(sq / sp) + (sp**2 + (mu_p - mu_q) ** 2) / (2 * sq**2) - 0.5, -1).mean()
        assert kl <= delta * (1 + 1e-6)
        assert kl > delta / 100


class TargetGame(eqx.Module):
    """A one-step continuous cooperative game: agent i (action size d_i, observation size 2 padded
    to 3 for agent 0) is paid −‖a^i − t^i‖²; the targets differ between agents."""

    num_agents: int = eqx.field(static=True)
    obs_size: int = eqx.field(static=True)
    action_sizes: tuple[int, ...] = eqx.field(static=True)
    continuous_actions: bool = eqx.field(static=True, default=True)

    def targets(self):
        D = max(self.action_sizes)
        return jnp.asarray([[0.5] * D, [-0.5] * D, [0.25] * D][: self.num_agents])

    def reset(self, key):
        return jnp.ones((self.num_agents, self.obs_size)), jnp.zeros(())

    def step(self, key, state, actions):
        mask = jnp.arange(actions.shape[1])[None, :] < jnp.asarray(self.action_sizes)[:, None]
        reward = -jnp.sum(jnp.where(mask, (actions - self.targets()) ** 2, 0.0))
        return jnp.ones((self.num_agents, self.obs_size)), state, reward, jnp.asarray(True)


@partial(jax.jit, static_argnums=0)
def _two_trpo_steps(continuous, params, obs, acts, factor):
    """`trpo_agent_update`'s step and `trpo_update`'s on the same surrogate and KL, written out."""
    B = obs.shape[0]
    net = lambda p, o: jnp.tanh(o @ p[0]) @ p[1]
    if continuous:
        policy = training.Policy(lambda p, o: (net(p, o), p[2]), training.DiagonalGaussian())

        def log_density(p):
            mu, log_std = net(p, obs), p[2]
            return -jnp.sum((acts - mu) ** 2 / (2 * jnp.exp(2 * log_std)) + log_std + 0.5 * math.log(2 * math.pi), -1)

        def mean_kl(p):
            mu0, s0, mu, s = net(params, obs), jnp.exp(params[2]), net(p, obs), jnp.exp(p[2])
            return jnp.mean(jnp.sum(jnp.log(s / s0) + (s0**2 + (mu0 - mu) ** 2) / (2 * s**2) - 0.5, -1))
    else:
        policy = training.Policy(net, training.Categorical())
        log_density = lambda p: jax.nn.log_softmax(net(p, obs))[jnp.arange(B), acts]

        def mean_kl(p):
            lp0, lp = jax.nn.log_softmax(net(params, obs)), jax.nn.log_softmax(net(p, obs))
            return jnp.mean(jnp.sum(jnp.exp(lp0) * (lp0 - lp), -1))

    old = log_density(params)
    surrogate = lambda p: jnp.mean(jnp.exp(log_density(p) - old) * factor)
    batch = training.AgentBatch(obs, acts, old)
    ours, _ = training.trpo_agent_update(jax.random.key(0), policy, params, None, batch, factor, delta=0.02)
    return ours, rf.trpo_update(surrogate, mean_kl, params, 0.02)


@at_most(25)
@given(st.integers(0, 2**31 - 1), st.booleans())
def test_trpo_agent_update_is_trpo_update_on_its_surrogate(seed, continuous):
    """HATRPO's agent step multiplies by the Fisher as Jᵀ H_out J (the network's Jacobian around the
    Hessian of the KL in the distribution's parameters: exact at the old policy, where the KL's
    gradient in those parameters is zero). Proved against `trpo_update`, which differentiates the
    KL through the network twice, on the surrogate mean(r·M) and the mean KL written out for a
    tanh MLP: categorical (3 actions) or Gaussian (2 dimensions, learnt log-std)."""
    with jax.enable_x64(True):
        B = 24
        k = jax.random.split(jax.random.key(seed), 6)
        w1, w2 = jax.random.normal(k[0], (4, 8)), 0.5 * jax.random.normal(k[1], (8, 2 if continuous else 3))
        obs, factor = jax.random.normal(k[2], (B, 4)), jax.random.normal(k[3], (B,))
        if continuous:
            params = (w1, w2, jnp.full(2, -0.4))
            acts = jnp.tanh(obs @ w1) @ w2 + jax.random.normal(k[4], (B, 2))
        else:
            params, acts = (w1, w2), jax.random.randint(k[4], (B,), 0, 3)
        ours, theirs = _two_trpo_steps(continuous, params, obs, acts, factor)
        assert any(float(jnp.max(jnp.abs(a - b))) > 1e-3 for a, b in zip(ours, params, strict=True))  # it moved
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.slow
@standard_promotion
@pytest.mark.parametrize(
    ("algorithm", "overrides", "threshold"),
    [("happo", {}, -0.35), ("hatrpo", {}, -0.35), ("haa2c", {"num_epochs": 1}, -0.7)],
)
def test_heterogeneous_continuous_agents_learn_their_own_targets(algorithm, overrides, threshold):
    """Continuous, heterogeneous agents in one run: action sizes 1 and 2 (no padding enters the
    log-densities: each agent's Gaussian has its own dimension), `lax.switch` for the sequential
    update. Initially the expected return is −Σ_i d_i(σ₀² + t_i²) ≈ −1.85; after 40 iterations each
    agent's mean action is near its own target and the return is above −0.35 (HAA2C, unclipped,
    takes one epoch per batch, as A2C does, and learns more slowly: above −0.7)."""
    env = TargetGame(2, 3, (1, 2))
    cfg = training.MARLConfig(
        algorithm=algorithm, total_steps=64 * 40, num_envs=64, num_steps=1, actor_lr=0.01, entropy_coef=0.0, **overrides
    )
    trainer = training.make_train(cfg, env)
    state, metrics = jax.jit(trainer)(jax.random.key(0))
    assert float(metrics.episode_return[0]) < -1.0
    assert float(metrics.episode_return[-5:].mean()) > threshold, metrics.episode_return
    means = trainer.actions(state.actor_params, jnp.ones((1, 2, 3)))[0]
    np.testing.assert_allclose(means[0, :1], [0.5], atol=0.15)
    np.testing.assert_allclose(means[1], [-0.5, -0.5], atol=0.15)


class MixedGame(eqx.Module):
    """A one-step game with agents of two kinds: agent 0 picks one of 3 discrete actions and costs
    0.5 unless it picks action 2; agent 1 has a 2-dimensional continuous action paid −‖a¹ − t‖²,
    t = (−0.5, 0.25). The actions arrive as floats `[2, 2]`: agent 0's index in column 0."""

    num_agents: int = eqx.field(static=True, default=2)
    obs_size: int = eqx.field(static=True, default=2)
    action_sizes: tuple[int, ...] = eqx.field(static=True, default=(3, 2))
    continuous_actions: tuple[bool, ...] = eqx.field(static=True, default=(False, True))

    def reset(self, key):
        return jnp.ones((2, 2)), jnp.zeros(())

    def step(self, key, state, actions):
        miss = jnp.where(actions[0, 0] == 2.0, 0.0, 0.5)
        reward = -miss - jnp.sum((actions[1] - jnp.asarray([-0.5, 0.25])) ** 2)
        return jnp.ones((2, 2)), state, reward, jnp.asarray(True)


def test_agent_kinds_are_checked_by_make_train():
    """`continuous_actions` with one entry per agent or none, and a shared actor (MAPPO) over agents of
    one kind and size only: each refused by `make_train` with the condition named."""
    with pytest.raises(ValueError, match=r"`env.continuous_actions` must be one bool or one per agent \(2\)"):
        training.make_train(training.MARLConfig(), MixedGame(continuous_actions=(False, True, True)))
    with pytest.raises(ValueError, match="'mappo' shares one actor, so every agent needs the same kind and size"):
        training.make_train(training.MARLConfig(algorithm="mappo"), MixedGame(action_sizes=(2, 2)))
    training.make_train(
        training.MARLConfig(algorithm="mappo"), MixedGame(action_sizes=(2, 2), continuous_actions=(True, True))
    )


@pytest.mark.slow
@standard_promotion
@pytest.mark.parametrize("algorithm", ["happo", "hatrpo"])
def test_a_discrete_and_a_continuous_agent_learn_in_one_run(algorithm):
    """Agents of different kinds in one run: a categorical actor beside a Gaussian one, each with its
    own density (the discrete agent's index is stored as a float, and read back as an integer), the
    sequential update through `lax.switch`. Initially the expected return is −0.5·2/3 −
    2(σ₀² + (0.5² + 0.25²)/2) ≈ −1.38; after 40 iterations the discrete agent picks action 2, the
    continuous agent's mean is at its target and the return is above −0.3."""
    env = MixedGame()
    cfg = training.MARLConfig(
        algorithm=algorithm, total_steps=64 * 40, num_envs=64, num_steps=1, actor_lr=0.01, entropy_coef=0.0
    )
    trainer = training.make_train(cfg, env)
    assert [type(trainer.policy(i).family).__name__ for i in range(2)] == ["Categorical", "DiagonalGaussian"]
    state, metrics = jax.jit(trainer)(jax.random.key(0))
    assert float(metrics.episode_return[0]) < -1.0
    assert float(metrics.episode_return[-5:].mean()) > -0.3, metrics.episode_return
    greedy = trainer.actions(state.actor_params, jnp.ones((1, 2, 2)))[0]
    np.testing.assert_array_equal(greedy[0], [2.0, 0.0])
    np.testing.assert_allclose(greedy[1], [-0.5, 0.25], atol=0.15)


@standard_promotion
def test_an_algorithm_is_added_by_one_function():
    """The registry's promise: an algorithm is one agent-update function. A plain policy-gradient
        step (one SGD step on −mean(M·log π)) written here learns Proposition 1's game (2 agents: random
    0.5, optimum 1) through `MARLConfig(algorithm=
        Algorithm(...))` with its keyword-only hyper-parameter read from the config by name; one that
        needs a hyper-parameter the config lacks is refused with the name."""

    def pg_update(key, policy, params, opt_state, batch, factor, *, actor_lr):
        loss = lambda p: -jnp.mean(factor * policy.log_prob(p, batch.observations, batch.actions))
        grads = jax.grad(loss)(params)
        return jax.tree.map(lambda p, g: p - actor_lr * g, params, grads), opt_state

    env = training.cooperative_game_env(rf.parameter_sharing_game(2))
    cfg = training.MARLConfig(algorithm=training.Algorithm("pg", pg_update), total_steps=64 * 8 * 10, num_envs=64,
                              num_steps=8, actor_lr=0.5)  # fmt: skip
    trainer = training.make_train(cfg, env)
    assert trainer.uses_optimizer is False
    _, metrics = jax.jit(trainer)(jax.random.key(0))
    assert float(metrics.episode_return[0]) < 0.6  # the random policy's 2/2ⁿ = 0.5
    assert float(metrics.episode_return[-1]) > 0.95  # the optimum is 1
    assert cfg.as_dict()["algorithm"] == "pg"

    def needs_more(key, policy, params, opt_state, batch, factor, *, temperature):
        return params, opt_state

    with pytest.raises(ValueError, match="needs the hyper-parameter `temperature`"):
        training.make_train(training.MARLConfig(algorithm=training.Algorithm("x", needs_more)), env)


@standard_promotion
@pytest.mark.parametrize("n", [2, 3])
def test_trainer_mappo_update_is_adam_on_mappo_objective(n):
    """A36 in the trainer: MAPPO's actor update (the registry's shared-actor entry, the agents'
    samples pooled) is `num_epochs` clipped Adam steps, as the trainer's config builds them, on
    −[(1/B)Σ_b mappo_objective(r_b, Â_b)/n + c_H·mean entropy] with the ratios of each agent's own
    action and the advantage of its own sample: pairing an agent's sample with another sample's
    advantage, or dropping an agent, changes the step."""
    with jax.enable_x64(True):
        game = rf.random_game(jax.random.key(0), 3, (4,) * n, 0.9)
        env = training.cooperative_game_env(game)
        cfg = training.MARLConfig(algorithm="mappo", total_steps=64, num_envs=8, num_steps=8, num_epochs=3)
        trainer = training.make_train(cfg, env)
        params = trainer.init(jax.random.key(1)).actor_params
        B = 16
        k = jax.random.split(jax.random.key(2), 4)
        obs = jax.nn.one_hot(jax.random.randint(k[0], (B, n), 0, 3), 3)
        acts = jax.random.randint(k[1], (B, n), 0, 4)
        adv = jax.random.normal(k[2], (B,))
        apply = trainer.policy(0).apply
        old = jnp.stack(
            [jax.nn.log_softmax(apply(params[0], obs[:, i]))[jnp.arange(B), acts[:, i]] for i in range(n)], 1
        )
        old = old + 0.1 * jax.random.normal(k[3], (B, n))  # the old policy differs from the current one
        optimizer = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.actor_lr, eps=1e-5))
        (ours,), _ = trainer.update_actors(jax.random.key(3), params, (optimizer.init(params[0]),), obs, acts, old, adv)

        def loss(p):
            logp = jnp.stack([jax.nn.log_softmax(apply(p, obs[:, i])) for i in range(n)], 1)  # [B, n, A]
            ratios = jnp.exp(jnp.take_along_axis(logp, acts[..., None], -1)[..., 0] - old)
            entropy = -jnp.sum(jnp.exp(logp) * logp, -1)
            return -(jnp.mean(rf.mappo_objective(ratios, adv, cfg.epsilon)) / n + cfg.entropy_coef * jnp.mean(entropy))

        theirs, state = params[0], optimizer.init(params[0])
        for _ in range(cfg.num_epochs):  # full-batch epochs: Adam's later steps weigh the gradients' sizes
            updates, state = optimizer.update(jax.grad(loss)(theirs), state, theirs)
            theirs = optax.apply_updates(theirs, updates)
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
@standard_promotion
def test_mabrax_halfcheetah_is_six_continuous_agents_that_train():
    """JaxMARL's multi-agent HalfCheetah (the `mabrax` extra) behind the interface: 6 agents with one
    continuous joint each, observations of 8–9 numbers zero-padded to 9 (the padding is zero in the
    observation the environment returns, and the unpadded part is the environment's own); one
    HAPPO iteration runs and gives finite parameters."""
    pytest.importorskip("brax")
    training.mujoco_warnings_to_console()
    env = training.mabrax_env("halfcheetah_6x1", episode_length=1000)
    assert (env.num_agents, env.obs_size, env.action_sizes, env.continuous_actions) == (6, 9, (1,) * 6, True)
    raw, _ = env.env.reset(jax.random.key(0))
    obs, _ = env.reset(jax.random.key(0))
    for i, agent in enumerate(env.env.agents):
        d = raw[agent].shape[-1]
        np.testing.assert_array_equal(obs[i, :d], raw[agent])
        np.testing.assert_array_equal(obs[i, d:], 0.0)
    cfg = training.MARLConfig(algorithm="happo", total_steps=8 * 10, num_envs=8, num_steps=10, num_epochs=1)
    trainer = training.make_train(cfg, env)
    state, metrics = jax.jit(trainer)(jax.random.key(0))
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state.actor_params))
    assert int(metrics.steps[-1]) == 80


_MUJOCO_WARNS = """
import sys, mujoco
if sys.argv[1] == "to_console":
    from reference import training
    assert training.mujoco_warnings_to_console()
model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><body><joint/><geom size='1'/></body></worldbody></mujoco>")
data = mujoco.MjData(model)
data.qpos[0] = float("nan")  # MuJoCo warns: "Nan, Inf or huge value in QPOS"
mujoco.mj_step(model, data)
assert data.warning[mujoco.mjtWarning.mjWARN_BADQPOS].number == 1
"""


@pytest.mark.parametrize("where", ["default", "to_console"])
def test_mujoco_warnings_stay_out_of_the_working_directory(tmp_path, where):
    """A MuJoCo warning writes `MUJOCO_LOG.TXT` in the working directory by default (shown, so the
    proof can fail) and nothing after `mujoco_warnings_to_console()`."""
    pytest.importorskip("mujoco")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _MUJOCO_WARNS, where], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "QPOS" in out.stdout + out.stderr  # the warning itself still reaches the console
    assert (tmp_path / "MUJOCO_LOG.TXT").exists() == (where == "default")


_ENDS_SCRIPT = """
import json, sys
import jax, jax.numpy as jnp, numpy as np
from reference import training

name = sys.argv[1]
if name == "hopper_3x1":
    training.mujoco_warnings_to_console()
    env, limit = training.mabrax_env(name, episode_length=20), 20
elif name == "smax_2s3z":
    env, limit = training.smax_env("2s3z"), 100
else:
    env, limit = training.simple_spread_env(3, 25), 25
E, T = 16, limit + 10
continuous = bool(getattr(env, "continuous_actions", False))


def actions(key):
    if continuous:
        return jax.random.uniform(key, (E, env.num_agents, max(env.action_sizes)), minval=-1, maxval=1)
    return jax.random.randint(key, (E, env.num_agents), 0, min(env.action_sizes))


@jax.jit
def run(key):
    _, state = jax.vmap(env.reset)(jax.random.split(key, E))

    def body(state, k):
        k_act, k_step = jax.random.split(k)
        out = jax.vmap(env.step)(jax.random.split(k_step, E), state, actions(k_act))
        return out.state, (out.terminated, out.truncated, jnp.any(out.final_obs != out.obs, axis=(1, 2)))

    return jax.lax.scan(body, state, jax.random.split(key, T))[1]


with jax.numpy_dtype_promotion("standard"):  # JaxMARL's own code mixes Python floats with booleans
    terminated, truncated, moved = map(np.asarray, run(jax.random.key(0)))
print(json.dumps({"limit": limit, "terminated": terminated.tolist(), "truncated": truncated.tolist(),
                  "moved": moved.tolist()}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["simple_spread", "smax_2s3z", "hopper_3x1"])
def test_jaxmarl_ends_are_terminations_or_truncations(name):
    """JaxMARL's episode ends, as the wrappers report them (random actions, 16 environments,
    episodes counted here step by step): MPE's 25-step limit is always a truncation; an SMAX
    battle that ends before the 100-step limit ended by a side's destruction, a termination; a
    MABrax Hopper (20-step episodes here) that ends before the limit fell, a termination, and one
    that reaches it is truncated. No step is both; a truncation happens only at the limit; the
    observation a truncated step reached (`final_obs`) is not the next episode's first. Run in a
    fresh process with JAX's default float32, as the environments are trained (JaxMARL's module
    constants, once created under this suite's float64, do not mix with float32 states)."""
    import json
    import subprocess
    import sys

    pytest.importorskip("brax" if name == "hopper_3x1" else "jaxmarl")
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_X64", "JAX_NUMPY_DTYPE_PROMOTION")}
    done = subprocess.run(
        [sys.executable, "-c", _ENDS_SCRIPT, name], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    limit = out["limit"]
    terminated, truncated, moved = (np.asarray(out[k]) for k in ("terminated", "truncated", "moved"))
    assert not np.any(terminated & truncated)
    count, ends = np.zeros(terminated.shape[1], int), []
    for t in range(terminated.shape[0]):
        count += 1
        for e in np.flatnonzero(terminated[t] | truncated[t]):
            ends.append((int(count[e]), bool(terminated[t, e])))
            assert moved[t, e], "the final observation is the reset one"
            count[e] = 0
    assert ends and all(length <= limit for length, _ in ends)
    assert all(term for length, term in ends if length < limit), ends  # ended early: a terminal state
    if name == "simple_spread":
        assert all(length == limit and not term for length, term in ends)
    else:
        assert any(term for _, term in ends), ends
    if name == "hopper_3x1":
        assert any(length == limit and not term for length, term in ends), ends


def test_an_algorithm_carries_its_own_hyperparameters():
    """An `Algorithm`'s own hyper-parameters reach its update (the config's fields first, then
    `hyperparameters`, then the function's defaults), are recorded by `as_dict` and read back by
    `from_dict` given the algorithm; a name that is not a keyword-only parameter of the update, or
    that is a `MARLConfig` field, is refused with the name; `from_dict` refuses an algorithm it is
    not given, and reads a configuration written before truncations were told apart as
    `"as_termination"` and its `clip_epsilon`, `kl_threshold`, `normalize_advantages` as `epsilon`,
    `delta`, `normalise_advantages`."""
    seen = {}

    def update(key, policy, params, opt_state, batch, factor, *, epsilon, scale=1.0, shift=0.0):
        seen.update(epsilon=epsilon, scale=scale, shift=shift)
        return params, opt_state

    mine = training.Algorithm("mine", update, hyperparameters={"scale": 3.0})
    cfg = training.MARLConfig(algorithm=mine, epsilon=0.3, total_steps=8 * 25, num_envs=8)
    bound, uses_optimizer = mine.bind(cfg, optax.sgd(0.1))
    bound(None, None, "p", "s", None, None)
    assert seen == {"epsilon": 0.3, "scale": 3.0, "shift": 0.0} and not uses_optimizer
    fields = cfg.as_dict()
    assert (fields["algorithm"], fields["algorithm_hyperparameters"]) == ("mine", {"scale": 3.0})
    assert training.MARLConfig.from_dict(fields, algorithms={"mine": training.Algorithm("mine", update)}) == cfg
    with pytest.raises(ValueError, match=r"algorithm 'mine' is not in `algorithms`"):
        training.MARLConfig.from_dict(fields)
    with pytest.raises(ValueError, match=r"\['temperature'\] are not keyword-only parameters"):
        training.Algorithm("x", update, hyperparameters={"temperature": 1.0})
    with pytest.raises(ValueError, match=r"\['epsilon'\] are MARLConfig fields"):
        training.Algorithm("x", update, hyperparameters={"epsilon": 0.1}).bind(cfg, optax.sgd(0.1))
    old = {k: v for k, v in training.MARLConfig(algorithm="hatrpo").as_dict().items() if k != "truncation"}
    assert training.MARLConfig.from_dict(old).truncation == "as_termination"
    old = {k: v for k, v in old.items() if k not in ("epsilon", "delta")} | {"clip_epsilon": 0.3, "kl_threshold": 0.02}
    assert (training.MARLConfig.from_dict(old).epsilon, training.MARLConfig.from_dict(old).delta) == (0.3, 0.02)
    old = {k: v for k, v in old.items() if k != "normalise_advantages"} | {"normalize_advantages": False}
    assert training.MARLConfig.from_dict(old).normalise_advantages is False
    assert training.MARLConfig(algorithm="hatrpo").truncation == "bootstrap"
    # the library's own check (or, where the type checker of the proofs runs first, the hint's)
    with pytest.raises((ValueError, TypeError), match=r"truncation"):
        training.MARLConfig(truncation="ignore")  # pyright: ignore[reportArgumentType]
