"""The trainer's plumbing, proved from outside: what it stores, in which order it updates the
agents, what factor it hands them, and what a time limit is to its targets.

Each proof watches the trainer through what it cannot fake: an environment whose observation
encodes the step and whose reward depends on the (observation, action) pairing, and an agent
update that reports, by an ordered `jax.debug.callback`, which agent it was handed, the samples and
the factor. The expected values are computed here, from the environment's rules and the critic's
parameters, not by the trainer's code.
"""

from collections import Counter
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import reference as rf
from reference import training

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
standard_promotion = jax.numpy_dtype_promotion("standard")  # optax's Adam mixes int32 counts with floats


class ClockEnv(eqx.Module):
    """Two agents, two actions each; the observation is the one-hot step `t` of the episode
    (`length` steps, then a truncation) and the team reward is the number of agents whose action
    equals `t mod 2`."""

    length: int = eqx.field(static=True)
    num_agents: int = eqx.field(static=True)
    action_sizes: tuple[int, ...] = eqx.field(static=True)
    obs_size: int = eqx.field(static=True)  # length + 1: t = 0 … length (the last only ever a final observation)

    def __init__(self, length: int, num_agents: int = 2):
        self.length, self.num_agents = length, num_agents
        self.action_sizes, self.obs_size = (2,) * num_agents, length + 1

    def _obs(self, t: jax.Array) -> jax.Array:
        return jnp.broadcast_to(jax.nn.one_hot(t, self.obs_size), (self.num_agents, self.obs_size))

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        return self._obs(jnp.zeros((), jnp.int32)), jnp.zeros((), jnp.int32)

    def step(self, key: jax.Array, state: Any, actions: jax.Array) -> training.EnvStep:
        t = state
        reward = jnp.sum(actions == (t % 2).astype(actions.dtype)).astype(jnp.float32)
        reached = t + 1
        cut = reached >= self.length
        nxt = jnp.where(cut, 0, reached)
        return training.EnvStep(self._obs(nxt), nxt, reward, jnp.asarray(False), cut, self._obs(reached))


def _decode(obs: np.ndarray) -> np.ndarray:
    return np.argmax(obs, axis=-1)


@pytest.mark.parametrize("truncation", ["bootstrap", "as_termination"])
def test_rollout_stores_each_observation_with_the_action_taken_in_it(truncation):
    """A rollout's `Transition`: `obs[t]` is the observation the actions of step t were chosen
    in (it encodes t), the reward is the one the environment gives that (observation, action)
    pairing, `log_probs` are the actions' under the actors at `obs[t]`, the time limit is a
    truncation (never a termination), and `final_value` is V of the observation the truncated
    step reached (t = length, never seen by the actors) under "bootstrap", 0 otherwise."""
    length, T, E = 3, 7, 16
    env = ClockEnv(length)
    cfg = training.MARLConfig(total_steps=E * T, num_envs=E, num_steps=T, truncation=truncation)
    trainer = training.make_train(cfg, env)
    state = trainer.init(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), T)
    _, traj = jax.jit(lambda s: jax.lax.scan(trainer.rollout_step, s, keys))(state)
    t = np.arange(T)[:, None] % length  # every environment starts at t = 0
    obs, acts = np.asarray(traj.obs), np.asarray(traj.actions)
    np.testing.assert_array_equal(_decode(obs[:, :, 0]), np.broadcast_to(t, (T, E)))
    np.testing.assert_array_equal(np.asarray(traj.reward), np.sum(acts == (t % 2)[..., None], axis=-1))
    for i in range(env.num_agents):
        out = trainer.policy(i).apply(state.actor_params[i], jnp.asarray(obs[:, :, i].reshape(T * E, -1)))
        logp = trainer.policy(i).family.log_prob(out, jnp.asarray(acts[:, :, i].reshape(T * E)))
        np.testing.assert_allclose(np.asarray(traj.log_probs)[:, :, i], np.asarray(logp).reshape(T, E), rtol=1e-6)
    cut = np.broadcast_to((np.arange(T)[:, None] + 1) % length == 0, (T, E))
    np.testing.assert_array_equal(np.asarray(traj.truncated), cut)
    assert not np.asarray(traj.terminated).any()
    v_final = trainer.value_fn(state.critic_params, env._obs(jnp.asarray(length))[None])[0]
    expected = np.where(cut, float(v_final), 0.0) if truncation == "bootstrap" else np.zeros((T, E))
    np.testing.assert_allclose(np.asarray(traj.final_value), expected, rtol=1e-6)


