# Vendored from HARL (https://github.com/PKU-MARL/HARL), the HATRPO/HAPPO authors' code:
# harl/common/buffers/on_policy_critic_buffer_ep.py, OnPolicyCriticBufferEP.compute_returns, at
# commit d539bad20f677bc4ce9fa200fa5de31b5f0b9d37. MIT License (setup.py); its full text is in LICENSE-HARL beside this file.
# Only the branches without a value normaliser are copied (the ValueNorm branches are the same
# recursion on denormalised values); the lines inside are the original's.
# ruff: noqa
import numpy as np


class CriticBuffer:
    def __init__(self, rewards, value_preds, masks, bad_masks, gamma, gae_lambda, use_proper_time_limits):
        self.rewards = rewards  # [T, ...]
        self.value_preds = value_preds  # [T + 1, ...]
        self.masks = masks  # [T + 1, ...]: 0 where the episode ended before this step's state
        self.bad_masks = bad_masks  # [T + 1, ...]: 0 where that end was a truncation
        self.returns = np.zeros_like(value_preds)
        self.gamma = gamma
        self.gae_lambda = gae_lambda
        self.use_proper_time_limits = use_proper_time_limits

    def compute_returns(self, next_value):
        if (
            self.use_proper_time_limits
        ):  # consider the difference between truncation and termination
            self.value_preds[-1] = next_value
            gae = 0
            for step in reversed(range(self.rewards.shape[0])):
                delta = (
                    self.rewards[step]
                    + self.gamma
                    * self.value_preds[step + 1]
                    * self.masks[step + 1]
                    - self.value_preds[step]
                )
                gae = (
                    delta
                    + self.gamma * self.gae_lambda * self.masks[step + 1] * gae
                )
                gae = self.bad_masks[step + 1] * gae
                self.returns[step] = gae + self.value_preds[step]
        else:  # do not consider the difference between truncation and termination, i.e. all done episodes are terminated
            self.value_preds[-1] = next_value
            gae = 0
            for step in reversed(range(self.rewards.shape[0])):
                delta = (
                    self.rewards[step]
                    + self.gamma
                    * self.value_preds[step + 1]
                    * self.masks[step + 1]
                    - self.value_preds[step]
                )
                gae = (
                    delta
                    + self.gamma * self.gae_lambda * self.masks[step + 1] * gae
                )
                self.returns[step] = gae + self.value_preds[step]

    def compute_discounted_returns(self, next_value):  # compute_returns with use_gae=False
        if self.use_proper_time_limits:
            self.returns[-1] = next_value
            for step in reversed(range(self.rewards.shape[0])):
                self.returns[step] = (
                    self.returns[step + 1] * self.gamma * self.masks[step + 1]
                    + self.rewards[step]
                ) * self.bad_masks[step + 1] + (
                    1 - self.bad_masks[step + 1]
                ) * self.value_preds[
                    step
                ]
        else:
            self.returns[-1] = next_value
            for step in reversed(range(self.rewards.shape[0])):
                self.returns[step] = (
                    self.returns[step + 1] * self.gamma * self.masks[step + 1]
                    + self.rewards[step]
                )
