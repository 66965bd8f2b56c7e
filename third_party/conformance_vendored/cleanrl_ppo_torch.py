# Vendored from CleanRL (https://github.com/vwxyzjn/cleanrl), cleanrl/ppo.py (the PyTorch PPO
# script) at commit fe8d8a03c41a7ef5b523e2e354bd01c363e786bb.
# MIT License (© 2019 Costa Huang); its full text is in LICENSE-CleanRL beside this file.
# The lines inside each function are the original's (the critic call that produced next_value and
# the storage tensors are replaced by arguments; `args.x` becomes the argument `x`); the wrapping
# functions are ours.
# ruff: noqa
import torch


def compute_gae(rewards, values, dones, next_value, next_done, num_steps, gamma, gae_lambda, device="cpu"):
    # bootstrap value if not done
    with torch.no_grad():
        next_value = next_value.reshape(1, -1)
        advantages = torch.zeros_like(rewards).to(device)
        lastgaelam = 0
        for t in reversed(range(num_steps)):
            if t == num_steps - 1:
                nextnonterminal = 1.0 - next_done
                nextvalues = next_value
            else:
                nextnonterminal = 1.0 - dones[t + 1]
                nextvalues = values[t + 1]
            delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
            advantages[t] = lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
        returns = advantages + values
    return advantages, returns


def pg_loss(newlogprob, b_logprobs, mb_advantages, clip_coef, norm_adv=True):
    logratio = newlogprob - b_logprobs
    ratio = logratio.exp()

    if norm_adv:
        mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

    # Policy loss
    pg_loss1 = -mb_advantages * ratio
    pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    pg_loss = torch.max(pg_loss1, pg_loss2).mean()
    return pg_loss
