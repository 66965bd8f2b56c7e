"""The networks `make_train` trains: tanh MLPs for the actors and the centralised critic, their optimisers.

Helpers of the trainer (not part of the public API): an actor is an equinox MLP whose arrays are
trained (plus, for continuous actions, a state-independent log-std); `policy_of` turns its static
part into the `Policy` the agent updates apply.
"""

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._sequential import Categorical, DiagonalGaussian, Policy
from .._types import Array
from ._config import MARLConfig


def action_kinds(env: Any) -> tuple[bool, ...]:
    """Per agent, whether its actions are continuous (`env.continuous_actions`: one bool, or one per agent)."""
    kinds = getattr(env, "continuous_actions", False)
    if isinstance(kinds, bool | int):
        return (bool(kinds),) * env.num_agents
    return tuple(bool(k) for k in kinds)


def action_width(sizes: Sequence[int], kinds: Sequence[bool]) -> int:
    """`D` of the stored float actions: the largest continuous size (a discrete agent needs one column)."""
    return max(size if continuous else 1 for size, continuous in zip(sizes, kinds, strict=True))


def mlp(key: Array, cfg: MARLConfig, in_size: int, out_size: int, last_scale: float) -> eqx.nn.MLP:
    mlp = eqx.nn.MLP(in_size, out_size, cfg.hidden_size, cfg.num_layers, activation=jax.nn.tanh, key=key)
    last = mlp.layers[-1]
    return eqx.tree_at(
        lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp, (last.weight * last_scale, jnp.zeros(out_size))
    )


def networks(
    k_actor: Array, k_critic: Array, cfg: MARLConfig, env: Any, count: int
) -> tuple[tuple[eqx.nn.MLP, ...], eqx.nn.MLP]:
    """The `count` actors (one shared, or one per agent) and the centralised critic."""
    keys = jax.random.split(k_actor, count)
    actors = tuple(mlp(keys[i], cfg, env.obs_size, env.action_sizes[i], 0.01) for i in range(count))
    return actors, mlp(k_critic, cfg, env.num_agents * env.obs_size, 1, 1.0)


def actor_arrays(net: eqx.nn.MLP, continuous: bool, cfg: MARLConfig, size: int) -> Any:
    """An actor's trainable arrays: the MLP's, and for a Gaussian actor its log-std `[D]`."""
    arrays = eqx.partition(net, eqx.is_array)[0]
    if not continuous:
        return arrays
    return (arrays, jnp.full(size, cfg.log_std_init, net.layers[-1].weight.dtype))


def policy_of(static: Any, continuous: bool) -> Policy:
    """The `Policy` of an actor network with static part `static`: logits, or (mean, log-std)."""
    if continuous:

        def gaussian(params: Any, obs: Array) -> tuple[Array, Array]:
            arrays, log_std = params
            return jax.vmap(eqx.combine(arrays, static))(obs), log_std

        return Policy(gaussian, DiagonalGaussian())

    def logits(params: Any, obs: Array) -> Array:
        return jax.vmap(eqx.combine(params, static))(obs)

    return Policy(logits, Categorical())


def clipped_adam(learning_rate: float, cfg: MARLConfig) -> optax.GradientTransformation:
    """Adam (ε = 1e-5, the authors' code) after clipping the gradients' global norm to `max_grad_norm`."""
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(learning_rate, eps=1e-5))


def actor_optimizer(cfg: MARLConfig) -> optax.GradientTransformation:
    """The actors' optimiser: `clipped_adam(actor_lr)`."""
    return clipped_adam(cfg.actor_lr, cfg)


def critic_optimizer(cfg: MARLConfig) -> optax.GradientTransformation:
    """The critic's optimiser: `clipped_adam(critic_lr)`."""
    return clipped_adam(cfg.critic_lr, cfg)
