"""Adapters from `reference.testing`'s calls to stable-baselines3, TorchRL and Tianshou.

Installed from the package index (the `conformance` extra pins them), not vendored: each
adapter calls the library's own function or method, and where the library computes a quantity
inline in a training method (stable-baselines3's PPO loss and `approx_kl`, Tianshou's PPO loss),
it runs that method on a stand-in policy whose log-probabilities are the check's, and reads what
the method computed (its logger, or the loss it hands its optimiser). What an adapter writes
itself is said in its docstring. Each library is imported only when its row runs (none of them
is installed where CI type-checks this file: hence the `pyright: ignore` on their imports).
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

import numpy as np


def _torch() -> Any:
    import torch

    return torch


# ------------------------------------------------------------------------------------------------
# stable-baselines3
# ------------------------------------------------------------------------------------------------


def sb3_gae(r, v, starts, last_starts, g, lam):
    """`RolloutBuffer.compute_returns_and_advantage` on a buffer holding the check's rollout
    (time-major `[T, B]`; its `episode_starts` and its `dones` argument are episode-start flags).
    The buffer stores float32 (its arrays' dtype)."""
    import gymnasium
    from stable_baselines3.common.buffers import RolloutBuffer  # pyright: ignore[reportMissingImports]

    T, B = r.shape
    space = gymnasium.spaces.Box(-1.0, 1.0, (1,))
    buffer = RolloutBuffer(T, space, space, device="cpu", gae_lambda=lam, gamma=g, n_envs=B)
    buffer.rewards[:] = r
    buffer.values[:] = v[:-1]
    buffer.episode_starts[:] = starts
    buffer.compute_returns_and_advantage(_torch().as_tensor(v[-1]), last_starts)
    return buffer.advantages.astype(np.float64)


def sb3_gae_time_limits(r, v, term, trunc, final, g, lam):
    """stable-baselines3 at a time limit: `OnPolicyAlgorithm.collect_rollouts` adds γ·V(terminal
    observation) to a truncated step's reward (`rewards[idx] += self.gamma * terminal_value`, that
    line written here) and stores the step as an episode end; the buffer computes the rest."""
    ends = np.maximum(term, trunc)
    starts = np.concatenate([np.zeros_like(ends[:1]), ends[:-1]])  # the first row: the previous rollout's
    return sb3_gae(r + g * trunc * final, v, starts, ends[-1], g, lam)


def sb3_categorical_kl(p, q):
    """`stable_baselines3.common.distributions.kl_divergence` of two `CategoricalDistribution`s."""
    from stable_baselines3.common.distributions import CategoricalDistribution, kl_divergence  # pyright: ignore[reportMissingImports]

    A = p.shape[-1]
    return kl_divergence(
        CategoricalDistribution(A).proba_distribution(p), CategoricalDistribution(A).proba_distribution(q)
    )


def sb3_gaussian_kl(mp, log_sp, mq, log_sq):
    """`kl_divergence` of two `DiagGaussianDistribution`s (built from means and log-stds)."""
    from stable_baselines3.common.distributions import DiagGaussianDistribution, kl_divergence  # pyright: ignore[reportMissingImports]

    D = mp.shape[-1]
    return kl_divergence(
        DiagGaussianDistribution(D).proba_distribution(mp, log_sp),
        DiagGaussianDistribution(D).proba_distribution(mq, log_sq),
    )


class _Recorded(Exception):
    """Raised by the stand-in optimiser to stop a training method once its loss is built."""


@contextlib.contextmanager
def _recording_backward():
    """Within the block, `loss.backward()` records the tensor and stops the method (no update)."""
    torch = _torch()
    seen: list[Any] = []
    original = torch.Tensor.backward

    def record(self, *args, **kwargs):
        seen.append(self)
        raise _Recorded

    torch.Tensor.backward = record  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        torch.Tensor.backward = original  # type: ignore[method-assign]


def _sb3_ppo(log_prob, old_log_prob, advantages, clip_range, *, stop_at_backward):
    """Run `PPO.train` for one minibatch holding the whole batch, on a stand-in policy whose
    `evaluate_actions` returns `log_prob` (indexed by the action, which is the sample's index: the
    buffer shuffles) and whose values and entropy are zero (`vf_coef = ent_coef = 0`). Returns the
    loss `train` built (`stop_at_backward`: stopped there, so no step is taken) and, for a run
    to its end, its logger's values."""
    import gymnasium
    import torch
    from stable_baselines3 import PPO  # pyright: ignore[reportMissingImports]
    from stable_baselines3.common.env_util import make_vec_env  # pyright: ignore[reportMissingImports]

    N = len(advantages)
    env = make_vec_env(lambda: gymnasium.make("Pendulum-v1"), n_envs=1)
    model = PPO("MlpPolicy", env, n_steps=N, batch_size=N, n_epochs=1, clip_range=clip_range, vf_coef=0.0, ent_coef=0.0)
    model.set_logger(_silent_logger())
    buffer = model.rollout_buffer
    buffer.reset()
    buffer.actions[:] = np.arange(N, dtype=np.float32)[:, None, None]
    buffer.log_probs[:] = old_log_prob.detach().numpy()[:, None]
    buffer.advantages[:] = advantages.detach().numpy()[:, None]
    buffer.returns[:] = 0.0
    buffer.values[:] = 0.0
    buffer.full = True

    def evaluate_actions(obs, actions):
        index = actions[:, 0].long()
        return torch.zeros(len(index)), log_prob[index], None

    model.policy.evaluate_actions = evaluate_actions  # type: ignore[method-assign]
    if not stop_at_backward:
        model.train()
        return None, dict(model.logger.name_to_value)
    with _recording_backward() as seen, contextlib.suppress(_Recorded):
        model.train()
    return seen[0], {}


def _silent_logger():
    from stable_baselines3.common.logger import Logger  # pyright: ignore[reportMissingImports]

    return Logger(folder=None, output_formats=[])


def sb3_ppo_loss(r, a, e):
    """stable-baselines3's `PPO.train` clipped loss (with `normalize_advantage=True`, its default)."""
    torch = _torch()
    loss, _ = _sb3_ppo(torch.log(r), torch.zeros_like(r), a, float(e), stop_at_backward=True)
    return loss


def sb3_approx_kl(log_prob, old_log_prob):
    """The `approx_kl` that `PPO.train` logs (`train/approx_kl`), from the same run."""
    torch = _torch()
    leaf = log_prob.detach().clone().requires_grad_(True)  # train() differentiates its loss
    _, values = _sb3_ppo(leaf, old_log_prob, torch.zeros_like(log_prob), 0.2, stop_at_backward=False)
    return np.asarray(values["train/approx_kl"])


# ------------------------------------------------------------------------------------------------
# TorchRL
# ------------------------------------------------------------------------------------------------


def torchrl_gae(vectorised: bool):
    """TorchRL's `generalized_advantage_estimate` (or `vec_…`), batch-major `[B, T, 1]`.

    Its `next_state_value` is V of the observation each step reached, as TorchRL's `("next",
    "state_value")` entry holds it: the final state's at a truncation, the next one's otherwise;
    `done` ends the recursion (termination or truncation), `terminated` the bootstrap."""

    def gae(r, v, term, trunc, final, g, lam):
        import torchrl.objectives.value.functional as F  # pyright: ignore[reportMissingImports]

        torch = _torch()
        fn = F.vec_generalized_advantage_estimate if vectorised else F.generalized_advantage_estimate
        next_value = torch.where(trunc, final, v[:, 1:])
        col = lambda x: x[..., None]  # TorchRL's trailing feature dimension
        advantage, _ = fn(g, lam, col(v[:, :-1]), col(next_value), col(r), col(term | trunc), col(term))
        return advantage[..., 0]

    return gae


def _torchrl_ppo(log_ratio, advantage, clip_epsilon):
    """`ClipPPOLoss` (no critic, no entropy bonus) on a two-action categorical actor built so that the
    taken action's log-probability is `log_ratio` + the stored `action_log_prob`: its probability
    is r·q with q = 1/(2·max r), so that it stays below 1."""
    import torch
    from tensordict import TensorDict  # pyright: ignore[reportMissingImports]
    from tensordict.nn import (  # pyright: ignore[reportMissingImports]
        ProbabilisticTensorDictModule,
        ProbabilisticTensorDictSequential,
        TensorDictModule,
    )
    from torchrl.objectives import ClipPPOLoss  # pyright: ignore[reportMissingImports]

    N = len(advantage)
    q = 0.5 * torch.exp(-log_ratio.detach().max())
    actor = ProbabilisticTensorDictSequential(
        [
            TensorDictModule(
                lambda p: torch.stack([torch.log(p), torch.log1p(-p)], -1), in_keys=["probability"], out_keys=["logits"]
            ),
            ProbabilisticTensorDictModule(
                in_keys=["logits"],
                out_keys=["action"],
                distribution_class=torch.distributions.Categorical,
                return_log_prob=True,
            ),
        ]
    )
    loss = ClipPPOLoss(actor, critic_network=None, clip_epsilon=clip_epsilon, entropy_bonus=False)
    data = TensorDict(
        {
            "probability": torch.exp(log_ratio) * q,
            "action": torch.zeros(N, dtype=torch.long),
            "action_log_prob": torch.log(q).expand(N).clone(),
            "advantage": advantage[:, None],
        },
        batch_size=[N],
    )
    return loss(data)


def torchrl_ppo_loss(r, a, e):
    """TorchRL's `ClipPPOLoss` `loss_objective` (its defaults: mean reduction, no normalisation)."""
    return _torchrl_ppo(_torch().log(r), a, float(e))["loss_objective"]


def torchrl_kl_approx(log_prob, old_log_prob):
    """The `kl_approx` that `ClipPPOLoss` logs, from the same loss (the batch mean)."""
    torch = _torch()
    log_ratio = log_prob - old_log_prob
    return _torchrl_ppo(log_ratio, torch.zeros_like(log_ratio), 0.2)["kl_approx"].detach()


# ------------------------------------------------------------------------------------------------
# Tianshou
# ------------------------------------------------------------------------------------------------


def tianshou_gae(r, v, term, trunc, final, g, lam):
    """`Algorithm.compute_episodic_return` on a Tianshou `ReplayBuffer` holding one trajectory.

    Its `v_s_` is V(obs_next) (obs_next the final state at a truncation), as Tianshou's on-policy
    algorithms compute it; the method masks it at terminations and treats the last step of an
    unfinished episode as an end with a bootstrap."""
    from tianshou.algorithm.algorithm_base import Algorithm  # pyright: ignore[reportMissingImports]
    from tianshou.data import Batch, ReplayBuffer  # pyright: ignore[reportMissingImports]

    T = len(r)
    buffer = ReplayBuffer(size=T)
    for t in range(T):
        step = Batch(
            obs=t,
            act=0,
            rew=float(r[t]),
            terminated=bool(term[t]),
            truncated=bool(trunc[t]),
            obs_next=t + 1,
            info=Batch(),
        )
        buffer.add(cast(Any, step))
    indices = np.arange(T)
    batch = buffer[indices]
    next_values = np.where(trunc > 0, final, v[1:])
    _, advantage = Algorithm.compute_episodic_return(
        batch, buffer, indices, v_s_=next_values, v_s=v[:-1], gamma=g, gae_lambda=lam
    )
    return advantage


class _StandIn:
    """A stand-in policy (or critic): `policy(batch).dist.log_prob(act)` returns the check's
    log-probabilities indexed by the action (the sample's index: Tianshou may shuffle)."""

    def __init__(self, log_prob: Any) -> None:
        self.log_prob_table = log_prob

    def __call__(self, batch: Any) -> Any:
        torch = _torch()
        table = self.log_prob_table
        index = torch.as_tensor(batch.act).long()

        class Dist:
            def log_prob(self, act: Any) -> Any:
                return table[torch.as_tensor(act).long()]

            def entropy(self) -> Any:
                return torch.zeros(len(index), dtype=table.dtype)

        return type("Out", (), {"dist": Dist()})()


class _HandedLoss:
    """A stand-in for Tianshou's optimiser: `step(loss)` records the loss and stops the method."""

    def __init__(self, handed: list[Any]) -> None:
        self.handed = handed

    def step(self, loss: Any) -> None:
        self.handed.append(loss)
        raise _Recorded


def tianshou_ppo_loss(dual_clip: float | None, normalise: bool):
    """Tianshou's `PPO._update_with_batch` on one minibatch: its clip loss, as handed to its
    optimiser (`vf_coef = ent_coef = 0`; a stand-in policy and critic; `__init__`'s networks and
    optimiser factory are not built, the attributes the method reads are set)."""

    def loss(r, a, e):
        import torch
        from tianshou.algorithm.modelfree.ppo import PPO  # pyright: ignore[reportMissingImports]
        from tianshou.data import Batch  # pyright: ignore[reportMissingImports]

        N = len(a)
        algo = object.__new__(PPO)
        handed: list[Any] = []
        critic_values = torch.zeros(N, dtype=torch.float64)
        fields = {
            "eps_clip": float(e),
            "dual_clip": dual_clip,
            "value_clip": False,
            "advantage_normalization": normalise,
            "recompute_adv": False,
            "vf_coef": 0.0,
            "ent_coef": 0.0,
            "_eps": 1e-8,
            "policy": _StandIn(torch.log(r)),
            "critic": lambda obs: critic_values,
            "optim": _HandedLoss(handed),
        }
        for name, value in fields.items():
            object.__setattr__(algo, name, value)
        batch = Batch(
            obs=np.zeros((N, 1)),
            act=torch.arange(N),
            adv=a,
            logp_old=torch.zeros(N, dtype=torch.float64),
            v_s=critic_values,
            returns=critic_values,
        )
        with contextlib.suppress(_Recorded):
            PPO._update_with_batch(algo, cast(Any, batch), batch_size=None, repeat=1)
        return handed[0]

    return loss


def tianshou_trpo_step(g, fvp, delta):
    """Tianshou's `NPG._conjugate_gradients` (10 steps) and `NPG._MVP` (its Fisher product, which adds
    `_damping = 0.1`·v), then TRPO's step size √(2·max_kl / dᵀ·MVP(d)) (that line of
    `TRPO._update_with_batch`, written here). Its `_MVP` differentiates the KL's gradient: here the
    gradient of ½θᵀHθ at θ = 0, H built from the check's product (n ≤ 6 calls)."""
    import torch
    from tianshou.algorithm.modelfree.npg import NPG  # pyright: ignore[reportMissingImports]

    n = len(g)
    H = torch.stack([torch.as_tensor(fvp(e), dtype=torch.float64) for e in torch.eye(n, dtype=torch.float64)], dim=1)
    theta = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    actor = torch.nn.Module()
    actor.theta = torch.nn.Parameter(theta)
    algo = object.__new__(NPG)
    object.__setattr__(algo, "_damping", 0.1)
    object.__setattr__(algo, "policy", type("Policy", (), {"actor": actor})())
    flat_kl_grad = H @ actor.theta  # the gradient of ½θᵀHθ
    direction = NPG._conjugate_gradients(algo, g.clone(), flat_kl_grad, nsteps=10)
    curvature = (direction * NPG._MVP(algo, direction, flat_kl_grad)).sum(0, keepdim=True)
    return (torch.sqrt(2 * delta / curvature) * direction).detach()
