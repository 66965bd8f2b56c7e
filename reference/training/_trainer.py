r"""Notes §4 in practice: MAPPO, HAPPO, HATRPO and HAA2C trained end to end with neural policies.

The shape is purejaxrl's: `make_train(config, env)` returns `train`, and `train(key)` is the whole
loop — rollout by `lax.scan` over `vmap`-ped environments, GAE, critic and per-agent actor updates —
as one function that `jax.jit` compiles once and `jax.vmap` runs over seeds. The algorithmic parts
are the library's own functions: `generalized_advantage_estimate` (A31), `sequential_update` (§D)
and the registered algorithms' agent updates (`ALGORITHMS`), built on `happo_objective`,
`haa2c_objective` and `trpo_update`. This module holds the trainer's state, rollout and updates;
the environments, the config, the networks, checkpoints, sharding and chunked runs have a module
each beside it.
"""

import os
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from .._ppo import generalized_advantage_estimate
from .._sequential import AgentBatch, Policy, minibatch_epochs, sequential_update
from .._types import Array
from ._checkpoints import read_state, write_checkpoint
from ._config import MARLConfig
from ._envs import EnvStep, MultiAgentEnv, as_env_step
from ._networks import (
    action_kinds,
    action_width,
    actor_arrays,
    actor_optimizer,
    critic_optimizer,
    networks,
    policy_of,
)
from ._sharding import env_mesh
from ._state import Metrics, TrainState, Transition


