"""What the trainer carries and records: its state between iterations, a rollout's steps, the metrics."""

from typing import Any

import equinox as eqx

from .._types import Array


class TrainState(eqx.Module):
    """Everything `train` carries between iterations (one seed; `vmap` adds a leading seed axis).

    `actor_params`: per agent (one shared entry for a shared-actor algorithm such as MAPPO), the
    arrays of an equinox MLP (and, for continuous actions, the log-std); `actor_opt_states`: per
    actor, `None` for an update without optimiser (HATRPO); `critic_params`: the centralised
    critic's arrays; `episode_return`: the running team return of each environment's current
    episode; `steps`: environment steps so far.

    **Examples:**

    ```pycon
    >>> import jax, reference as rf
    >>> from reference import training
    >>> env = training.cooperative_game_env(rf.parameter_sharing_game(2))
    >>> trainer = training.make_train(training.MARLConfig(total_steps=64 * 8 * 2, num_envs=64, num_steps=8), env)
    >>> state = trainer.init(jax.random.key(0))
    >>> isinstance(state, training.TrainState), state.obs.shape, int(state.steps)  # 64 envs × 2 agents × 1 number
    (True, (64, 2, 1), 0)

    ```
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
    `value [E]` (the critic's $V$ of `obs`), `reward [E]` (the team's), `terminated [E]` and
    `truncated [E]` (the episode ended at this step in a terminal state, or was cut: `EnvStep`),
    `final_value [E]` ($V$ of the observation the step reached before any reset, where the step
    was truncated and `MARLConfig.truncation` is `"bootstrap"`; else 0) and `finished_return [E]`
    (the ended episode's return, else 0).

    **Examples:**

    ```pycon
    >>> import jax, reference as rf
    >>> from reference import training
    >>> env = training.cooperative_game_env(rf.parameter_sharing_game(2))
    >>> trainer = training.make_train(training.MARLConfig(total_steps=64 * 8 * 2, num_envs=64, num_steps=8), env)
    >>> state = trainer.init(jax.random.key(0))
    >>> state, step = trainer.rollout_step(state, jax.random.key(1))
    >>> isinstance(step, training.Transition), step.obs.shape, step.actions.shape
    (True, (64, 2, 1), (64, 2))
    >>> bool(step.terminated.all()), bool(step.truncated.any())  # every step ends the one-shot game
    (True, False)

    ```
    """

    obs: Array
    actions: Array
    log_probs: Array
    value: Array
    reward: Array
    terminated: Array
    truncated: Array
    final_value: Array
    finished_return: Array

    @property
    def done(self) -> Array:
        """The episode ended at this step (terminated or truncated)."""
        return self.terminated | self.truncated


class Metrics(eqx.Module):
    """Per-iteration metrics.

    `steps` so far, `episode_return` (mean team return of the episodes that ended in the
    iteration's rollout; NaN if none did) and `episodes` (how many ended).

    **Examples:**

    ```pycon
    >>> import jax, reference as rf
    >>> from reference import training
    >>> env = training.cooperative_game_env(rf.parameter_sharing_game(2))
    >>> trainer = training.make_train(training.MARLConfig(total_steps=64 * 8 * 2, num_envs=64, num_steps=8), env)
    >>> state, metrics = jax.jit(trainer)(jax.random.key(0))  # two iterations of 64 envs × 8 steps
    >>> isinstance(metrics, training.Metrics), metrics.steps.tolist(), metrics.episodes.tolist()
    (True, [512, 1024], [512, 512])

    ```
    """

    steps: Array
    episode_return: Array
    episodes: Array
