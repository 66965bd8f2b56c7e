r"""Notes §4 in practice: MAPPO, HAPPO, HATRPO and HAA2C trained end to end with neural policies.

The shape is purejaxrl's: `make_train(config, env)` returns `train`, and `train(key)` is the whole
loop — rollout by `lax.scan` over `vmap`-ped environments, GAE, critic and per-agent actor updates —
as one function that `jax.jit` compiles once and `jax.vmap` runs over seeds. The algorithmic parts
are the library's own functions: `generalized_advantage_estimate` (A31), `sequential_update` (§D)
and the registered algorithms' agent updates (`ALGORITHMS`), built on `happo_objective`,
`haa2c_objective` and `trpo_update`.

Environments are anything with the small array interface of `MultiAgentEnv`: JaxMARL's
cooperative navigation (`simple_spread_env`, needs the `marl` extra) and any finite
`CooperativeGame` (`cooperative_game_env`, e.g. Proposition 1's `parameter_sharing_game`).
"""

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

from .._checks import TRACED, check_positive_int
from .._markov_game import CooperativeGame
from .._ppo import generalized_advantage_estimate
from .._sequential import AgentBatch, Categorical, DiagonalGaussian, Policy, minibatch_epochs, sequential_update
from ._algorithms import ALGORITHMS, Algorithm

Array = jax.Array


@runtime_checkable
class MultiAgentEnv(Protocol):
    """The array interface `make_train` trains on (one environment; `make_train` `vmap`s it).

    - `num_agents`, `obs_size` (every agent's observation is a vector of that size; agents
      whose observations are shorter are zero-padded, which changes no network's function:
      the padded inputs meet weights whose gradient is zero) and `action_sizes` (per agent, the
      number of discrete actions, or the dimension of continuous ones);
    - optionally `continuous_actions` (default `False`): `True` if every agent's actions are real
      vectors, or one bool per agent when the kinds differ (a discrete agent beside continuous ones);
    - `reset(key) -> (obs [n, obs_size], state)`;
    - `step(key, state, actions) -> (obs, state, team_reward [], done [])`, `actions` `[n]` ints
      if every agent is discrete, else `[n, D]` floats (`D` the largest continuous action size, or
      1): a continuous agent's own dimensions first, a discrete agent's action index in column 0,
      zeros after; resetting by itself when `done` (the returned `obs` is then the new episode's
      first observation).
    """

    num_agents: int
    obs_size: int
    action_sizes: tuple[int, ...]

    def reset(self, key: Array) -> tuple[Array, Any]: ...

    def step(self, key: Array, state: Any, actions: Array) -> tuple[Array, Any, Array, Array]: ...


class JaxMARLEnv(eqx.Module):
    """A JaxMARL environment behind the `MultiAgentEnv` interface.

    The team reward is the sum of the agents' rewards (for MABrax, each agent's reward is already
    the team's, so their mean); shorter observations are zero-padded to `obs_size`.
    """

    env: Any = eqx.field(static=True)
    num_agents: int = eqx.field(static=True)
    obs_size: int = eqx.field(static=True)
    action_sizes: tuple[int, ...] = eqx.field(static=True)
    continuous_actions: bool = eqx.field(static=True, default=False)
    shared_reward: bool = eqx.field(static=True, default=False)

    def _obs(self, obs: dict[str, Array]) -> Array:
        rows = [obs[a] for a in self.env.agents]
        return jnp.stack([jnp.pad(o, (0, self.obs_size - o.shape[-1])) for o in rows])

    def reset(self, key: Array) -> tuple[Array, Any]:
        obs, state = self.env.reset(key)
        return self._obs(obs), state

    def step(self, key: Array, state: Any, actions: Array) -> tuple[Array, Any, Array, Array]:
        if self.continuous_actions:
            acts = {a: actions[i, : self.action_sizes[i]] for i, a in enumerate(self.env.agents)}
        else:
            acts = {a: actions[i] for i, a in enumerate(self.env.agents)}
        obs, state, rewards, dones, _ = self.env.step(key, state, acts)
        reward = sum(rewards[a] for a in self.env.agents)
        if self.shared_reward:
            reward = reward / self.num_agents
        return self._obs(obs), state, jnp.asarray(reward), dones["__all__"]


def _wrap_jaxmarl(env: Any, shared_reward: bool = False) -> JaxMARLEnv:
    obs_spaces: list[Any] = [env.observation_space(a) for a in env.agents]
    act_spaces: list[Any] = [env.action_space(a) for a in env.agents]
    obs_size = max(int(space.shape[0]) for space in obs_spaces)
    continuous = not hasattr(act_spaces[0], "n")
    sizes = tuple(int(space.shape[0]) if continuous else int(space.n) for space in act_spaces)
    return JaxMARLEnv(env, len(env.agents), obs_size, sizes, continuous, shared_reward)