def _recording_algorithm(calls: list[dict[str, np.ndarray]]) -> training.Algorithm:
    """A heterogeneous-agent algorithm whose update changes nothing and reports (in call order)
    the agent's parameters' fingerprint, its samples and the factor it was handed."""

    def record(fingerprint, obs, actions, factor):
        calls.append({"agent": np.asarray(fingerprint), "obs": obs, "actions": actions, "factor": factor})

    def report(key, policy, params, opt_state, batch, factor):
        fingerprint = jnp.sum(params.layers[0].weight)  # the agents' initial weights differ; never updated
        jax.debug.callback(record, fingerprint, batch.observations, batch.actions, factor, ordered=True)
        return params, opt_state

    return training.Algorithm("recorder", report)


def _agent_of(fingerprint: np.ndarray, params: tuple[Any, ...]) -> int:
    prints = [float(jnp.sum(p.layers[0].weight)) for p in params]
    return int(np.argmin([abs(float(fingerprint) - f) for f in prints]))


@standard_promotion
def test_the_agents_order_is_drawn_anew_every_iteration():
    """Three heterogeneous agents, 180 iterations: the order in which the trainer hands them to
    their updates is a permutation in every iteration, and each of the 3! = 6 orders appears
    180/6 = 30 times within ±17 (over 4 standard deviations of Binomial(180, 1/6), σ = 5.0: a
    correct trainer fails this with probability < 1e-3; one that reuses an order, or fixes it,
    fails surely)."""
    calls: list[dict[str, np.ndarray]] = []
    env = ClockEnv(2, num_agents=3)
    iterations = 180
    recorder = _recording_algorithm(calls)
    cfg = training.MARLConfig(algorithm=recorder, total_steps=8 * 2 * iterations, num_envs=8, num_steps=2)
    trainer = training.make_train(cfg, env)
    state = trainer.init(jax.random.key(0))
    final, _ = jax.jit(trainer.run, static_argnums=1)(state, iterations)
    jax.effects_barrier()
    assert len(calls) == 3 * iterations
    agents = [_agent_of(c["agent"], final.actor_params) for c in calls]
    orders = [tuple(agents[3 * k : 3 * k + 3]) for k in range(iterations)]
    assert all(sorted(o) == [0, 1, 2] for o in orders), orders[:5]
    counts = Counter(orders)
    assert len(counts) == 6, counts
    assert all(abs(c - 30) <= 17 for c in counts.values()), counts


@standard_promotion
@pytest.mark.parametrize("normalise", [True, False])
def test_the_first_agent_is_handed_the_standardised_advantages(normalise):
    """The factor of the first agent in the order is the advantage estimate Â_t = r_t − V(s_t)
    of the one-shot game (every step ends the episode), standardised over the batch,
    (Â − mean Â)/(std Â + 1e-8) with the population std, when `normalise_advantages` (else Â
    itself). r_t is recomputed here from the game's rule (1 if all agents chose action 1 or all
    chose action 0 … as `parameter_sharing_game` defines it, via its reward table) on the joint
    actions the agents were handed, and V from the critic's parameters before the iteration."""
    calls: list[dict[str, np.ndarray]] = []
    n = 2
    game = rf.parameter_sharing_game(n)
    env = training.cooperative_game_env(game, episode_length=1)
    cfg = training.MARLConfig(
        algorithm=_recording_algorithm(calls),
        total_steps=32 * 4,
        num_envs=32,
        num_steps=4,
        normalise_advantages=normalise,
    )
    trainer = training.make_train(cfg, env)
    state = trainer.init(jax.random.key(3))
    jax.jit(trainer.step)(state)
    jax.effects_barrier()
    assert len(calls) == n
    by_agent = {_agent_of(c["agent"], state.actor_params): c for c in calls}
    first = calls[0]
    joint = np.stack([by_agent[i]["actions"] for i in range(n)], -1)  # [B, n]
    R = np.asarray(game.R).reshape((game.num_states, *game.action_sizes))
    rewards = R[(np.zeros(len(joint), int), *joint.T)]
    joint_obs = jnp.asarray(np.stack([by_agent[i]["obs"] for i in range(n)], 1))
    v = np.asarray(trainer.value_fn(state.critic_params, joint_obs))
    advantages = rewards - v
    if normalise:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    np.testing.assert_allclose(first["factor"], advantages, rtol=1e-5, atol=1e-6)


