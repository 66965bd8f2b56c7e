# Vendored from CleanRL (https://github.com/vwxyzjn/cleanrl),
# cleanrl/ppo_atari_envpool_xla_jax_scan.py at commit fe8d8a03c41a7ef5b523e2e354bd01c363e786bb.
# MIT License (© 2019 Costa Huang); its full text is in LICENSE-CleanRL beside this file.
# The lines inside each function are the original's (the critic call that produced next_value
# is replaced by the argument); the wrapping functions are ours.
# ruff: noqa
from functools import partial

import jax
import jax.numpy as jnp


def compute_gae(storage_dones, storage_values, storage_rewards, next_value, next_done, num_envs, gamma, gae_lambda):
    def compute_gae_once(carry, inp, gamma, gae_lambda):
        advantages = carry
        nextdone, nextvalues, curvalues, reward = inp
        nextnonterminal = 1.0 - nextdone

        delta = reward + gamma * nextvalues * nextnonterminal - curvalues
        advantages = delta + gamma * gae_lambda * nextnonterminal * advantages
        return advantages, advantages

    compute_gae_once = partial(compute_gae_once, gamma=gamma, gae_lambda=gae_lambda)

    advantages = jnp.zeros((num_envs,))
    dones = jnp.concatenate([storage_dones, next_done[None, :]], axis=0)
    values = jnp.concatenate([storage_values, next_value[None, :]], axis=0)
    _, advantages = jax.lax.scan(
        compute_gae_once, advantages, (dones[1:], values[1:], values[:-1], storage_rewards), reverse=True
    )
    return advantages


def pg_loss(newlogprob, logp, mb_advantages, clip_coef, norm_adv=True):
    logratio = newlogprob - logp
    ratio = jnp.exp(logratio)

    if norm_adv:
        mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

    # Policy loss
    pg_loss1 = -mb_advantages * ratio
    pg_loss2 = -mb_advantages * jnp.clip(ratio, 1 - clip_coef, 1 + clip_coef)
    pg_loss = jnp.maximum(pg_loss1, pg_loss2).mean()
    return pg_loss