def simple_spread_env(num_agents: int = 3, episode_length: int = 25) -> JaxMARLEnv:
    r"""MPE cooperative navigation (`MPE_simple_spread_v3`, JaxMARL) with `episode_length`-step episodes.

    $n$ agents, $n$ landmarks, 5 discrete actions, observations of $4 + 4(n-1) + 2n$ numbers (18
    for $n=3$); the team reward is the sum of the agents' rewards,

    $$r_t = \sum_{i=1}^n\Big(\tfrac12\,g_t + \tfrac12\,c^i_t\Big),\qquad
      g_t = -\sum_{l=1}^n\min_i\lVert x^i_t - y^l\rVert,\qquad c^i_t = -\#\{\text{collisions of } i\}$$

    (JaxMARL's `local_ratio = 0.5`). The task the notes' practical algorithms (Notes A36, A51) are
    measured on in Kuba et al. (2022) and Yu et al. (2021). JaxMARL ends an episode one step
    after `max_steps`, so `max_steps = episode_length − 1`: 25-step episodes compare with the
    published MPE results. Needs the `marl` extra (`pip install -e ".[marl]"`).
    """
    where = "simple_spread_env"
    check_positive_int(num_agents, "num_agents", where, 1)
    check_positive_int(episode_length, "episode_length", where, 1)
    try:
        import jaxmarl
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError(f'{where} needs JaxMARL: install the `marl` extra, `pip install -e ".[marl]"`.') from err
    env = jaxmarl.make(
        "MPE_simple_spread_v3", num_agents=num_agents, num_landmarks=num_agents, max_steps=episode_length - 1
    )
    return _wrap_jaxmarl(env)


def mabrax_env(scenario: str = "halfcheetah_6x1", episode_length: int = 1000) -> JaxMARLEnv:
    r"""Multi-agent MuJoCo on brax (JaxMARL's MABrax): each agent drives some of a robot's joints.

    The continuous-control task of the HATRPO/HAPPO paper (Kuba et al. 2022, multi-agent MuJoCo):
    `halfcheetah_6x1` splits HalfCheetah's 6 joints among 6 agents (one 1-D action each,
    observations of 8–9 numbers: each agent sees its own joints and their neighbours'); `ant_4x2`,
    `hopper_3x1`, `walker2d_2x3`, `humanoid_9|8` are JaxMARL's other splits. Agents differ: each
    has its own body part and observation. Every agent is rewarded with the robot's forward-motion
    reward; the team reward here is that reward (the mean of the agents' equal rewards):

    $$r_t = \frac{x_{t+1}-x_t}{\Delta t} - c\,\lVert\mathbf a_t\rVert^2\ (+\ \text{healthy bonus})$$

    Episodes last `episode_length` steps (1,000 in the paper). Needs the `mabrax` extra
    (`pip install -e ".[mabrax]"`: JaxMARL and brax).
    """
    where = "mabrax_env"
    check_positive_int(episode_length, "episode_length", where, 1)
    try:
        import jaxmarl
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError(f'{where} needs JaxMARL and brax: `pip install -e ".[mabrax]"`.') from err
    try:
        env = jaxmarl.make(scenario, episode_length=episode_length)
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError(f'{where} needs brax: `pip install -e ".[mabrax]"` ({err}).') from err
    except ValueError as err:
        raise ValueError(f"{where}: `scenario` {scenario!r} is not a MABrax scenario of JaxMARL ({err}).") from None
    return _wrap_jaxmarl(env, shared_reward=True)


def smax_env(scenario: str = "2s3z") -> JaxMARLEnv:
    r"""StarCraft multi-agent challenge on JAX (JaxMARL's SMAX) against its heuristic enemy.

    The discrete-action benchmark of the HATRPO/HAPPO paper (SMAC): `2s3z` sets 2 Stalkers and 3
    Zealots (ranged and melee units: agents that differ in what their actions do) against the same
    force; each agent sees 127 numbers and chooses among 10 actions (moves, stop, attack an enemy).
    Every agent receives the team's reward (damage dealt, a bonus for a win); the team reward here
    is that reward,

    $$r_t = \frac1n\sum_{i=1}^n r^i_t,\qquad r^i_t = r_t\ \text{for every agent}$$

    Episodes end when a side is destroyed or after 100 steps. Needs the `marl` extra. Actions the
    game does not allow at a step (attacking an enemy out of range) do nothing: no action mask is
    applied.
    """
    where = "smax_env"
    try:
        import jaxmarl
        from jaxmarl.environments.smax import map_name_to_scenario
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError(f'{where} needs JaxMARL: install the `marl` extra, `pip install -e ".[marl]"`.') from err
    try:
        scenario_spec = map_name_to_scenario(scenario)
    except (KeyError, ValueError):
        raise ValueError(f"{where}: `scenario` {scenario!r} is not an SMAX map of JaxMARL (e.g. '2s3z').") from None
    return _wrap_jaxmarl(jaxmarl.make("HeuristicEnemySMAX", scenario=scenario_spec), shared_reward=True)