class Trainer:
    """Returned by `make_train`.

    `trainer(key)` trains one seed (`jax.jit(jax.vmap(trainer))` trains
    several); `init`, `step` and `run` give the same loop in chunks (for progress and checkpoints);
    `actions` samples (or, without a key, takes the most likely) actions of the trained actors;
    `save`/`load` write and read a `TrainState` with equinox's serialisation.

    **Examples:**

    ```pycon
    >>> import jax, reference as rf
    >>> from reference import training
    >>> env = training.cooperative_game_env(rf.parameter_sharing_game(2))
    >>> trainer = training.make_train(training.MARLConfig(total_steps=64 * 8 * 2, num_envs=64, num_steps=8), env)
    >>> isinstance(trainer, training.Trainer)
    True
    >>> state = trainer.init(jax.random.key(0))
    >>> state, metrics = jax.jit(trainer.step)(state)  # one iteration
    >>> int(metrics.steps), trainer.actions(state.actor_params, state.obs).shape  # the most likely actions
    (512, (64, 2))
    >>> float(trainer.evaluate(state.actor_params, jax.random.key(1))) > 0.0  # mean return of fresh episodes
    True

    ```
    """

    def __init__(
        self, config: MARLConfig, env: Any, actor_static: tuple[Any, ...], critic_static: Any, shard_envs: bool
    ) -> None:
        self.config, self.env, self.shard_envs = config, env, shard_envs
        self.actor_static, self.critic_static = actor_static, critic_static
        self.algorithm = config.algorithm_spec
        self.kinds = action_kinds(env)  # per agent: True for continuous actions
        self.continuous = any(self.kinds)  # the stored actions are floats `[.., n, D]`
        self.num_actors = 1 if self.algorithm.shared_actor else env.num_agents
        # One Policy object per kind of actor: agents whose networks have the same shapes share it,
        # which lets `sequential_update` gather them by index (`agents_alike`).
        policies: dict[tuple[int, bool], Policy] = {}
        for i in range(self.num_actors):
            kind = (env.action_sizes[i], self.kinds[i])
            if kind not in policies:
                policies[kind] = policy_of(actor_static[i], self.kinds[i])
        self.policies = tuple(policies[env.action_sizes[i], self.kinds[i]] for i in range(self.num_actors))
        self.agent_update, self.uses_optimizer = self.algorithm.bind(config, actor_optimizer(config))

    def __repr__(self) -> str:
        return f"Trainer({self.config!r}, env={type(self.env).__name__}, shard_envs={self.shard_envs})"

    # ---- networks -------------------------------------------------------------------------
    def _actor_index(self, agent: int) -> int:
        return 0 if self.algorithm.shared_actor else agent

    def policy(self, agent: int) -> Policy:
        """Agent `agent`'s `Policy` (`Categorical` or `DiagonalGaussian`), applied to `[B, obs_size]`."""
        return self.policies[self._actor_index(agent)]

    def value_fn(self, critic_params: Any, obs: Array) -> Array:
        """The centralised critic $V(s)$ of `obs [B, n, obs_size]` (the agents' observations joined)."""
        model = eqx.combine(critic_params, self.critic_static)
        return jax.vmap(model)(obs.reshape(obs.shape[0], -1))[:, 0]

    def _act(self, actor_params: tuple[Any, ...], obs: Array, key: Array | None) -> tuple[Array, Array]:
        """Actions (sampled with `key`, the most likely without) and their log-probabilities `[B, n]`."""
        acts, logps = [], []
        for i in range(self.env.num_agents):
            policy = self.policy(i)
            out = policy.apply(actor_params[self._actor_index(i)], obs[:, i])
            a = policy.family.mode(out) if key is None else policy.family.sample(jax.random.fold_in(key, i), out)
            acts.append(a)
            logps.append(policy.family.log_prob(out, a))
        return self._stack_actions(acts), jnp.stack(logps, -1)

    def _stack_actions(self, acts: Sequence[Array]) -> Array:
        if not self.continuous:
            return jnp.stack(acts, -1)
        # Floats `[B, n, D]`: a continuous agent's own dimensions first, a discrete agent's index
        # (exact in float32 below 2**24) in column 0; zeros after.
        dtype = next(a.dtype for a, c in zip(acts, self.kinds, strict=True) if c)
        cols = [a if c else a[:, None].astype(dtype) for a, c in zip(acts, self.kinds, strict=True)]
        width = action_width(self.env.action_sizes, self.kinds)
        return jnp.stack([jnp.pad(a, ((0, 0), (0, width - a.shape[-1]))) for a in cols], 1)

    def _agent_actions(self, acts: Array, agent: int) -> Array:
        if not self.continuous:
            return acts[:, agent]
        if self.kinds[agent]:
            return acts[:, agent, : self.env.action_sizes[agent]]
        return acts[:, agent, 0].astype(jnp.int32)

    def actions(self, actor_params: tuple[Any, ...], obs: Array, key: Array | None = None) -> Array:
        """Actions for `obs [B, n, obs_size]`: sampled with `key`, the most likely (the mean) without.

        `[B, n]` ints if every agent is discrete; else `[B, n, D]` floats as `MultiAgentEnv.step`
        takes them (a continuous agent's dimensions first, a discrete agent's index in column 0).
        """
        return self._act(actor_params, obs, key)[0]

    # ---- the loop -------------------------------------------------------------------------
    def _constrain(self, tree: Any) -> Any:
        if not self.shard_envs:
            return tree
        sharding = NamedSharding(env_mesh(), PartitionSpec("envs"))
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)

    def init(self, key: Array) -> TrainState:
        """A fresh `TrainState`: new networks and optimisers, every environment reset."""
        cfg, env = self.config, self.env
        k_actor, k_critic, k_env, key = jax.random.split(key, 4)
        actor_nets, critic_net = networks(k_actor, k_critic, cfg, env, self.num_actors)
        actors = tuple(actor_arrays(a, self.kinds[i], cfg, env.action_sizes[i]) for i, a in enumerate(actor_nets))
        critic = eqx.partition(critic_net, eqx.is_array)[0]
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_env, cfg.num_envs))
        obs, env_state = self._constrain((obs, env_state))
        optimizer = actor_optimizer(cfg)
        actor_states = tuple(optimizer.init(p) if self.uses_optimizer else None for p in actors)
        critic_state = critic_optimizer(cfg).init(critic)
        return TrainState(
            actors,
            critic,
            actor_states,
            critic_state,
            env_state,
            obs,
            jnp.zeros(cfg.num_envs, obs.dtype),
            key,
            jnp.zeros((), jnp.int32),
        )

    def _env_step(
        self, actor_params: tuple[Any, ...], obs: Array, env_state: Any, ret: Array, key: Array
    ) -> tuple[EnvStep, Array, Array, Array, Array]:
        """Act in every environment (actions sampled) and step it: the rollout's and `evaluate`'s one step.

        Returns the environments' `EnvStep` (reward cast to the returns' dtype), the actions, their
        log-probabilities, the running returns and the returns of the episodes that ended.
        """
        k_act, k_env = jax.random.split(key)
        acts, lp = self._act(actor_params, obs, k_act)
        keys = jax.random.split(k_env, obs.shape[0])
        out = as_env_step(jax.vmap(self.env.step)(keys, env_state, acts))
        out = out._replace(reward=out.reward.astype(ret.dtype))
        ret = ret + out.reward
        done = out.terminated | out.truncated
        return out, acts, lp, jnp.where(done, 0.0, ret), jnp.where(done, ret, 0.0)

    def rollout_step(self, state: TrainState, key: Array) -> tuple[TrainState, Transition]:
        """One step of every environment: the new state and the `Transition`."""
        value = self.value_fn(state.critic_params, state.obs)
        out, acts, lp, ret, finished = self._env_step(
            state.actor_params, state.obs, state.env_state, state.episode_return, key
        )
        final_value = jnp.zeros_like(value)
        if self.config.truncation == "bootstrap":  # V of the final observations, only at a step that truncates

            def truncated_values() -> Array:
                return jnp.where(out.truncated, self.value_fn(state.critic_params, out.final_obs), 0.0)

            final_value = jax.lax.cond(jnp.any(out.truncated), truncated_values, lambda: final_value)
        new = eqx.tree_at(lambda s: (s.env_state, s.obs, s.episode_return), state, (out.state, out.obs, ret))
        transition = Transition(
            state.obs, acts, lp, value, out.reward, out.terminated, out.truncated, final_value, finished
        )
        return new, transition

    def step(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """One iteration: `num_steps` steps of every environment, GAE, the critic's and the actors' updates."""
        cfg = self.config
        key, k_roll, k_update = jax.random.split(state.key, 3)
        state = eqx.tree_at(lambda s: (s.env_state, s.obs), state, self._constrain((state.env_state, state.obs)))
        state, traj = jax.lax.scan(self.rollout_step, state, jax.random.split(k_roll, cfg.num_steps))
        last_value = self.value_fn(state.critic_params, state.obs)
        advantages, targets = self.advantages_and_targets(
            traj.reward, traj.value, last_value, traj.terminated, traj.truncated, traj.final_value
        )

        B = cfg.steps_per_iteration
        flat = lambda x: x.reshape(B, *x.shape[2:])
        columns = (traj.obs, traj.actions, traj.log_probs, advantages, targets)
        obs, acts, old_lp, advantages, targets = map(flat, columns)
        if cfg.normalise_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        k_critic, k_actor = jax.random.split(k_update)
        critic, critic_state = self._update_critic(k_critic, state.critic_params, state.critic_opt_state, obs, targets)
        actors, actor_states = self.update_actors(
            k_actor, state.actor_params, state.actor_opt_states, obs, acts, old_lp, advantages
        )
        steps = state.steps + B
        count = jnp.sum(traj.done)
        mean_return = jnp.where(count > 0, jnp.sum(traj.finished_return) / jnp.maximum(count, 1), jnp.nan)
        state = TrainState(
            actors, critic, actor_states, critic_state, state.env_state, state.obs, state.episode_return, key, steps
        )
        return state, Metrics(steps, mean_return, count)

    def advantages_and_targets(
        self,
        rewards: Array,
        values: Array,
        last_value: Array,
        terminated: Array,
        truncated: Array,
        final_values: Array,
    ) -> tuple[Array, Array]:
        r"""GAE($\gamma, \lambda$) per environment and the critic's λ-return targets $\hat A_t + V(s_t)$.

        `rewards`, `values`, `terminated`, `truncated`, `final_values`: `[T, E]` (time-major, as
        a rollout stacks them); `last_value`: `[E]`, $V$ of the states after the last step. With
        the config's `gamma` and `gae_lambda` (`generalized_advantage_estimate`, A31), an episode's
        end stops the recursion; a truncated step under `truncation="bootstrap"` has the TD error
        $\delta_t = r_t + \gamma V(s^{\text{final}}_{t+1}) - V(s_t)$ (`final_values`), under
        `"as_termination"` $\delta_t = r_t - V(s_t)$:

        $$\hat A_t = \delta_t + \gamma\lambda(1-d_t)\hat A_{t+1},\qquad
          \delta_t = r_t + \gamma\big[(1-d_t)V(s_{t+1}) + u_t V(s^{\text{final}}_{t+1})\big] - V(s_t)$$

        with $d_t$ the episode's end (terminated or truncated) and $u_t$ its truncation (0 under
        `"as_termination"`). It is computed as GAE with the ends $d_t$ on the rewards
        $r_t + \gamma u_t V(s^{\text{final}}_{t+1})$.
        """
        cfg = self.config
        ends = terminated | truncated
        if cfg.truncation == "bootstrap":
            rewards = rewards + cfg.gamma * jnp.where(truncated, final_values, 0.0)
        all_values = jnp.concatenate([values, last_value[None]], 0)
        gae = jax.vmap(generalized_advantage_estimate, in_axes=(1, 1, 1, None, None), out_axes=1)
        advantages = gae(rewards, all_values, ends, cfg.gamma, cfg.gae_lambda)
        return advantages, advantages + values

    def run(self, state: TrainState, num_iterations: int) -> tuple[TrainState, Metrics]:
        """`num_iterations` iterations by `lax.scan`; metrics stacked over iterations."""
        return jax.lax.scan(lambda s, _: self.step(s), state, None, length=num_iterations)

    def __call__(self, key: Array) -> tuple[TrainState, Metrics]:
        """Train one seed for `config.num_iterations` iterations (jit it, vmap it over keys)."""
        return self.run(self.init(key), self.config.num_iterations)

    # ---- updates --------------------------------------------------------------------------
    def _update_critic(self, key: Array, params: Any, opt_state: Any, obs: Array, targets: Array) -> tuple[Any, Any]:
        cfg = self.config

        def loss(p: Any, idx: Array) -> Array:
            return 0.5 * jnp.mean((self.value_fn(p, obs[idx]) - targets[idx]) ** 2)

        return minibatch_epochs(
            key,
            params,
            opt_state,
            loss,
            critic_optimizer(cfg),
            batch_size=cfg.steps_per_iteration,
            num_epochs=cfg.critic_epochs,
            num_minibatches=cfg.num_minibatches,
        )

    def update_actors(
        self,
        key: Array,
        params: tuple[Any, ...],
        opt_states: tuple[Any, ...],
        obs: Array,
        acts: Array,
        old_lp: Array,
        advantages: Array,
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The actors' update on a flat batch: `sequential_update`, or one pooled update of a shared actor.

        `obs [B, n, obs_size]`, `acts` (`[B, n]` or `[B, n, D]`), `old_lp [B, n]`, `advantages [B]`.
        """
        n = self.env.num_agents
        batches = [AgentBatch(obs[:, i], self._agent_actions(acts, i), old_lp[:, i]) for i in range(n)]
        if self.algorithm.shared_actor:
            # Parameter sharing: the n agents' samples are one batch of n·B for the one actor.
            pooled = jax.tree.map(lambda *xs: jnp.concatenate(xs), *batches)
            factor = jnp.tile(advantages, n)
            p, s = self.agent_update(key, self.policies[0], params[0], opt_states[0], pooled, factor)
            return (p,), (s,)
        alike = all(p is self.policies[0] for p in self.policies)
        return sequential_update(
            key, self.agent_update, self.policies, params, opt_states, batches, advantages, agents_alike=alike
        )

    def evaluate(self, actor_params: tuple[Any, ...], key: Array, num_steps: int | None = None) -> Array:
        """Mean team return of the episodes played by the actors (no learning).

        The episodes are those that end within `num_steps` (default `config.num_steps`) steps of
        `config.num_envs` freshly reset environments, actions sampled from the actors.
        """
        env, E = self.env, self.config.num_envs
        k_reset, k_run = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_reset, E))

        def body(carry: tuple[Any, ...], k: Array) -> tuple[tuple[Any, ...], None]:
            obs, env_state, ret, total, count = carry
            out, _, _, ret, finished = self._env_step(actor_params, obs, env_state, ret, k)
            ended = jnp.sum(out.terminated | out.truncated).astype(count.dtype)
            return (out.obs, out.state, ret, total + jnp.sum(finished), count + ended), None

        zero = jnp.zeros((), obs.dtype)
        carry = (obs, env_state, jnp.zeros(E, obs.dtype), zero, jnp.zeros((), jnp.int32))
        steps = self.config.num_steps if num_steps is None else num_steps
        (_, _, _, total, count), _ = jax.lax.scan(body, carry, jax.random.split(k_run, steps))
        return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)

    # ---- checkpoints ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], state: TrainState, **metadata: Any) -> None:
        """Write `state` (one seed or a stack of seeds) to `path`, atomically, with its configuration.

        The file holds a header (the `MARLConfig`, the number of seeds, the environment steps done,
        any JSON-able `metadata` such as the environment's name) and the state's arrays
        (`equinox.tree_serialise_leaves`) with their length and SHA-256, so that `load` can refuse
        a truncated or foreign file with one clear line. It is written to a temporary file in the
        same folder and renamed over `path`, so an interrupted save never leaves a broken file.
        """
        write_checkpoint(path, state, self.config, metadata)

    def load(self, path: str | os.PathLike[str], num_seeds: int | None = None) -> TrainState:
        """Read a state written by `save`; raise `CheckpointError` (one line) if it cannot be used.

        The file's configuration must equal this trainer's (the error names the fields that
        differ); `num_seeds`, if given, must equal the number of seeds it was saved with.
        """
        return read_state(path, self.config, self.init, num_seeds)


def make_train(config: MARLConfig, env: MultiAgentEnv) -> Trainer:
    r"""Build multi-agent actor-critic training of `env` as one jit-able function (purejaxrl's shape).

    `train = make_train(config, env)`; `train(key)` runs `config.num_iterations` iterations of:
    a rollout of `num_steps` steps of `num_envs` environments (`lax.scan` over `vmap`), GAE
    (`generalized_advantage_estimate`, A31) with the centralised critic $V(o^1,\dots,o^n)$,
    `critic_epochs` epochs of Adam on $\tfrac12(V-\hat R)^2$, then the actors:

    $$\hat A_t = \sum_{l\ge0}(\gamma\lambda)^l\delta_{t+l},\quad
      \delta_t = r_t + \gamma(1-d_t)V(s_{t+1}) - V(s_t),\quad \hat R_t = \hat A_t + V(s_t)$$

    (the sum stops at an episode's end $d_t$; a truncated step, with `truncation="bootstrap"`,
    has $\delta_t = r_t + \gamma V(s^{\text{final}}_{t+1}) - V(s_t)$: `advantages_and_targets`),

    - a shared-actor algorithm (MAPPO, A36): one update of the one actor on the pooled batch;
    - a heterogeneous-agent one (HAPPO A51, HATRPO A45–A50, HAA2C A51a): `sequential_update` —
      a random order, each agent's update on the factor $M$, $M$ multiplied by its new/old ratio.

    The algorithm is `config.algorithm` (a name in `ALGORITHMS`, or an `Algorithm`). Actions are
    discrete (`Categorical` actors, logits from an MLP) or, if `env.continuous_actions`,
    continuous (`DiagonalGaussian` actors: an MLP's mean and a state-independent log-std); with
    one bool per agent in `env.continuous_actions`, each agent gets its own kind.
    Advantages are standardised over the batch (the authors' code) unless
    `normalise_advantages=False`.

    It returns the final `TrainState` and per-iteration `Metrics`. `jax.jit(jax.vmap(train))(keys)`
    trains several seeds in one call. With several devices the environment batch is sharded
    over them (`jax.sharding`, axis `"envs"`) when `num_envs` is a multiple of the device count;
    otherwise it runs unsharded (`Trainer.shard_envs` says which). Under `jax.distributed`
    (several processes, on one host or many) the devices are every process's: each process
    steps its share of the environments, the losses' means over the batch are the mesh's
    reductions, and `num_envs` must be a multiple of the global device count.

    **Arguments:** `config`: a `MARLConfig`; `env`: a `MultiAgentEnv` (`simple_spread_env()`,
    `cooperative_game_env(game)`, `mabrax_env(...)`).

    **Returns:** a `Trainer` (callable; also `init`, `step`, `run`, `actions`, `save`, `load`).
    Tested in `proofs_as_tests/test_marl_training.py` and `proofs_as_tests/test_training.py`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> from reference import training
    >>> env = training.cooperative_game_env(rf.parameter_sharing_game(2))
    >>> config = training.MARLConfig(algorithm="happo", total_steps=2 * 64 * 8, num_envs=64, num_steps=8)
    >>> state, metrics = jax.jit(training.make_train(config, env))(jax.random.key(0))
    >>> metrics.episode_return.shape  # one mean return per iteration
    (2,)

    ```
    """
    where = "make_train"
    if not isinstance(config, MARLConfig):
        raise TypeError(f"{where}: `config` must be a MARLConfig, but is {type(config).__name__}.")
    for attr in ("num_agents", "obs_size", "action_sizes", "reset", "step"):
        if not hasattr(env, attr):
            raise TypeError(f"{where}: `env` must implement MultiAgentEnv, but has no `{attr}`.")
    sizes = tuple(env.action_sizes)
    if len(sizes) != env.num_agents:
        raise ValueError(f"{where}: `env.action_sizes` must have one entry per agent ({env.num_agents}).")
    kinds = getattr(env, "continuous_actions", False)
    if not isinstance(kinds, bool | int) and len(tuple(kinds)) != env.num_agents:
        raise ValueError(
            f"{where}: `env.continuous_actions` must be one bool or one per agent ({env.num_agents}), "
            f"but has {len(tuple(kinds))} entries."
        )
    algorithm = config.algorithm_spec
    agent_kinds = action_kinds(env)
    if algorithm.shared_actor and len(set(zip(sizes, agent_kinds, strict=True))) != 1:
        raise ValueError(
            f"{where}: {algorithm.name!r} shares one actor, so every agent needs the same kind and size of "
            f"action: sizes {sizes}, continuous {agent_kinds}."
        )
    devices = jax.device_count()
    if jax.process_count() > 1 and config.num_envs % devices:
        raise ValueError(
            f"{where}: with {jax.process_count()} processes `config.num_envs` ({config.num_envs}) must be a "
            f"multiple of the {devices} devices across them, so that each process steps its share."
        )
    shard = devices > 1 and config.num_envs % devices == 0
    key = jax.random.key(0)  # only the static parts (structure, activations) are kept
    count = 1 if algorithm.shared_actor else env.num_agents
    actor_nets, critic_net = networks(key, key, config, env, count)
    actors = tuple(eqx.partition(a, eqx.is_array)[1] for a in actor_nets)
    return Trainer(config, env, actors, eqx.partition(critic_net, eqx.is_array)[1], shard)
