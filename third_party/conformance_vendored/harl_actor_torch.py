# Vendored from HARL (https://github.com/PKU-MARL/HARL), the HATRPO/HAPPO authors' code, at commit
# d539bad20f677bc4ce9fa200fa5de31b5f0b9d37. MIT License (setup.py); its full text is in LICENSE-HARL beside this file.
# From harl/algorithms/actors/happo.py (HAPPO.update: the loss, branch use_policy_active_masks=False),
# harl/runners/on_policy_ha_runner.py (OnPolicyHARunner.train: the agent order and the factor),
# harl/utils/trpo_util.py (kl_approx, _kl_normal_normal, conjugate_gradient) and
# harl/algorithms/actors/hatrpo.py (HATRPO.update: the step's scale).
# The lines inside each function are the original's; the wrapping functions are ours, with
# `self.x` as the argument `x`, the network's log-probabilities as arguments, and the Fisher-vector
# product (whose network call is replaced) as the argument `fisher_vector_product`.
# ruff: noqa
import numpy as np
import torch


def happo_policy_loss(action_log_probs, old_action_log_probs_batch, adv_targ, factor_batch, clip_param,
                      action_aggregation="prod"):
    # actor update
    imp_weights = getattr(torch, action_aggregation)(
        torch.exp(action_log_probs - old_action_log_probs_batch),
        dim=-1,
        keepdim=True,
    )
    surr1 = imp_weights * adv_targ
    surr2 = (
        torch.clamp(imp_weights, 1.0 - clip_param, 1.0 + clip_param)
        * adv_targ
    )

    policy_action_loss = -torch.sum(
        factor_batch * torch.min(surr1, surr2), dim=-1, keepdim=True
    ).mean()
    return policy_action_loss


def sequential_factors(agent_order, new_actions_logprobs, old_actions_logprobs, episode_length,
                       n_rollout_threads, action_aggregation="prod"):
    """Returns the factor each agent was handed, in update order (the runner saves it with
    `self.actor_buffer[agent_id].update_factor(factor)`; here it is appended to a list)."""
    handed = []
    # factor is used for considering updates made by previous agents
    factor = np.ones(
        (
            episode_length,
            n_rollout_threads,
            1,
        ),
        dtype=np.float32,
    )
    for agent_id in agent_order:
        handed.append(factor.copy())  # self.actor_buffer[agent_id].update_factor(factor)
        new_actions_logprob = new_actions_logprobs[agent_id]  # the updated actor's evaluate_actions
        old_actions_logprob = old_actions_logprobs[agent_id]  # the actor's evaluate_actions before
        # update factor for next agent
        factor = factor * _t2n(
            getattr(torch, action_aggregation)(
                torch.exp(new_actions_logprob - old_actions_logprob), dim=-1
            ).reshape(
                episode_length,
                n_rollout_threads,
                1,
            )
        )
    return handed


def _t2n(value):  # harl/utils/trans_tools.py
    """Convert torch.Tensor to numpy.ndarray."""
    return value.detach().cpu().numpy()


def kl_approx(p, q):
    """KL divergence between two distributions."""
    r = torch.exp(q - p)
    kl = r - 1 - q + p
    return kl


def _kl_normal_normal(p, q):
    """KL divergence between two normal distributions.
    adapted from https://pytorch.org/docs/stable/_modules/torch/distributions/kl.html#kl_divergence
    """
    var_ratio = (p.scale.to(torch.float64) / q.scale.to(torch.float64)).pow(2)
    t1 = (
        (p.loc.to(torch.float64) - q.loc.to(torch.float64)) / q.scale.to(torch.float64)
    ).pow(2)
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


def conjugate_gradient(fisher_vector_product, b, nsteps, device="cpu", residual_tol=1e-10):
    """Conjugate gradient algorithm.
    # refer to https://github.com/openai/baselines/blob/master/baselines/common/cg.py
    """
    x = torch.zeros(b.size()).to(device=device)
    r = b.clone()
    p = b.clone()
    rdotr = torch.dot(r, r)
    for _ in range(nsteps):
        _Avp = fisher_vector_product(p)
        alpha = rdotr / torch.dot(p, _Avp)
        x += alpha * p
        r -= alpha * _Avp
        new_rdotr = torch.dot(r, r)
        betta = new_rdotr / rdotr
        p = r + betta * p
        rdotr = new_rdotr
        if rdotr < residual_tol:
            break
    return x


def hatrpo_full_step(fisher_vector_product, loss_grad, kl_threshold):
    step_dir = conjugate_gradient(fisher_vector_product, loss_grad.data, nsteps=10)
    fvp = fisher_vector_product(step_dir)
    shs = 0.5 * (step_dir * fvp).sum(0, keepdim=True)
    step_size = 1 / torch.sqrt(shs / kl_threshold)[0]
    full_step = step_size * step_dir
    return full_step