class CooperativeGameEnv(eqx.Module):
    """A finite `CooperativeGame` as an environment.

    Every agent observes the one-hot state (the same observation, no agent id), the team reward is
    `R[s, a]`, episodes last `episode_length` steps.
    """

    P: Array
    R: Array
    rho0: Array
    episode_length: int = eqx.field(static=True)
    num_agents: int = eqx.field(static=True)
    obs_size: int = eqx.field(static=True)
    action_sizes: tuple[int, ...] = eqx.field(static=True)

    def _obs(self, s: Array) -> Array:
        return jnp.broadcast_to(jax.nn.one_hot(s, self.obs_size), (self.num_agents, self.obs_size))

    def reset(self, key: Array) -> tuple[Array, Any]:
        s = jax.random.categorical(key, jnp.log(self.rho0))
        return self._obs(s), (s, jnp.zeros((), jnp.int32))

    def step(self, key: Array, state: Any, actions: Array) -> tuple[Array, Any, Array, Array]:
        s, t = state
        k_next, k_reset = jax.random.split(key)
        joint = (s, *(actions[i] for i in range(self.num_agents)))
        reward = self.R[joint]
        nxt = jax.random.categorical(k_next, jnp.log(self.P[joint]))
        done = t + 1 >= self.episode_length
        nxt = jnp.where(done, jax.random.categorical(k_reset, jnp.log(self.rho0)), nxt)
        t = jnp.where(done, 0, t + 1)
        return self._obs(nxt), (nxt, t), reward, done


def cooperative_game_env(game: CooperativeGame, episode_length: int = 1) -> CooperativeGameEnv:
    r"""A finite cooperative game (§4) as a `MultiAgentEnv`, for deep MARL on a game whose optimum is known.

    $$o^i_t = e_{s_t}\ \text{(every agent)},\qquad r_t = R(s_t,\mathbf a_t),\qquad
      s_{t+1}\sim P(\cdot|s_t,\mathbf a_t),\ \ s_0\sim\rho_0$$

    (Notes A20: the cooperative Markov game of §4). Every agent sees the same one-hot state, so a
    shared policy cannot tell the agents apart (Notes A37); with `episode_length = 1` and Proposition 1's
    `parameter_sharing_game` the return of an episode is $r(\mathbf a)$, whose optimum is 1 and whose
    best shared policy gets $2/2^n$.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> from reference import training
    >>> env = training.cooperative_game_env(rf.parameter_sharing_game(2))
    >>> obs, state = env.reset(jax.random.key(0))
    >>> obs.shape, env.action_sizes
    ((2, 1), (2, 2))

    ```
    """
    where = "cooperative_game_env"
    if not isinstance(game, CooperativeGame):
        raise TypeError(f"{where}: `game` must be a CooperativeGame, but is {type(game).__name__}.")
    check_positive_int(episode_length, "episode_length", where, 1)
    sizes = tuple(game.action_sizes)
    R = jnp.broadcast_to(game.R.reshape(game.R.shape + (1,) * (1 + len(sizes) - game.R.ndim)), game.P.shape[:-1])
    return CooperativeGameEnv(game.P, R, game.rho0, episode_length, game.num_agents, game.num_states, sizes)


