# Vendored from purejaxrl (https://github.com/luchris429/purejaxrl), purejaxrl/ppo.py at commit
# 31756b197773a52db763fdbe6d635e4b46522a73. Apache License 2.0 (© Chris Lu); its full text is in LICENSE-purejaxrl beside this file.
# The lines inside each function are the original's; the wrapping functions are ours.
# ruff: noqa
import jax
import jax.numpy as jnp
from typing import NamedTuple


class Transition(NamedTuple):
    done: jnp.ndarray
    value: jnp.ndarray
    reward: jnp.ndarray


def calculate_gae(traj_batch, last_val, config):
    def _calculate_gae(traj_batch, last_val):
        def _get_advantages(gae_and_next_value, transition):
            gae, next_value = gae_and_next_value
            done, value, reward = (
                transition.done,
                transition.value,
                transition.reward,
            )
            delta = reward + config["GAMMA"] * next_value * (1 - done) - value
            gae = (
                delta
                + config["GAMMA"] * config["GAE_LAMBDA"] * (1 - done) * gae
            )
            return (gae, value), gae

        _, advantages = jax.lax.scan(
            _get_advantages,
            (jnp.zeros_like(last_val), last_val),
            traj_batch,
            reverse=True,
            unroll=16,
        )
        return advantages, advantages + traj_batch.value

    return _calculate_gae(traj_batch, last_val)


def actor_loss(log_prob, old_log_prob, gae, config):
    # CALCULATE ACTOR LOSS
    ratio = jnp.exp(log_prob - old_log_prob)
    gae = (gae - gae.mean()) / (gae.std() + 1e-8)
    loss_actor1 = ratio * gae
    loss_actor2 = (
        jnp.clip(
            ratio,
            1.0 - config["CLIP_EPS"],
            1.0 + config["CLIP_EPS"],
        )
        * gae
    )
    loss_actor = -jnp.minimum(loss_actor1, loss_actor2)
    loss_actor = loss_actor.mean()
    return loss_actor
