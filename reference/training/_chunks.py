"""Training in jitted chunks with a checkpoint after each, stopping on a non-finite value."""

import os
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_positive_int
from ._state import Metrics, TrainState
from ._trainer import Trainer


class TrainingError(RuntimeError):
    """Training stopped on a non-finite value: the message names the iteration and the last good checkpoint.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> from reference import training
    >>> class NaNReward(training.CooperativeGameEnv):  # a game whose rewards are NaN
    ...     def step(self, key, state, actions):
    ...         return super().step(key, state, actions)._replace(reward=jnp.nan)
    >>> game = training.cooperative_game_env(rf.parameter_sharing_game(2))
    >>> env = NaNReward(game.P, game.R, game.rho0, 1, 2, 1, (2, 2))
    >>> trainer = training.make_train(training.MARLConfig(total_steps=64 * 8 * 2, num_envs=64, num_steps=8), env)
    >>> state = jax.vmap(trainer.init)(jax.random.split(jax.random.key(0), 2))
    >>> try:
    ...     training.train_in_chunks(trainer, state, num_iterations=2, chunk=1)
    ... except training.TrainingError as err:
    ...     print(err)  # doctest: +ELLIPSIS
    training stopped at iteration 1: ...; no checkpoint was asked for.

    ```
    """


TrainingError.__module__ = "reference.training"  # where users import it from


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
            runs[k] = eqx.filter_jit(jax.vmap(lambda s, k=k: trainer.run(s, k)))
        try:
            new_state, metrics = jax.block_until_ready(runs[k](state))
            problem = None if _all_finite(new_state) else "a parameter or optimiser state became NaN or infinite"
        except eqx.EquinoxRuntimeError as err:  # a runtime check of the library fired inside the chunk
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
    """For the report: the message of the check that fired (equinox prints it after the traced stack)."""
    lines = [line.split("EquinoxRuntimeError: ", 1)[-1] for line in str(err).splitlines() if "RuntimeError: " in line]
    return (lines[-1] if lines else type(err).__name__).strip().rstrip(".")


def _first_bad_iteration(trainer: Trainer, state: TrainState, k: int) -> int:
    """1-based index, within a chunk of `k` iterations from `state`, of the first bad iteration."""
    step = eqx.filter_jit(jax.vmap(trainer.step))
    for i in range(1, k + 1):
        try:
            state, _ = jax.block_until_ready(step(state))
        except eqx.EquinoxRuntimeError:
            return i
        if not _all_finite(state):
            return i
    return k