@dataclasses.dataclass(frozen=True)
class MARLConfig:
    r"""Hyper-parameters of `make_train`.

    Defaults: the authors' code (Kuba et al. 2022 / HARL) and MAPPO's MPE settings: 128
    environments × 25 steps, γ = 0.99, λ = 0.95, Adam 5e-4, gradient
    clip 10, 5 epochs of 1 minibatch, clip 0.2, entropy 0.01; HATRPO δ = 0.01, damping 0.1, 10 CG
    steps, backtracking ×0.8 up to 10 times, accept ratio 0.5.

    - `algorithm`: a name in `ALGORITHMS` — `"mappo"` (one actor shared by all agents), `"happo"`,
      `"hatrpo"`, `"haa2c"` (one actor per agent, `sequential_update`) — or an `Algorithm`.
    - `total_steps`: environment steps per seed (counting one step of all agents as one);
      the number of iterations is `total_steps // (num_envs · num_steps)`.
    - `hidden_size`, `num_layers`: the actors' and the critic's MLPs (tanh).
    - `log_std_init`: the initial state-independent log-std of Gaussian actors (continuous actions).
    """

    algorithm: str | Algorithm = "happo"
    total_steps: int = 10_000_000
    num_envs: int = 128
    num_steps: int = 25
    gamma: float = 0.99
    gae_lambda: float = 0.95
    hidden_size: int = 64
    num_layers: int = 2
    actor_lr: float = 5e-4
    critic_lr: float = 5e-4
    max_grad_norm: float = 10.0
    num_epochs: int = 5
    num_minibatches: int = 1
    critic_epochs: int = 5
    clip_epsilon: float = 0.2
    entropy_coef: float = 0.01
    kl_threshold: float = 0.01
    damping: float = 0.1
    cg_steps: int = 10
    backtrack_ratio: float = 0.8
    max_backtracks: int = 10
    accept_ratio: float = 0.5
    normalize_advantages: bool = True
    log_std_init: float = -0.5

    def __post_init__(self) -> None:
        where = "MARLConfig"
        if not isinstance(self.algorithm, Algorithm) and self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"{where}: `algorithm` must be one of {tuple(ALGORITHMS)} or an Algorithm, but is {self.algorithm!r}."
            )
        for name in ("num_envs", "num_steps", "hidden_size", "num_layers", "num_epochs", "num_minibatches"):
            check_positive_int(getattr(self, name), name, where, 1)
        for name in ("critic_epochs", "cg_steps", "max_backtracks"):
            check_positive_int(getattr(self, name), name, where, 1)
        check_positive_int(self.total_steps, "total_steps", where, self.num_envs * self.num_steps)
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{where}: `{name}` must be in [0, 1], but is {getattr(self, name)}.")
        for name in ("actor_lr", "critic_lr", "max_grad_norm", "clip_epsilon", "kl_threshold"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{where}: `{name}` must be > 0, but is {getattr(self, name)}.")
        for name in ("entropy_coef", "damping"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{where}: `{name}` must be ≥ 0, but is {getattr(self, name)}.")
        for name in ("backtrack_ratio", "accept_ratio"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{where}: `{name}` must be in (0, 1), but is {getattr(self, name)}.")
        if not np.isfinite(self.log_std_init):
            raise ValueError(f"{where}: `log_std_init` must be finite, but is {self.log_std_init}.")
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(
                f"{where}: `num_minibatches` ({self.num_minibatches}) must divide the batch "
                f"num_envs · num_steps = {self.num_envs * self.num_steps}."
            )

    @property
    def algorithm_spec(self) -> Algorithm:
        """The `Algorithm` named by `algorithm` (or `algorithm` itself)."""
        return self.algorithm if isinstance(self.algorithm, Algorithm) else ALGORITHMS[self.algorithm]

    @property
    def algorithm_name(self) -> str:
        return self.algorithm_spec.name

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_iterations(self) -> int:
        return self.total_steps // self.steps_per_iteration

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON-able values (the algorithm by its name), as checkpoints record them."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**fields, "algorithm": self.algorithm_name}


class TrainState(eqx.Module):
    """Everything `train` carries between iterations (one seed; `vmap` adds a leading seed axis).

    `actor_params`: per agent (one shared entry for a shared-actor algorithm such as MAPPO), the
    arrays of an equinox MLP (and, for continuous actions, the log-std); `actor_opt_states`: per
    actor, `None` for an update without optimiser (HATRPO); `critic_params`: the centralised
    critic's arrays; `episode_return`: the running team return of each environment's current
    episode; `steps`: environment steps so far.
    """

    actor_params: tuple[Any, ...]
    critic_params: Any
    actor_opt_states: tuple[Any, ...]
    critic_opt_state: Any
    env_state: Any
    obs: Array
    episode_return: Array
    key: Array
    steps: Array


class Transition(eqx.Module):
    """One step of every environment, as a rollout records it (`lax.scan` stacks a time axis in front).

    `obs [E, n, obs_size]` (before the step), `actions` (`[E, n]` ints, or `[E, n, D]` floats if
    any agent is continuous, laid out as `MultiAgentEnv.step` takes them), `log_probs [E, n]` of the actions taken,
    `value [E]` (the critic's $V$ of `obs`), `reward [E]` (the team's), `done [E]` (the episode
    ended at this step) and `finished_return [E]` (the ended episode's return, else 0).
    """

    obs: Array
    actions: Array
    log_probs: Array
    value: Array
    reward: Array
    done: Array
    finished_return: Array


class Metrics(eqx.Module):
    """Per-iteration metrics.

    `steps` so far, `episode_return` (mean team return of the episodes that ended in the
    iteration's rollout; NaN if none did) and `episodes` (how many ended).
    """

    steps: Array
    episode_return: Array
    episodes: Array


class Trainer:
    """Returned by `make_train`.

    `trainer(key)` trains one seed (`jax.jit(jax.vmap(trainer))` trains
    several); `init`, `step` and `run` give the same loop in chunks (for progress and checkpoints);
    `actions` samples (or, without a key, takes the most likely) actions of the trained actors;
    `save`/`load` write and read a `TrainState` with equinox's serialisation.
    """

    def __init__(
        self, config: MARLConfig, env: Any, actor_static: tuple[Any, ...], critic_static: Any, shard_envs: bool
    ) -> None:
        self.config, self.env, self.shard_envs = config, env, shard_envs
        self.actor_static, self.critic_static = actor_static, critic_static
        self.algorithm = config.algorithm_spec
        self.kinds = _kinds(env)  # per agent: True for continuous actions
        self.continuous = any(self.kinds)  # the stored actions are floats `[.., n, D]`
        self.num_actors = 1 if self.algorithm.shared_actor else env.num_agents
        # One Policy object per kind of actor: agents whose networks have the same shapes share it,
        # which lets `sequential_update` gather them by index (`agents_alike`).
        policies: dict[tuple[int, bool], Policy] = {}
        for i in range(self.num_actors):
            kind = (env.action_sizes[i], self.kinds[i])
            if kind not in policies:
                policies[kind] = _policy(actor_static[i], self.kinds[i])
        self.policies = tuple(policies[env.action_sizes[i], self.kinds[i]] for i in range(self.num_actors))
        self.agent_update, self.uses_optimizer = self.algorithm.bind(config, _actor_optimizer(config))

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
        width = _action_width(self.env.action_sizes, self.kinds)
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
        sharding = NamedSharding(_env_mesh(), PartitionSpec("envs"))
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)

    def init(self, key: Array) -> TrainState:
        """A fresh `TrainState`: new networks and optimisers, every environment reset."""
        cfg, env = self.config, self.env
        k_actor, k_critic, k_env, key = jax.random.split(key, 4)
        actor_nets, critic_net = _networks(k_actor, k_critic, cfg, env, self.num_actors)
        actors = tuple(_actor_arrays(a, self.kinds[i], cfg, env.action_sizes[i]) for i, a in enumerate(actor_nets))
        critic = eqx.partition(critic_net, eqx.is_array)[0]
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_env, cfg.num_envs))
        obs, env_state = self._constrain((obs, env_state))
        optimizer = _actor_optimizer(cfg)
        actor_states = tuple(optimizer.init(p) if self.uses_optimizer else None for p in actors)
        critic_state = _critic_optimizer(cfg).init(critic)
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
        self, actor_params: tuple[Any, ...], obs: Array, env_state: Any, ret: Array, key: Array, greedy: bool = False
    ) -> tuple[Array, Any, Array, Array, Array, Array, Array, Array]:
        """Act in every environment and step it: the rollout's and `evaluate`'s one step."""
        k_act, k_env = jax.random.split(key)
        acts, lp = self._act(actor_params, obs, None if greedy else k_act)
        E = obs.shape[0]
        new_obs, env_state, reward, done = jax.vmap(self.env.step)(jax.random.split(k_env, E), env_state, acts)
        reward = reward.astype(ret.dtype)
        ret, finished = _end_episodes(ret, reward, done)
        return new_obs, env_state, ret, acts, lp, reward, done, finished

    def rollout_step(self, state: TrainState, key: Array) -> tuple[TrainState, Transition]:
        """One step of every environment: the new state and the `Transition`."""
        value = self.value_fn(state.critic_params, state.obs)
        obs, env_state, ret, acts, lp, reward, done, finished = self._env_step(
            state.actor_params, state.obs, state.env_state, state.episode_return, key
        )
        new = eqx.tree_at(lambda s: (s.env_state, s.obs, s.episode_return), state, (env_state, obs, ret))
        return new, Transition(state.obs, acts, lp, value, reward, done, finished)

    def step(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """One iteration: `num_steps` steps of every environment, GAE, the critic's and the actors' updates."""
        cfg = self.config
        key, k_roll, k_update = jax.random.split(state.key, 3)
        state = eqx.tree_at(lambda s: (s.env_state, s.obs), state, self._constrain((state.env_state, state.obs)))
        state, traj = jax.lax.scan(self.rollout_step, state, jax.random.split(k_roll, cfg.num_steps))
        last_value = self.value_fn(state.critic_params, state.obs)
        advantages, targets = self.advantages_and_targets(traj.reward, traj.value, last_value, traj.done)

        B = cfg.steps_per_iteration
        flat = lambda x: x.reshape(B, *x.shape[2:])
        columns = (traj.obs, traj.actions, traj.log_probs, advantages, targets)
        obs, acts, old_lp, advantages, targets = map(flat, columns)
        if cfg.normalize_advantages:
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
        self, rewards: Array, values: Array, last_value: Array, dones: Array
    ) -> tuple[Array, Array]:
        r"""GAE($\gamma, \lambda$) per environment and the critic's λ-return targets $\hat A_t + V(s_t)$.

        `rewards`, `values`, `dones`: `[T, E]` (time-major, as a rollout stacks them);
        `last_value`: `[E]`, $V$ of the states after the last step. Uses the config's `gamma`
        and `gae_lambda` (`generalized_advantage_estimate`, A31).
        """
        cfg = self.config
        all_values = jnp.concatenate([values, last_value[None]], 0)
        gae = jax.vmap(generalized_advantage_estimate, in_axes=(1, 1, 1, None, None), out_axes=1)
        advantages = gae(rewards, all_values, dones, cfg.gamma, cfg.gae_lambda)
        targets = advantages + values
        return advantages, targets

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
            _critic_optimizer(cfg),
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
            obs, env_state, ret, _, _, _, done, finished = self._env_step(actor_params, obs, env_state, ret, k)
            total, count = total + jnp.sum(finished), count + jnp.sum(done).astype(count.dtype)
            return (obs, env_state, ret, total, count), None

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
        leaves = eqx.tree_at(lambda s: s.key, state, jax.random.key_data(state.key))
        leaves = _gather(leaves)
        if jax.process_index() != 0:  # under jax.distributed, process 0 writes; the others wait
            _barrier(f"reference.Trainer.save {path}")
            return
        buffer = io.BytesIO()
        eqx.tree_serialise_leaves(buffer, leaves)
        payload = buffer.getvalue()
        steps = jnp.asarray(state.steps)
        header = {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.as_dict(),
            "num_seeds": None if steps.ndim == 0 else int(steps.shape[0]),
            "steps": int(jnp.max(steps)),
            "metadata": metadata,
            "payload_bytes": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        _atomic_write(path, _encode_header(header) + payload)
        _barrier(f"reference.Trainer.save {path}")

    def load(self, path: str | os.PathLike[str], num_seeds: int | None = None) -> TrainState:
        """Read a state written by `save`; raise `CheckpointError` (one line) if it cannot be used.

        The file's configuration must equal this trainer's (the error names the fields that
        differ); `num_seeds`, if given, must equal the number of seeds it was saved with.
        """
        header, payload = _read_checkpoint(path)
        saved = header["config"]
        mine = self.config.as_dict()
        diff = [f"{k}={saved.get(k)!r} (here {v!r})" for k, v in mine.items() if saved.get(k) != v]
        if diff:
            raise CheckpointError(
                f"checkpoint {str(path)!r} was written with another configuration: {', '.join(diff)}."
            )
        seeds = header["num_seeds"]
        if num_seeds is not None and num_seeds != seeds:
            raise CheckpointError(f"checkpoint {str(path)!r} holds {seeds} seeds, not {num_seeds}.")
        init = self.init if seeds is None else jax.vmap(self.init)
        keys = jax.random.key(0) if seeds is None else jax.random.split(jax.random.key(0), seeds)
        like = eqx.filter_eval_shape(init, keys)
        like = eqx.tree_at(lambda s: s.key, like, jax.eval_shape(jax.random.key_data, like.key))
        try:
            state = eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
        except Exception as err:  # a payload that hashes right but does not fit this trainer's state
            raise CheckpointError(f"checkpoint {str(path)!r} does not fit this trainer's state: {err}") from None
        state = eqx.tree_at(lambda s: s.key, state, jax.random.wrap_key_data(state.key))
        return _replicate(state)


CHECKPOINT_FORMAT = 2
TRACED_CHECK = TRACED.strip()  # how a runtime check of the library announces itself
_MAGIC = b"reference-marl-checkpoint\n"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not match: its message is one line naming the file."""


class TrainingError(RuntimeError):
    """Training stopped on a non-finite value: the message names the iteration and the last good checkpoint."""


def _env_mesh() -> jax.sharding.Mesh:
    """The one-axis mesh `"envs"` over every device of every process."""
    return jax.make_mesh((jax.device_count(),), ("envs",), axis_types=(jax.sharding.AxisType.Auto,))


def _gather(tree: Any) -> Any:
    """The arrays of `tree`, whole on this process.

    An array sharded over devices of other processes (`jax.distributed`) is gathered with
    `multihost_utils.process_allgather`, a collective that every process must call.
    """
    if jax.process_count() == 1:
        return tree

    def whole(x: Any) -> Any:
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            return multihost_utils.process_allgather(x, tiled=True)
        return x

    return jax.tree.map(whole, tree)


def _replicate(tree: Any) -> Any:
    """The (equal) arrays each process read, as global arrays replicated over every device.

    Under `jax.distributed` a jitted step takes only global arrays; with one process, unchanged.
    """
    if jax.process_count() == 1:
        return tree
    replicated = NamedSharding(_env_mesh(), PartitionSpec())

    def put(x: Any) -> Any:
        if not isinstance(x, jax.Array) or jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return x
        return jax.make_array_from_process_local_data(replicated, np.asarray(x))

    data = jax.tree.map(put, eqx.tree_at(lambda s: s.key, tree, jax.random.key_data(tree.key)))
    return eqx.tree_at(lambda s: s.key, data, jax.random.wrap_key_data(data.key))


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def _encode_header(header: dict[str, Any]) -> bytes:
    text = json.dumps(header, sort_keys=True).encode()
    return _MAGIC + len(text).to_bytes(8, "little") + text


def _atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    target = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def _read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    name = repr(str(path))
    try:
        data = pathlib.Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {name} does not exist.") from None
    except OSError as err:
        raise CheckpointError(f"checkpoint {name} cannot be read: {err.strerror or err}.") from None
    if not data.startswith(_MAGIC):
        raise CheckpointError(f"{name} is not a checkpoint written by reference's Trainer.save.")
    start = len(_MAGIC) + 8
    size = int.from_bytes(data[len(_MAGIC) : start], "little")
    try:
        header = json.loads(data[start : start + size])
    except ValueError:
        raise CheckpointError(f"checkpoint {name} is truncated or corrupt (its header cannot be read).") from None
    if not isinstance(header, dict) or header.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {name} has an unknown format (expected {CHECKPOINT_FORMAT}).")
    payload = data[start + size :]
    if len(payload) != header["payload_bytes"]:
        expected = header["payload_bytes"]
        raise CheckpointError(
            f"checkpoint {name} is truncated or corrupt: {len(payload)} bytes of arrays, expected {expected}."
        )
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise CheckpointError(f"checkpoint {name} is corrupt: its arrays do not match their SHA-256.")
    return header, payload


def checkpoint_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a checkpoint written by `Trainer.save` says of itself, without loading its arrays.

    A dict with `config` (the `MARLConfig` as a dict; `MARLConfig(**header["config"])` rebuilds
    it), `num_seeds` (`None` for one unbatched seed), `steps` (environment steps done per seed) and
    `metadata` (what the caller passed to `save`). Raises `CheckpointError` (one line naming the
    file) if the file is missing, truncated, corrupt or not a checkpoint.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> from reference import training
    >>> import tempfile, os
    >>> env = training.cooperative_game_env(rf.parameter_sharing_game(2))
    >>> trainer = training.make_train(training.MARLConfig(total_steps=64 * 8, num_envs=64, num_steps=8), env)
    >>> path = os.path.join(tempfile.mkdtemp(), "run.eqx")
    >>> trainer.save(path, trainer.init(jax.random.key(0)), env="game")
    >>> header = training.checkpoint_header(path)
    >>> header["config"]["algorithm"], header["num_seeds"], header["metadata"]
    ('happo', None, {'env': 'game'})

    ```
    """
    return _read_checkpoint(path)[0]


def train_in_chunks(
    trainer: Trainer,
    state: TrainState,
    *,
    num_iterations: int,
    chunk: int,
    checkpoint: str | os.PathLike[str] | None = None,
    metadata: dict[str, Any] | None = None,
    on_chunk: Callable[[TrainState, Metrics], None] | None = None,
) -> tuple[TrainState, list[Metrics]]:
    """Train a batch of seeds in jitted chunks, checkpointing after each, stopping on NaN.

    Runs `num_iterations` iterations of `state` (which has a leading seed axis) in jitted chunks
    of at most `chunk` iterations, saving `checkpoint` after each chunk.

    After each chunk the state's arrays are checked: if a loss or a parameter became NaN or
    infinite (or a traced input check of the library fired inside the chunk), training stops with
    `TrainingError` naming the first bad iteration (found by replaying the chunk one iteration at a
    time from the last good state, which is deterministic) and the last good checkpoint, which is
    left as it was. `on_chunk(state, metrics)` is called after each good chunk (e.g. to report
    progress), before its checkpoint is written: a log it keeps may run ahead of the checkpoint
    (drop what lies beyond the checkpoint's `steps` on resuming) but never behind it. Returns
    the final state and the list of each chunk's metrics (stacked over iterations, with a
    leading seed axis).

    The iterations are exactly those of `trainer.run(state, num_iterations)`, whatever `chunk`
    is, so a run resumed from a checkpoint continues as the uninterrupted run would.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> from reference import training
    >>> env = training.cooperative_game_env(rf.parameter_sharing_game(2))
    >>> trainer = training.make_train(training.MARLConfig(total_steps=2 * 64 * 8, num_envs=64, num_steps=8), env)
    >>> state = jax.vmap(trainer.init)(jax.random.split(jax.random.key(0), 2))  # two seeds
    >>> state, history = training.train_in_chunks(trainer, state, num_iterations=2, chunk=1)
    >>> len(history), history[0].episode_return.shape
    (2, (2, 1))

    ```
    """
    where = "train_in_chunks"
    check_positive_int(num_iterations, "num_iterations", where, 0)
    check_positive_int(chunk, "chunk", where)
    runs: dict[int, Callable[[TrainState], tuple[TrainState, Metrics]]] = {}
    done, history = 0, []
    while done < num_iterations:
        k = min(chunk, num_iterations - done)
        if k not in runs:
            runs[k] = jax.jit(jax.vmap(lambda s, k=k: trainer.run(s, k)))
        try:
            new_state, metrics = jax.block_until_ready(runs[k](state))
            problem = None if _all_finite(new_state) else "a parameter or optimiser state became NaN or infinite"
        except Exception as err:
            if TRACED_CHECK not in str(err):  # not one of the library's runtime checks: a real bug
                raise
            new_state, metrics, problem = state, None, _first_line(err)
        if problem is not None or metrics is None:
            first = _first_bad_iteration(trainer, state, k)
            kept = (
                f"the last good checkpoint, {str(checkpoint)!r}, holds iteration {done}"
                if checkpoint
                else "no checkpoint was asked for"
            )
            raise TrainingError(f"training stopped at iteration {done + first}: {problem}; {kept}.")
        state, done = new_state, done + k
        history.append(metrics)
        if on_chunk is not None:  # first: a record it keeps is never behind the checkpoint
            on_chunk(state, metrics)
        if checkpoint is not None:
            trainer.save(checkpoint, state, **(metadata or {}))
    return state, history


def _all_finite(tree: Any) -> bool:
    leaves = [x for x in jax.tree.leaves(tree) if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.inexact)]
    return all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


