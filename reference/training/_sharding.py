"""Sharding of the trainer over devices and processes (`jax.sharding`, `jax.distributed`).

The environment batch is split over a one-axis mesh `"envs"`; checkpoints are gathered whole on
process 0 and replicated on reading. With one process every helper is the identity.
"""

from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec


def env_mesh() -> jax.sharding.Mesh:
    """The one-axis mesh `"envs"` over every device of every process."""
    return jax.make_mesh((jax.device_count(),), ("envs",), axis_types=(jax.sharding.AxisType.Auto,))


def gather(tree: Any) -> Any:
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


def replicate(tree: Any) -> Any:
    """The (equal) arrays each process read, as global arrays replicated over every device.

    Under `jax.distributed` a jitted step takes only global arrays; with one process, unchanged.
    """
    if jax.process_count() == 1:
        return tree
    replicated = NamedSharding(env_mesh(), PartitionSpec())

    def put(x: Any) -> Any:
        if not isinstance(x, jax.Array) or jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return x
        return jax.make_array_from_process_local_data(replicated, np.asarray(x))

    data = jax.tree.map(put, eqx.tree_at(lambda s: s.key, tree, jax.random.key_data(tree.key)))
    return eqx.tree_at(lambda s: s.key, data, jax.random.wrap_key_data(data.key))


def barrier(name: str) -> None:
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
