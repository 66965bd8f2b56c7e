r"""The environments `make_train` trains on: the `MultiAgentEnv` interface, JaxMARL's and the finite games'.

An environment step tells a *termination* (the episode reached a terminal state: nothing follows,
the value after it is 0) from a *truncation* (the episode was cut, usually by a time limit, in a
state that has a future: the notes' objective, the infinite-horizon discounted return, goes on
after it). `EnvStep` carries both and the observation the step reached before any reset, so that
the trainer can bootstrap a truncated step from $V$ of that observation.
"""

from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_positive_int
from .._markov_game import CooperativeGame, parameter_sharing_game
from .._types import Array


class EnvStep(NamedTuple):
    """What `MultiAgentEnv.step` returns for one environment.

    - `obs [n, obs_size]`: the next observation; after an episode's end, the new episode's first.
    - `state`: the environment's next state (after a reset if the episode ended).
    - `reward []`: the team reward of the step.
    - `terminated []` (bool): the step reached a terminal state — no reward follows, its value is 0.
    - `truncated []` (bool): the episode was cut here (a time limit) in a state that is not
      terminal; the return would have gone on.
    - `final_obs [n, obs_size]`: the observation the step reached, before any reset (equal to
      `obs` unless the episode ended): the trainer bootstraps a truncated step from its value.

    **Examples:**

    ```pycon
    >>> import jax, reference as rf
    >>> from reference import training
    >>> env = training.cooperative_game_env(rf.parameter_sharing_game(2))
    >>> obs, state = env.reset(jax.random.key(0))
    >>> out = env.step(jax.random.key(1), state, jax.numpy.asarray([0, 1]))
    >>> isinstance(out, training.EnvStep), bool(out.terminated), bool(out.truncated)
    (True, True, False)

    ```
    """

    obs: Array
    state: Any
    reward: Array
    terminated: Array
    truncated: Array
    final_obs: Array


@runtime_checkable  # beartype checks `env: MultiAgentEnv` hints with isinstance (the attributes' presence)
class MultiAgentEnv(Protocol):
    """The array interface `make_train` trains on (one environment; `make_train` `vmap`s it).

    - `num_agents`, `obs_size` (every agent's observation is a vector of that size; agents
      whose observations are shorter are zero-padded, which changes no network's function:
      the padded inputs meet weights whose gradient is zero) and `action_sizes` (per agent, the
      number of discrete actions, or the dimension of continuous ones);
    - optionally `continuous_actions` (default `False`): `True` if every agent's actions are real
      vectors, or one bool per agent when the kinds differ (a discrete agent beside continuous ones);
    - `reset(key) -> (obs [n, obs_size], state)`;
    - `step(key, state, actions) -> EnvStep`, `actions` `[n]` ints if every agent is discrete,
      else `[n, D]` floats (`D` the largest continuous action size, or 1): a continuous agent's
      own dimensions first, a discrete agent's action index in column 0, zeros after; resetting by
      itself when the episode ends (terminated or truncated).

    A `step` that returns the 4-tuple `(obs, state, reward, done)` (this interface before
    truncations) is still accepted: every `done` counts as a termination.

    **Examples:**

    ```pycon
    >>> import reference as rf
    >>> from reference import training
    >>> env = training.cooperative_game_env(rf.parameter_sharing_game(4))
    >>> isinstance(env, training.MultiAgentEnv), env.num_agents, env.obs_size, env.action_sizes
    (True, 4, 1, (2, 2, 2, 2))

    ```
    """

    num_agents: int
    obs_size: int
    action_sizes: tuple[int, ...]

    def reset(self, key: Array) -> tuple[Array, Any]: ...

    def step(self, key: Array, state: Any, actions: Array) -> EnvStep | tuple[Array, Any, Array, Array]: ...


def as_env_step(out: Any) -> EnvStep:
    """`MultiAgentEnv.step`'s result as an `EnvStep` (a legacy 4-tuple's `done` is a termination)."""
    if isinstance(out, EnvStep):
        return out
    obs, state, reward, done = out
    done = jnp.asarray(done, bool)
    return EnvStep(obs, state, reward, done, jnp.zeros_like(done), obs)


Ends = Literal["time_limit", "smax", "brax"]
"""How a JaxMARL environment's `done` splits into termination and truncation."""