def _first_line(err: BaseException) -> str:
    """The library's own message inside an XLA runtime error, else the error's first line."""
    text = str(err)
    for line in text.splitlines():
        if TRACED_CHECK in line:
            return line.split("EquinoxRuntimeError: ")[-1].strip().rstrip(".")
    return (text.strip().splitlines() or [type(err).__name__])[0].rstrip(".")


def _first_bad_iteration(trainer: Trainer, state: TrainState, k: int) -> int:
    """1-based index, within a chunk of `k` iterations from `state`, of the first bad iteration."""
    step = jax.jit(jax.vmap(trainer.step))
    for i in range(1, k + 1):
        try:
            state, _ = jax.block_until_ready(step(state))
        except Exception as err:
            if TRACED_CHECK not in str(err):
                raise
            return i
        if not _all_finite(state):
            return i
    return k


def _kinds(env: Any) -> tuple[bool, ...]:
    """Per agent, whether its actions are continuous (`env.continuous_actions`: one bool, or one per agent)."""
    kinds = getattr(env, "continuous_actions", False)
    if isinstance(kinds, bool | int):
        return (bool(kinds),) * env.num_agents
    return tuple(bool(k) for k in kinds)


def _action_width(sizes: Sequence[int], kinds: Sequence[bool]) -> int:
    """`D` of the stored float actions: the largest continuous size (a discrete agent needs one column)."""
    return max(size if continuous else 1 for size, continuous in zip(sizes, kinds, strict=True))


