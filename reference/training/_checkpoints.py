"""Checkpoints of the trainer: one file, a JSON header (the configuration) and the state's arrays.

The format: a magic line, the header's length and the header (`MARLConfig.as_dict()`, the number of
seeds, the steps done, the caller's metadata, the arrays' length and SHA-256), then the arrays
(`equinox.tree_serialise_leaves`). Writes are atomic (a temporary file renamed over the target);
every way a file can be unusable is a `CheckpointError` of one line naming the file.
"""

import hashlib
import io
import json
import os
import pathlib
import tempfile
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._config import MARLConfig, upgrade
from ._sharding import barrier, gather, replicate

CHECKPOINT_FORMAT = 2
_MAGIC = b"reference-marl-checkpoint\n"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not match: its message is one line naming the file.

    **Examples:**

    ```pycon
    >>> from reference import training
    >>> try:
    ...     training.checkpoint_header("no-such-file.eqx")
    ... except training.CheckpointError as err:
    ...     print(err)
    checkpoint 'no-such-file.eqx' does not exist.

    ```
    """


CheckpointError.__module__ = "reference.training"  # where users import it from


def encode_header(header: dict[str, Any]) -> bytes:
    text = json.dumps(header, sort_keys=True).encode()
    return _MAGIC + len(text).to_bytes(8, "little") + text


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
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


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
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

    A dict with `config` (the `MARLConfig` as a dict; `MARLConfig.from_dict(header["config"])`
    rebuilds it), `num_seeds` (`None` for one unbatched seed), `steps` (environment steps done per seed) and
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
    return read_checkpoint(path)[0]


def write_checkpoint(path: str | os.PathLike[str], state: Any, config: MARLConfig, metadata: dict[str, Any]) -> None:
    """`Trainer.save`: write `state` (a `TrainState`, one seed or a stack) and `config` to `path`."""
    leaves = eqx.tree_at(lambda s: s.key, state, jax.random.key_data(state.key))
    leaves = gather(leaves)
    if jax.process_index() != 0:  # under jax.distributed, process 0 writes; the others wait
        barrier(f"reference.Trainer.save {path}")
        return
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, leaves)
    payload = buffer.getvalue()
    steps = jnp.asarray(state.steps)
    header = {
        "format": CHECKPOINT_FORMAT,
        "config": config.as_dict(),
        "num_seeds": None if steps.ndim == 0 else int(steps.shape[0]),
        "steps": int(jnp.max(steps)),
        "metadata": metadata,
        "payload_bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    atomic_write(path, encode_header(header) + payload)
    barrier(f"reference.Trainer.save {path}")


def read_state(
    path: str | os.PathLike[str], config: MARLConfig, init: Callable[[jax.Array], Any], num_seeds: int | None
) -> Any:
    """`Trainer.load`: the state in `path`, checked against `config`; `init(key)` gives its structure."""
    header, payload = read_checkpoint(path)
    saved = upgrade(header["config"])  # an older record in today's names
    mine = config.as_dict()
    diff = [f"{k}={saved.get(k)!r} (here {v!r})" for k, v in mine.items() if saved.get(k) != v]
    if diff:
        raise CheckpointError(f"checkpoint {str(path)!r} was written with another configuration: {', '.join(diff)}.")
    seeds = header["num_seeds"]
    if num_seeds is not None and num_seeds != seeds:
        raise CheckpointError(f"checkpoint {str(path)!r} holds {seeds} seeds, not {num_seeds}.")
    init_all = init if seeds is None else jax.vmap(init)
    keys = jax.random.key(0) if seeds is None else jax.random.split(jax.random.key(0), seeds)
    like = eqx.filter_eval_shape(init_all, keys)
    like = eqx.tree_at(lambda s: s.key, like, jax.eval_shape(jax.random.key_data, like.key))
    try:
        state = eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except Exception as err:  # a payload that hashes right but does not fit this trainer's state
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit this trainer's state: {err}") from None
    state = eqx.tree_at(lambda s: s.key, state, jax.random.wrap_key_data(state.key))
    return replicate(state)