class JaxMARLEnv(eqx.Module):
    """A JaxMARL environment behind the `MultiAgentEnv` interface.

    The team reward is the sum of the agents' rewards (for MABrax and SMAX, each agent's reward
    is already the team's, so their mean); shorter observations are zero-padded to `obs_size`.
    The wrapper steps with JaxMARL's `step_env` and resets by itself, so that it keeps the
    observation the step reached (`EnvStep.final_obs`). `ends` says what an end is: `"time_limit"`
    (MPE: every end is the step limit, a truncation), `"smax"` (a side destroyed is a termination,
    the step limit a truncation), `"brax"` (a fallen robot is a termination, brax's episode
    length a truncation).

    **Examples:**

    ```pycon
    >>> import pytest; _ = pytest.importorskip("jaxmarl")  # the `marl` extra
    >>> from reference import training
    >>> env = training.smax_env("2s3z")
    >>> isinstance(env, training.JaxMARLEnv), env.ends, env.num_agents
    (True, 'smax', 5)

    ```
    """

    env: Any = eqx.field(static=True)
    num_agents: int = eqx.field(static=True)
    obs_size: int = eqx.field(static=True)
    action_sizes: tuple[int, ...] = eqx.field(static=True)
    continuous_actions: bool = eqx.field(static=True, default=False)
    shared_reward: bool = eqx.field(static=True, default=False)
    ends: Ends = eqx.field(static=True, default="time_limit")

    def _obs(self, obs: dict[str, Array]) -> Array:
        rows = [obs[a] for a in self.env.agents]
        return jnp.stack([jnp.pad(o, (0, self.obs_size - o.shape[-1])) for o in rows])

    def reset(self, key: Array) -> tuple[Array, Any]:
        obs, state = self.env.reset(key)
        return self._obs(obs), state

    def _terminated(self, state: Any, done: Array) -> Array:
        if self.ends == "time_limit":
            return jnp.zeros_like(done)
        if self.ends == "smax":
            alive = state.state.unit_alive
            allies = self.env.num_allies
            return ~jnp.any(alive[:allies]) | ~jnp.any(alive[allies:])
        return done & ~state.info["truncation"].astype(bool)  # brax's EpisodeWrapper marks the cut

    def step(self, key: Array, state: Any, actions: Array) -> EnvStep:
        if self.continuous_actions:
            acts = {a: actions[i, : self.action_sizes[i]] for i, a in enumerate(self.env.agents)}
        else:
            acts = {a: actions[i] for i, a in enumerate(self.env.agents)}
        k_step, k_reset = jax.random.split(key)
        obs, next_state, rewards, dones, _ = self.env.step_env(k_step, state, acts)
        reward = sum(rewards[a] for a in self.env.agents)
        if self.shared_reward:
            reward = reward / self.num_agents
        done = jnp.asarray(dones["__all__"], bool)
        terminated = done & self._terminated(next_state, done)
        final_obs = self._obs(obs)
        reset_obs, reset_state = self.reset(k_reset)
        next_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, next_state)
        obs_next = jnp.where(done, reset_obs, final_obs)
        return EnvStep(obs_next, next_state, jnp.asarray(reward), terminated, done & ~terminated, final_obs)


def _wrap_jaxmarl(env: Any, ends: Ends, shared_reward: bool = False) -> JaxMARLEnv:
    obs_spaces: list[Any] = [env.observation_space(a) for a in env.agents]
    act_spaces: list[Any] = [env.action_space(a) for a in env.agents]
    obs_size = max(int(space.shape[0]) for space in obs_spaces)
    continuous = not hasattr(act_spaces[0], "n")
    sizes = tuple(int(space.shape[0]) if continuous else int(space.n) for space in act_spaces)
    return JaxMARLEnv(env, len(env.agents), obs_size, sizes, continuous, shared_reward, ends)