def _mlp(key: Array, cfg: MARLConfig, in_size: int, out_size: int, last_scale: float) -> eqx.nn.MLP:
    mlp = eqx.nn.MLP(in_size, out_size, cfg.hidden_size, cfg.num_layers, activation=jax.nn.tanh, key=key)
    last = mlp.layers[-1]
    return eqx.tree_at(
        lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp, (last.weight * last_scale, jnp.zeros(out_size))
    )


def _networks(
    k_actor: Array, k_critic: Array, cfg: MARLConfig, env: Any, count: int
) -> tuple[tuple[eqx.nn.MLP, ...], eqx.nn.MLP]:
    """The `count` actors (one shared, or one per agent) and the centralised critic."""
    keys = jax.random.split(k_actor, count)
    actors = tuple(_mlp(keys[i], cfg, env.obs_size, env.action_sizes[i], 0.01) for i in range(count))
    return actors, _mlp(k_critic, cfg, env.num_agents * env.obs_size, 1, 1.0)


def _actor_arrays(net: eqx.nn.MLP, continuous: bool, cfg: MARLConfig, size: int) -> Any:
    """An actor's trainable arrays: the MLP's, and for a Gaussian actor its log-std `[D]`."""
    arrays = eqx.partition(net, eqx.is_array)[0]
    if not continuous:
        return arrays
    return (arrays, jnp.full(size, cfg.log_std_init, net.layers[-1].weight.dtype))