class RecordingClock(ClockEnv):
    """`ClockEnv` (one agent) that reports each step it is asked to take — (its global step
    count, t, the action, the reward) — through `jax.debug.callback`: what the trainer did, seen
    from the environment."""

    def __init__(self, length: int):
        super().__init__(length, num_agents=1)

    def reset(self, key):
        obs, t = super().reset(key)
        return obs, (t, jnp.zeros((), jnp.int32))

    def step(self, key, state, actions):
        t, count = state
        out = super().step(key, t, actions)
        jax.debug.callback(_record_step, count, t, actions[0], out.reward)
        return out._replace(state=(out.state, count + 1))


_STEPS: list[tuple[int, int, int, float]] = []


def _record_step(count, t, action, reward):
    _STEPS.append((int(count), int(t), int(action), float(reward)))


@standard_promotion
def test_one_agent_happo_is_the_ppo_iteration_written_here():
    """With one agent, an iteration of HAPPO is PPO's: from the steps the environment saw (its own
    record), this test computes V with the critic's parameters, GAE(γ, λ) with the truncation
    bootstrapped from V of the final observation, the standardised advantages, the old
    log-probabilities, and `num_epochs` full-batch steps of clipped Adam on
    −[mean min(rÂ, clip(r, 1 ± ε)Â) + c_H · mean entropy], all written out below; the trainer's new
    actor equals it."""
    _STEPS.clear()
    length, T = 4, 11
    env = RecordingClock(length)
    cfg = training.MARLConfig(algorithm="happo", total_steps=T, num_envs=1, num_steps=T, num_epochs=3)
    trainer = training.make_train(cfg, env)
    state = trainer.init(jax.random.key(0))
    new, _ = jax.jit(trainer.step)(state)
    jax.effects_barrier()
    steps = sorted(_STEPS)
    assert [c for c, *_ in steps] == list(range(T))
    t = np.asarray([s[1] for s in steps])
    actions = np.asarray([s[2] for s in steps])
    rewards = np.asarray([s[3] for s in steps])
    np.testing.assert_array_equal(t, np.arange(T) % length)
    np.testing.assert_array_equal(rewards, (actions == t % 2).astype(float))

    critic = eqx.combine(state.critic_params, trainer.critic_static)
    onehot = lambda ts: np.eye(length + 1)[ts]
    V = lambda ts: np.asarray(jax.vmap(critic)(jnp.asarray(onehot(ts))))[:, 0]
    values, after = V(t), V(np.asarray([T % length]))[0]
    cut = (t + 1) == length
    final = V(np.asarray([length]))[0]
    adv, carry = np.zeros(T), 0.0
    for i in reversed(range(T)):
        following = after if i == T - 1 else values[i + 1]
        target = final if cut[i] else following
        delta = rewards[i] + cfg.gamma * target - values[i]
        carry = delta + (0.0 if cut[i] else cfg.gamma * cfg.gae_lambda * carry)
        adv[i] = carry
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    obs, acts = jnp.asarray(onehot(t)), jnp.asarray(actions)

    def log_softmax(params):
        return jax.nn.log_softmax(jax.vmap(eqx.combine(params, trainer.actor_static[0]))(obs))

    old = log_softmax(state.actor_params[0])[jnp.arange(T), acts]

    def loss(params):
        logp = log_softmax(params)
        r = jnp.exp(logp[jnp.arange(T), acts] - old)
        clipped = jnp.minimum(r * adv, jnp.clip(r, 1 - cfg.epsilon, 1 + cfg.epsilon) * adv)
        entropy = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
        return -(jnp.mean(clipped) + cfg.entropy_coef * jnp.mean(entropy))

    adam = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.actor_lr, eps=1e-5))
    params, opt = state.actor_params[0], adam.init(state.actor_params[0])
    for _ in range(cfg.num_epochs):
        updates, opt = adam.update(jax.grad(loss)(params), opt, params)
        params = optax.apply_updates(params, updates)
    for mine, theirs in zip(jax.tree.leaves(params), jax.tree.leaves(new.actor_params[0]), strict=True):
        np.testing.assert_allclose(theirs, mine, rtol=1e-9, atol=1e-12)
    start = jax.tree.leaves(state.actor_params[0])
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(params), start, strict=True)) > 1e-4