def simple_spread_env(num_agents: int = 3, episode_length: int = 25) -> JaxMARLEnv:
    r"""MPE cooperative navigation (`MPE_simple_spread_v3`, JaxMARL) with `episode_length`-step episodes.

    $n$ agents, $n$ landmarks, 5 discrete actions, observations of $4 + 4(n-1) + 2n$ numbers (18
    for $n=3$); the team reward is the sum of the agents' rewards,

    $$r_t = \sum_{i=1}^n\Big(\tfrac12\,g_t + \tfrac12\,c^i_t\Big),\qquad
      g_t = -\sum_{l=1}^n\min_i\lVert x^i_t - y^l\rVert,\qquad c^i_t = -\#\{\text{collisions of } i\}$$

    (JaxMARL's `local_ratio = 0.5`). The task the notes' practical algorithms (Notes A36, A51) are
    measured on in Kuba et al. (2022) and Yu et al. (2021). JaxMARL ends an episode one step
    after `max_steps`, so `max_steps = episode_length − 1`: 25-step episodes compare with the
    published MPE results. The step limit is a truncation (`EnvStep.truncated`): MPE has no
    terminal state, and its observations carry no time. Needs the `marl` extra (`pip install -e ".[marl]"`).

    **Examples:**

    ```pycon
    >>> import pytest; _ = pytest.importorskip("jaxmarl")  # the `marl` extra
    >>> import jax
    >>> from reference import training
    >>> env = training.simple_spread_env(3)
    >>> env.num_agents, env.obs_size, env.action_sizes, env.ends
    (3, 18, (5, 5, 5), 'time_limit')

    ```
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
    return _wrap_jaxmarl(env, "time_limit")


def mujoco_warnings_to_console() -> bool:
    """Send MuJoCo's warnings to the console only, not to `MUJOCO_LOG.TXT` in the working directory.

    MuJoCo (under MABrax) appends every warning it prints to a `MUJOCO_LOG.TXT` file in the
    directory the program runs in. This sets MuJoCo's own log setting, which is global to the
    process, so `mabrax_env` does not call it: call it once, as the example scripts, benchmarks
    and proofs do. Returns whether MuJoCo is installed (False: nothing to set).

    **Examples:**

    ```pycon
    >>> from reference import training
    >>> # False where MuJoCo (the `mabrax` extra) is not installed
    >>> installed = training.mujoco_warnings_to_console()

    ```
    """
    try:
        import mujoco
    except ImportError:
        return False
    config = mujoco.MjLogConfig.get()  # pyright: ignore[reportAttributeAccessIssue]  (not in its stubs)
    config.logto_file = False
    config.set()
    return True


def mabrax_env(scenario: str = "halfcheetah_6x1", episode_length: int = 1000) -> JaxMARLEnv:
    r"""Multi-agent MuJoCo on brax (JaxMARL's MABrax): each agent drives some of a robot's joints.

    The continuous-control task of the HATRPO/HAPPO paper (Kuba et al. 2022, multi-agent MuJoCo):
    `halfcheetah_6x1` splits HalfCheetah's 6 joints among 6 agents (one 1-D action each,
    observations of 8–9 numbers: each agent sees its own joints and their neighbours'); `ant_4x2`,
    `hopper_3x1`, `walker2d_2x3`, `humanoid_9|8` are JaxMARL's other splits. Agents differ: each
    has its own body part and observation. Every agent is rewarded with the robot's forward-motion
    reward; the team reward here is that reward (the mean of the agents' equal rewards):

    $$r_t = \frac{x_{t+1}-x_t}{\Delta t} - c\,\lVert\mathbf a_t\rVert^2\ (+\ \text{healthy bonus})$$

    Episodes last `episode_length` steps (1,000 in the paper; reaching it is a truncation) unless
    the robot falls first (Hopper, Walker2d, Ant: a termination). Needs the `mabrax` extra
    (`pip install -e ".[mabrax]"`: JaxMARL and brax).

    **Examples:**

    ```pycon
    >>> import pytest; _ = pytest.importorskip("brax")  # the `mabrax` extra
    >>> from reference import training
    >>> env = training.mabrax_env("hopper_3x1", episode_length=1000)
    >>> env.num_agents, env.action_sizes, env.continuous_actions, env.ends
    (3, (1, 1, 1), True, 'brax')

    ```
    """
    where = "mabrax_env"
    check_positive_int(episode_length, "episode_length", where, 1)
    try:
        import jaxmarl
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError(f'{where} needs JaxMARL and brax: `pip install -e ".[mabrax]"`.') from err
    try:
        env = jaxmarl.make(scenario, episode_length=episode_length, auto_reset=False)
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise ImportError(f'{where} needs brax: `pip install -e ".[mabrax]"` ({err}).') from err
    except ValueError as err:
        raise ValueError(f"{where}: `scenario` {scenario!r} is not a MABrax scenario of JaxMARL ({err}).") from None
    return _wrap_jaxmarl(env, "brax", shared_reward=True)


def smax_env(scenario: str = "2s3z") -> JaxMARLEnv:
    r"""StarCraft multi-agent challenge on JAX (JaxMARL's SMAX) against its heuristic enemy.

    The discrete-action benchmark of the HATRPO/HAPPO paper (SMAC): `2s3z` sets 2 Stalkers and 3
    Zealots (ranged and melee units: agents that differ in what their actions do) against the same
    force; each agent sees 127 numbers and chooses among 10 actions (moves, stop, attack an enemy).
    Every agent receives the team's reward (damage dealt, a bonus for a win); the team reward here
    is that reward,

    $$r_t = \frac1n\sum_{i=1}^n r^i_t,\qquad r^i_t = r_t\ \text{for every agent}$$

    Episodes end when a side is destroyed (a termination) or after 100 steps (a truncation: the
    battle was not over). Needs the `marl` extra. Actions the
    game does not allow at a step (attacking an enemy out of range) do nothing: no action mask is
    applied.

    **Examples:**

    ```pycon
    >>> import pytest; _ = pytest.importorskip("jaxmarl")  # the `marl` extra
    >>> from reference import training
    >>> env = training.smax_env("3m")
    >>> env.num_agents, env.action_sizes[0], env.ends  # 4 moves, stop, or attack one of 3 enemies
    (3, 8, 'smax')

    ```
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
    return _wrap_jaxmarl(jaxmarl.make("HeuristicEnemySMAX", scenario=scenario_spec), "smax", shared_reward=True)


class CooperativeGameEnv(eqx.Module):
    """A finite `CooperativeGame` as an environment.

    Every agent observes the one-hot state (the same observation, no agent id), the team reward is
    `R[s, a]`, episodes last `episode_length` steps and their end is a termination (the game is
    played for that many steps: with `episode_length = 1`, a one-shot game).

    **Examples:**

    ```pycon
    >>> import reference as rf
    >>> from reference import training
    >>> env = training.cooperative_game_env(rf.parameter_sharing_game(2), episode_length=3)
    >>> isinstance(env, training.CooperativeGameEnv), env.episode_length, env.R.shape  # R[s, a¹, a²]
    (True, 3, (1, 2, 2))

    ```
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

    def step(self, key: Array, state: Any, actions: Array) -> EnvStep:
        s, t = state
        k_next, k_reset = jax.random.split(key)
        joint = (s, *(actions[i] for i in range(self.num_agents)))
        reward = self.R[joint]
        reached = jax.random.categorical(k_next, jnp.log(self.P[joint]))
        done = t + 1 >= self.episode_length
        nxt = jnp.where(done, jax.random.categorical(k_reset, jnp.log(self.rho0)), reached)
        t = jnp.where(done, 0, t + 1)
        return EnvStep(self._obs(nxt), (nxt, t), reward, done, jnp.zeros_like(done), self._obs(reached))


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


MABRAX_SCENARIOS = ("halfcheetah_6x1", "ant_4x2", "hopper_3x1", "walker2d_2x3")
SMAX_SCENARIOS = ("2s3z", "3m")

ENVIRONMENTS: tuple[str, ...] = (
    "simple_spread",
    "parameter_sharing",
    *MABRAX_SCENARIOS,
    *(f"smax_{s}" for s in SMAX_SCENARIOS),
)
"""The names `make_env` knows: MPE's `"simple_spread"`, Proposition 1's `"parameter_sharing"` game,
MABrax's `"halfcheetah_6x1"`, `"ant_4x2"`, `"hopper_3x1"`, `"walker2d_2x3"` and SMAX's
`"smax_2s3z"`, `"smax_3m"`."""


def make_env(name: str, num_agents: int = 3) -> MultiAgentEnv:
    r"""The environment called `name` in `ENVIRONMENTS`, as the command-line tools train it.

    `"simple_spread"`: `simple_spread_env(num_agents, 25)`; `"parameter_sharing"`:
    `cooperative_game_env(parameter_sharing_game(num_agents))` (a one-shot game); a MABrax
    scenario: `mabrax_env(name, 1000)`; `"smax_<map>"`: `smax_env(map)`. `num_agents` matters only
    for the first two. Raises `ValueError` for an unknown name, `ImportError` (naming the extra to
    install) when JaxMARL or brax is missing.

    **Examples:**

    ```pycon
    >>> from reference import training
    >>> training.make_env("parameter_sharing", num_agents=4).action_sizes
    (2, 2, 2, 2)
    >>> "simple_spread" in training.ENVIRONMENTS
    True

    ```
    """
    where = "make_env"
    if name not in ENVIRONMENTS:
        raise ValueError(f"{where}: `name` {name!r} is not one of {ENVIRONMENTS}.")
    check_positive_int(num_agents, "num_agents", where, 1)
    if name == "simple_spread":
        return simple_spread_env(num_agents, 25)
    if name == "parameter_sharing":
        return cooperative_game_env(parameter_sharing_game(num_agents), episode_length=1)
    if name in MABRAX_SCENARIOS:
        return mabrax_env(name, 1000)
    return smax_env(name.removeprefix("smax_"))