def _policy(static: Any, continuous: bool) -> Policy:
    """The `Policy` of an actor network with static part `static`: logits, or (mean, log-std)."""
    if continuous:

        def gaussian(params: Any, obs: Array) -> tuple[Array, Array]:
            arrays, log_std = params
            return jax.vmap(eqx.combine(arrays, static))(obs), log_std

        return Policy(gaussian, DiagonalGaussian())

    def logits(params: Any, obs: Array) -> Array:
        return jax.vmap(eqx.combine(params, static))(obs)

    return Policy(logits, Categorical())


def _end_episodes(episode_return: Array, reward: Array, done: Array) -> tuple[Array, Array]:
    """Add the reward to the running returns; return (running, the returns of episodes that ended)."""
    ret = episode_return + reward
    return jnp.where(done, 0.0, ret), jnp.where(done, ret, 0.0)


def _actor_optimizer(cfg: MARLConfig) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.actor_lr, eps=1e-5))


def _critic_optimizer(cfg: MARLConfig) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.critic_lr, eps=1e-5))


def make_train(config: MARLConfig, env: MultiAgentEnv) -> Trainer:
    r"""Build multi-agent actor-critic training of `env` as one jit-able function (purejaxrl's shape).

    `train = make_train(config, env)`; `train(key)` runs `config.num_iterations` iterations of:
    a rollout of `num_steps` steps of `num_envs` environments (`lax.scan` over `vmap`), GAE
    (`generalized_advantage_estimate`, A31) with the centralised critic $V(o^1,\dots,o^n)$,
    `critic_epochs` epochs of Adam on $\tfrac12(V-\hat R)^2$, then the actors:

    $$\hat A_t = \sum_{l\ge0}(\gamma\lambda)^l\delta_{t+l},\quad
      \delta_t = r_t + \gamma(1-d_t)V(s_{t+1}) - V(s_t),\quad \hat R_t = \hat A_t + V(s_t)$$


    - a shared-actor algorithm (MAPPO, A36): one update of the one actor on the pooled batch;
    - a heterogeneous-agent one (HAPPO A51, HATRPO A45–A50, HAA2C A51a): `sequential_update` —
      a random order, each agent's update on the factor $M$, $M$ multiplied by its new/old ratio.

    The algorithm is `config.algorithm` (a name in `ALGORITHMS`, or an `Algorithm`). Actions are
    discrete (`Categorical` actors, logits from an MLP) or, if `env.continuous_actions`,
    continuous (`DiagonalGaussian` actors: an MLP's mean and a state-independent log-std); with
    one bool per agent in `env.continuous_actions`, each agent gets its own kind.
    Advantages are standardised over the batch (the authors' code) unless
    `normalize_advantages=False`.

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
    agent_kinds = _kinds(env)
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
    actor_nets, critic_net = _networks(key, key, config, env, count)
    actors = tuple(eqx.partition(a, eqx.is_array)[1] for a in actor_nets)
    return Trainer(config, env, actors, eqx.partition(critic_net, eqx.is_array)[1], shard)
