"""Run `reference.testing`'s conformance checks against implementations people use.

For each implementation the script declares its conventions (layout, done flags, truncation, sign,
reduction, advantage normalisation, KL inputs) and runs the check; a deviation is reported with
the shrunk counterexample. rlax and distrax are installed packages (`pip install -e
".[conformance]"` brings rlax, which brings distrax); purejaxrl, CleanRL, HARL and JaxMARL's
MAPPO baseline are scripts, so the few lines tested are vendored in
`third_party/conformance_vendored/` (origin and commit in its README.md, each project's licence
text in full beside its code).

Usage:

    python examples/conformance.py                 # prints the table
    python examples/conformance.py --write         # ... and writes docs/conformance.md
    python examples/conformance.py --examples 50   # fewer examples per check (default 200)
    python examples/conformance.py --only rlax     # rows whose implementation contains "rlax"
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

import _cli as cli  # the scripts' shared command-line helpers, beside this script
import _torch_libraries as libraries  # adapters to stable-baselines3, TorchRL and Tianshou, beside this script
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "third_party"))
from conformance_vendored import (  # the vendored lines, in the repository's third_party/
    cleanrl_ppo_jax_scan as cleanrl,
    harl_critic_buffer as harl,
    jaxmarl_mappo as jaxmarl,
    purejaxrl_ppo as purejaxrl,
)

import reference as rf
from reference.testing import (
    ConformanceError,
    Conventions,
    check_categorical_kl,
    check_discounted_returns,
    check_gae,
    check_gaussian_kl,
    check_happo_factor,
    check_happo_objective,
    check_ppo_clip,
    check_sampled_kl,
    check_sequential_factors,
    check_trpo_step,
)

HERE = pathlib.Path(__file__).resolve().parent
CHECKS = (
    "check_gae",
    "check_discounted_returns",
    "check_ppo_clip",
    "check_categorical_kl",
    "check_gaussian_kl",
    "check_sampled_kl",
    "check_trpo_step",
    "check_happo_factor",
    "check_happo_objective",
    "check_sequential_factors",
)
STRATEGIES = ("Trajectory", "trajectories", "agent_orders", "mdps", "policies", "policy_pairs", "games")

VENDORED = {
    "purejaxrl": "purejaxrl `31756b1` (purejaxrl/ppo.py)",
    "CleanRL": "CleanRL `fe8d8a0` (ppo_atari_envpool_xla_jax_scan.py)",
    "HARL": "HARL `d539bad` (on_policy_critic_buffer_ep.py)",
    "JaxMARL": "JaxMARL `c793d09` (baselines/MAPPO/mappo_rnn_mpe.py)",
    "CleanRL-torch": "CleanRL `fe8d8a0` (ppo.py, PyTorch)",
    "HARL-torch": "HARL `d539bad` (actors, HA runner, trpo_util.py; PyTorch)",
}


def _with_torch(source: str) -> str:
    """The row's source and the PyTorch it ran with; empty (row not run) without PyTorch."""
    torch = _version("torch")
    return f"{source}, {torch}" if torch else ""


def _installed(package: str) -> str:
    """An installed PyTorch library's version and the PyTorch it ran with; empty (row not run) without it."""
    version = _version(package)
    return _with_torch(version) if version else ""


def _version(package: str) -> str:
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return ""


# ------------------------------------------------------------------------------------------------
# Adapters: the canonical call of each check → the implementation's own signature
# ------------------------------------------------------------------------------------------------


def scan_gae(module: Any) -> Callable[..., Any]:
    """purejaxrl's `_calculate_gae` (JaxMARL's MAPPO copies it): a reverse scan over transitions
    holding (done, value, reward), started from the bootstrap value."""
    return lambda r, v, d, g, lam: module.calculate_gae(
        module.Transition(d, v[:-1], r), v[-1], {"GAMMA": g, "GAE_LAMBDA": lam}
    )[0]


def actor_loss(module: Any) -> Callable[..., Any]:
    """purejaxrl's actor loss (JaxMARL's MAPPO copies it), called with log-ratios log r − 0."""
    return lambda r, a, e: module.actor_loss(jnp.log(r), jnp.zeros_like(r), a, {"CLIP_EPS": e})


def _harl_buffer(
    r: np.ndarray, v: np.ndarray, ends: np.ndarray, truncated: np.ndarray, g: float, lam: float, proper: bool
):
    ones = np.ones_like(r[:1])
    return harl.CriticBuffer(
        r.copy(), v.copy(), np.concatenate([ones, 1 - ends]), np.concatenate([ones, 1 - truncated]), g, lam, proper
    )


def harl_gae(r, v, d, g, lam):
    buf = _harl_buffer(r, v, d, np.zeros_like(d), g, lam, proper=False)
    buf.compute_returns(v[-1])
    return buf.returns[:-1] - v[:-1]


def harl_gae_proper_time_limits(r, v, term, trunc, final, g, lam):
    buf = _harl_buffer(r, v, np.maximum(term, trunc), trunc, g, lam, proper=True)
    buf.compute_returns(v[-1])
    return buf.returns[:-1] - v[:-1]


def harl_returns(r, d, boot, g):
    buf = _harl_buffer(r, np.zeros((len(r) + 1, *r.shape[1:])), d, np.zeros_like(d), g, 0.0, proper=False)
    buf.compute_discounted_returns(boot)
    return buf.returns[:-1]


def _vendored_torch(name: str) -> Any:
    """A vendored PyTorch module, imported only when its row runs (PyTorch is optional)."""
    import importlib

    return importlib.import_module(f"conformance_vendored.{name}")


def _torch() -> Any:
    import torch

    return torch


def cleanrl_torch_gae(r, v, starts, last_starts, g, lam):
    """CleanRL's `dones[t]` came with observation t (1 = it starts an episode): `flags="episode_start"`."""
    return _vendored_torch("cleanrl_ppo_torch").compute_gae(r, v[:-1], starts, v[-1], last_starts, r.shape[0], g, lam)[
        0
    ]


def cleanrl_torch_pg_loss(r, a, e):
    torch = _torch()
    return _vendored_torch("cleanrl_ppo_torch").pg_loss(torch.log(r), torch.zeros_like(r), a, e)


def harl_happo_loss(r, f, a, e):
    """HARL's HAPPO actor loss on one-dimensional actions (log-probabilities log r and 0)."""
    torch = _torch()
    col = lambda x: x[:, None]  # HARL's tensors are [batch, 1]
    return _vendored_torch("harl_actor_torch").happo_policy_loss(
        col(torch.log(r)), col(torch.zeros_like(r)), col(a), col(f), e
    )


def harl_sequential_factors(order, ratios, adv):
    """HARL's runner loop; each agent's new log-probabilities are log r, the old ones 0. The factor
    it hands an agent excludes the advantage (the loss multiplies it in): multiplied here."""
    torch = _torch()
    logr = torch.log(torch.as_tensor(ratios, dtype=torch.float64))
    new = [logr[:, i : i + 1] for i in range(ratios.shape[1])]
    old = [torch.zeros_like(x) for x in new]
    handed = _vendored_torch("harl_actor_torch").sequential_factors(list(order), new, old, len(adv), 1)
    return np.stack([h.reshape(-1).astype(np.float64) * adv for h in handed])


def harl_kl(p, q):
    """HARL's discrete-action "KL": `kl_approx(old_logits, new_logits)` summed over actions (its
    `kl_divergence` sums dimension 1); torch's Categorical logits are log-probabilities."""
    return _vendored_torch("harl_actor_torch").kl_approx(p, q).sum(-1)


def harl_gaussian_kl(mp, sp, mq, sq):
    Normal = _torch().distributions.Normal
    return _vendored_torch("harl_actor_torch")._kl_normal_normal(Normal(mp, sp), Normal(mq, sq)).sum(-1)


def harl_trpo_step(g, fvp, delta):
    return _vendored_torch("harl_actor_torch").hatrpo_full_step(fvp, g, delta)


def _rlax() -> Any:
    import rlax

    return rlax


def _distrax() -> Any:
    import distrax

    return distrax


ROWS: list[tuple[str, str, str, Callable[..., None], Callable[[], Callable[..., Any]], Conventions, str]] = [
    # (implementation, quantity, version/source, check, factory of the adapted callable, conventions, declared)
    (
        "reference",
        "GAE",
        "this repository",
        check_gae,
        lambda: rf.generalized_advantage_estimate,
        Conventions(layout="single"),
        "one trajectory, done flags, truncation = termination",
    ),
    (
        "reference",
        "PPO clip (value and gradient)",
        "this repository",
        check_ppo_clip,
        lambda: rf.ppo_clip_objective,
        Conventions(),
        "per-sample objective",
    ),
    (
        "reference",
        "categorical KL",
        "this repository",
        check_categorical_kl,
        lambda: rf.kl_divergence,
        Conventions(),
        "probabilities, D_KL(first‖second)",
    ),
    (
        "reference",
        "TRPO step",
        "this repository",
        check_trpo_step,
        lambda: lambda g, fvp, d: rf.natural_gradient_step(g, fvp, d, cg_steps=20),
        Conventions(rtol=1e-7),
        "20 CG steps, rtol 1e-7",
    ),
    (
        "reference",
        "HAPPO factor M",
        "this repository",
        check_happo_factor,
        lambda: rf.happo_factor,
        Conventions(),
        "",
    ),
    (
        "rlax",
        "GAE (`truncated_generalized_advantage_estimation`)",
        _version("rlax"),
        check_gae,
        lambda: lambda r, v, disc, g, lam: _rlax().truncated_generalized_advantage_estimation(r, disc, lam, v),
        Conventions(layout="single", flags="discount"),
        "one trajectory, discounts γ(1 − d), truncation = termination",
    ),
    (
        "rlax",
        "discounted returns (`discounted_returns`)",
        _version("rlax"),
        check_discounted_returns,
        lambda: lambda r, disc, boot, g: _rlax().discounted_returns(r, disc, boot),
        Conventions(layout="single", flags="discount"),
        "one trajectory, discounts γ(1 − d)",
    ),
    (
        "rlax",
        "PPO clip (`clipped_surrogate_pg_loss`)",
        _version("rlax"),
        check_ppo_clip,
        lambda: lambda r, a, e: _rlax().clipped_surrogate_pg_loss(r, a, e),
        Conventions(sign="loss", reduction="mean"),
        "mean loss",
    ),
    (
        "rlax",
        "categorical KL (`categorical_kl_divergence`)",
        _version("rlax"),
        check_categorical_kl,
        lambda: lambda p, q: _rlax().categorical_kl_divergence(p, q),
        Conventions(kl_inputs="logits"),
        "logits, D_KL(first‖second)",
    ),
    (
        "distrax",
        "diagonal-Gaussian KL (`MultivariateNormalDiag.kl_divergence`)",
        _version("distrax"),
        check_gaussian_kl,
        lambda: (
            lambda mp, sp, mq, sq: (
                _distrax().MultivariateNormalDiag(mp, sp).kl_divergence(_distrax().MultivariateNormalDiag(mq, sq))
            )
        ),
        Conventions(scale="std"),
        "standard deviations, D_KL(first‖second)",
    ),
    (
        "purejaxrl",
        "GAE (`_calculate_gae`)",
        VENDORED["purejaxrl"],
        check_gae,
        lambda: scan_gae(purejaxrl),
        Conventions(),
        "time-major, done flags, truncation = termination",
    ),
    (
        "purejaxrl",
        "PPO actor loss",
        VENDORED["purejaxrl"],
        check_ppo_clip,
        lambda: actor_loss(purejaxrl),
        Conventions(sign="loss", reduction="mean", advantages="normalised"),
        "mean loss, advantages standardised in the loss",
    ),
    (
        "CleanRL",
        "GAE (`compute_gae`, JAX scan PPO)",
        VENDORED["CleanRL"],
        check_gae,
        lambda: lambda r, v, s, last, g, lam: cleanrl.compute_gae(s, v[:-1], r, v[-1], last, r.shape[1], g, lam),
        Conventions(flags="episode_start"),
        'time-major; its done flags mark an observation that starts an episode (`flags="episode_start"`)',
    ),
    (
        "CleanRL",
        "PPO policy loss (`ppo_loss`)",
        VENDORED["CleanRL"],
        check_ppo_clip,
        lambda: lambda r, a, e: cleanrl.pg_loss(jnp.log(r), jnp.zeros_like(r), a, e),
        Conventions(sign="loss", reduction="mean", advantages="normalised"),
        "mean loss, `norm_adv=True` (its default)",
    ),
    (
        "HARL",
        "GAE (`compute_returns`)",
        VENDORED["HARL"],
        check_gae,
        lambda: harl_gae,
        Conventions(arrays="numpy"),
        "numpy, time-major, `use_proper_time_limits=False`: truncation = termination",
    ),
    (
        "HARL",
        "GAE with `use_proper_time_limits=True`",
        VENDORED["HARL"],
        check_gae,
        lambda: harl_gae_proper_time_limits,
        Conventions(arrays="numpy", truncation="bootstrap"),
        "numpy, time-major, truncations bootstrapped",
    ),
    (
        "HARL",
        "discounted returns (`compute_returns`, `use_gae=False`)",
        VENDORED["HARL"],
        check_discounted_returns,
        lambda: harl_returns,
        Conventions(arrays="numpy"),
        "numpy, time-major, truncation = termination",
    ),
    (
        "JaxMARL",
        "MAPPO GAE (`_calculate_gae`)",
        VENDORED["JaxMARL"],
        check_gae,
        lambda: scan_gae(jaxmarl),
        Conventions(),
        "time-major, `global_done` flags, truncation = termination",
    ),
    (
        "JaxMARL",
        "MAPPO actor loss",
        VENDORED["JaxMARL"],
        check_ppo_clip,
        lambda: actor_loss(jaxmarl),
        Conventions(sign="loss", reduction="mean", advantages="normalised"),
        "mean loss, advantages standardised in the loss",
    ),
]

ROWS += [
    (
        "CleanRL",
        "GAE (PyTorch `ppo.py`)",
        _with_torch(VENDORED["CleanRL-torch"]),
        check_gae,
        lambda: cleanrl_torch_gae,
        Conventions(arrays="torch", flags="episode_start"),
        'PyTorch, time-major; done flags mark an observation that starts an episode (`flags="episode_start"`)',
    ),
    (
        "CleanRL",
        "PPO policy loss (PyTorch `ppo.py`, value and autograd gradient)",
        _with_torch(VENDORED["CleanRL-torch"]),
        check_ppo_clip,
        lambda: cleanrl_torch_pg_loss,
        Conventions(arrays="torch", sign="loss", reduction="mean", advantages="normalised_sample_std"),
        "PyTorch, mean loss, `norm_adv=True` with `torch.std`'s sample std (N − 1; NaN for a minibatch of one)",
    ),
    (
        "HARL",
        "HAPPO actor loss (`HAPPO.update`, value and autograd gradient)",
        _with_torch(VENDORED["HARL-torch"]),
        check_happo_objective,
        lambda: harl_happo_loss,
        Conventions(arrays="torch", sign="loss", reduction="mean"),
        "PyTorch, mean loss, factor·min(rA, clip(r)A) (the factor outside the min: equal, as it is > 0)",
    ),
    (
        "HARL",
        "sequential factors (`OnPolicyHARunner.train`)",
        _with_torch(VENDORED["HARL-torch"]),
        check_sequential_factors,
        lambda: harl_sequential_factors,
        Conventions(arrays="numpy", rtol=1e-6),
        "the factor excludes Â (multiplied in by the adapter); kept in float32, rtol 1e-6",
    ),
    (
        "HARL",
        "discrete-action KL (`kl_approx`, HATRPO's constraint)",
        _with_torch(VENDORED["HARL-torch"]),
        check_categorical_kl,
        lambda: harl_kl,
        Conventions(arrays="torch", kl_inputs="log_probs"),
        "PyTorch, log-probabilities (torch's normalised logits), first argument the old policy",
    ),
    (
        "HARL",
        "diagonal-Gaussian KL (`_kl_normal_normal`)",
        _with_torch(VENDORED["HARL-torch"]),
        check_gaussian_kl,
        lambda: harl_gaussian_kl,
        Conventions(arrays="torch", scale="std"),
        "PyTorch, standard deviations, D_KL(old‖new) summed over dimensions",
    ),
    (
        "HARL",
        "HATRPO step (`conjugate_gradient`, 10 steps, and the step size)",
        _with_torch(VENDORED["HARL-torch"]),
        check_trpo_step,
        lambda: harl_trpo_step,
        Conventions(arrays="torch", rtol=1e-5),
        "PyTorch; CG's iterate kept in float32 (rtol 1e-5); its Fisher product's damping 0.1·v is outside this check",
    ),
]

SB3, TORCHRL, TIANSHOU = _installed("stable-baselines3"), _installed("torchrl"), _installed("tianshou")


def float32(**fields: Any) -> Conventions:
    """`Conventions(**fields)` with the tolerance for float32 arithmetic (see `Conventions`): rtol 1e-5."""
    return Conventions(**fields, rtol=1e-5, atol=1e-6)


# conventions several rows share: TorchRL's two GAEs; a PyTorch PPO mean loss that standardises the
# advantages with the sample std (stable-baselines3's and Tianshou's, the latter also with a dual clip)
TORCHRL_GAE = float32(arrays="torch", layout="batch_major", truncation="bootstrap", flag_dtype="bool")
TORCH_PPO_LOSS = {"arrays": "torch", "sign": "loss", "reduction": "mean", "advantages": "normalised_sample_std"}

ROWS += [
    (
        "stable-baselines3",
        "GAE (`RolloutBuffer.compute_returns_and_advantage`)",
        SB3,
        check_gae,
        lambda: libraries.sb3_gae,
        float32(arrays="numpy", flags="episode_start"),
        'numpy, time-major, `episode_starts` flags (`flags="episode_start"`), float32 buffer (rtol 1e-5)',
    ),
    (
        "stable-baselines3",
        "GAE with time limits (`collect_rollouts` adds γV(terminal observation) to the reward)",
        SB3,
        check_gae,
        lambda: libraries.sb3_gae_time_limits,
        float32(arrays="numpy", truncation="bootstrap"),
        "truncations bootstrapped by the reward (that line of `collect_rollouts` in the adapter), then the buffer",
    ),
    (
        "stable-baselines3",
        "PPO clipped loss (`PPO.train`, value and autograd gradient)",
        SB3,
        check_ppo_clip,
        lambda: libraries.sb3_ppo_loss,
        float32(**TORCH_PPO_LOSS),
        "PyTorch, mean loss, `normalize_advantage=True` (sample std), float32 buffer (rtol 1e-5)",
    ),
    (
        "stable-baselines3",
        "`approx_kl` (logged by `PPO.train`)",
        SB3,
        check_sampled_kl,
        lambda: libraries.sb3_approx_kl,
        float32(arrays="torch", kl_estimator="k3", reduction="mean"),
        "k3 = (r − 1) − log r, the batch mean; float32 buffer (rtol 1e-5)",
    ),
    (
        "stable-baselines3",
        "categorical KL (`kl_divergence`, `CategoricalDistribution`)",
        SB3,
        check_categorical_kl,
        lambda: libraries.sb3_categorical_kl,
        Conventions(arrays="torch", kl_inputs="logits"),
        "PyTorch, logits, D_KL(first‖second)",
    ),
    (
        "stable-baselines3",
        "diagonal-Gaussian KL (`kl_divergence`, `DiagGaussianDistribution`)",
        SB3,
        check_gaussian_kl,
        lambda: libraries.sb3_gaussian_kl,
        Conventions(arrays="torch", scale="log_std", kl_dimensions="per_dimension"),
        'PyTorch, log-stds, one KL per dimension (`kl_dimensions="per_dimension"`)',
    ),
    (
        "TorchRL",
        "GAE (`generalized_advantage_estimate`)",
        TORCHRL,
        check_gae,
        lambda: libraries.torchrl_gae(vectorised=False),
        TORCHRL_GAE,
        "PyTorch, `[B, T, 1]`, `done`/`terminated` booleans, `next_state_value` = V(final state) at a "
        "truncation; γ and λ become float32 tensors (rtol 1e-5)",
    ),
    (
        "TorchRL",
        "GAE (`vec_generalized_advantage_estimate`)",
        TORCHRL,
        check_gae,
        lambda: libraries.torchrl_gae(vectorised=True),
        TORCHRL_GAE,
        "as the row above",
    ),
    (
        "TorchRL",
        "PPO clipped loss (`ClipPPOLoss`, value and autograd gradient)",
        TORCHRL,
        check_ppo_clip,
        lambda: libraries.torchrl_ppo_loss,
        float32(arrays="torch", sign="loss", reduction="mean"),
        "PyTorch, mean loss (its defaults: no advantage normalisation; no critic or entropy term here); "
        "its clip bounds log(1 ± ε) are float32 (rtol 1e-5)",
    ),
    (
        "TorchRL",
        "`kl_approx` (logged by `ClipPPOLoss`)",
        TORCHRL,
        check_sampled_kl,
        lambda: libraries.torchrl_kl_approx,
        Conventions(arrays="torch", kl_estimator="k1", reduction="mean"),
        "k1 = −log r, the batch mean",
    ),
    (
        "Tianshou",
        "GAE (`Algorithm.compute_episodic_return` on a `ReplayBuffer`)",
        TIANSHOU,
        check_gae,
        lambda: libraries.tianshou_gae,
        Conventions(arrays="numpy", layout="single", truncation="bootstrap"),
        "numpy, one trajectory in a `ReplayBuffer`, `v_s_` = V(obs_next) (the final state at a truncation)",
    ),
    (
        "Tianshou",
        "PPO clipped loss (`PPO._update_with_batch`, value and autograd gradient)",
        TIANSHOU,
        check_ppo_clip,
        lambda: libraries.tianshou_ppo_loss(dual_clip=None, normalise=True),
        float32(**TORCH_PPO_LOSS),
        "PyTorch, mean loss, `advantage_normalization=True` (sample std); ratios cast to float32 (rtol 1e-5)",
    ),
    (
        "Tianshou",
        "PPO loss with `dual_clip=3.0` (`PPO._update_with_batch`)",
        TIANSHOU,
        check_ppo_clip,
        lambda: libraries.tianshou_ppo_loss(dual_clip=3.0, normalise=True),
        float32(**TORCH_PPO_LOSS, dual_clip=3.0),
        "as the row above, with the dual clip max(·, 3A) where A < 0 (`dual_clip=3.0`)",
    ),
    (
        "Tianshou",
        "TRPO step (`NPG._conjugate_gradients`, `NPG._MVP` and TRPO's step size)",
        TIANSHOU,
        check_trpo_step,
        lambda: libraries.tianshou_trpo_step,
        Conventions(arrays="torch", damping=0.1, rtol=1e-4),
        "PyTorch; its Fisher product adds 0.1·v (`damping=0.1`); CG stops at ‖residual‖² < 1e-10 (rtol 1e-4)",
    ),
]

_ORDER = [
    "reference",
    "rlax",
    "distrax",
    "purejaxrl",
    "CleanRL",
    "HARL",
    "JaxMARL",
    "stable-baselines3",
    "TorchRL",
    "Tianshou",
]
ROWS.sort(key=lambda row: _ORDER.index(row[0]))  # stable: each project's rows stay in their order

#: What a deviation means, where one is known (shown in the table only if the check fails).
FINDINGS = {
    "GAE (`vec_generalized_advantage_estimate`)": (
        "**deviation**, a crash and a loss of accuracy: when γλ is 0 (λ = 0, the one-step TD "
        "advantage, or γ = 0), or rounds to 0 in float32 (γ = 1e-50), the vectorised GAE raises "
        "(`IndexError: tuple index out of range`; `index 0 is out of bounds for dimension 0 with "
        "size 0`) where `generalized_advantage_estimate` returns the TD errors; and at small γλ its "
        "advantages are off by ~1e-6 to 1e-5 (measured: 4.7e-6 at γ = λ = 0.125 over 5 steps, "
        "1.5e-6 at γ = 0.99, λ = 0.1 over 8 steps; the loop version agrees with float64 to 1e-16 "
        "and 1e-9). Minimal reproduction: `import torch; from torchrl.objectives.value.functional "
        "import vec_generalized_advantage_estimate as gae; v = torch.tensor([[[1.0], [2.0], [3.0]]]); "
        "d = torch.zeros(1, 2, 1, dtype=torch.bool); gae(0.99, 0.0, v[:, :-1], v[:, 1:], "
        "torch.full((1, 2, 1), 0.5), d, d)` raises `IndexError`."
    ),
    "GAE with `use_proper_time_limits=True`": (
        "**deviation**, an approximation: the flag promises to tell truncation from termination, "
        "but at a time-limit truncation the advantage is set to 0 (`gae = bad_masks[step + 1] * "
        "gae`) instead of bootstrapping r + γV(s_final) − V(s_t), so the truncated step carries no "
        "policy gradient and the steps before it in its episode lose the term γλÂ_t (right only at "
        "λ = 0); the buffer never sees V(s_final). With the flag off (the row above) truncation is "
        "treated as termination, which conforms to that declared convention."
    ),
    "discrete-action KL (`kl_approx`, HATRPO's constraint)": (
        "**deviation**, a different divergence: `kl_approx(p, q)` sums r − 1 − log r with "
        "r = π_new(a)/π_old(a) over every action a, unweighted, instead of the expectation "
        "Σ_a π_old(a) log(π_old(a)/π_new(a)) (the k3 estimator, which is unbiased only for a SAMPLED "
        "action, is applied to all actions at once). Both vanish when the policies agree, but "
        "the value differs, and so does the Hessian that the Fisher-vector product differentiates: "
        "in the logits it is I − 1πᵀ − π1ᵀ + |A|ππᵀ instead of the Fisher diag(π) − ππᵀ (equal up "
        "to the factor |A| at the uniform policy, not in general), so discrete HATRPO's direction is not the "
        "natural gradient and its trust region (the line search tests the same quantity against "
        "δ) is not the KL ball."
    ),
}


def run(examples: int, only: str | None) -> list[dict[str, str]]:
    rows = []
    for impl, quantity, version, check, factory, conventions, declared in ROWS:
        if only and only.lower() not in impl.lower():
            continue
        if not version:
            rows.append(
                {
                    "impl": impl,
                    "quantity": quantity,
                    "version": "not installed",
                    "declared": declared,
                    "result": "not run",
                    "detail": "install the `conformance` extra",
                }
            )
            continue
        start = time.perf_counter()
        try:
            check(factory(), conventions, max_examples=examples)
            result, detail = "conforms", ""
        except ConformanceError as e:
            result = "deviates"
            first = str(e).split("\n")[0]
            detail = (
                FINDINGS.get(quantity, "**unexpected**: no finding recorded for this row")
                + f" Counterexample: `{first}`"
            )
        seconds = time.perf_counter() - start
        print(f"{result:9} {impl:10} {quantity:55} {seconds:5.1f} s", flush=True)
        if detail:
            print(f"          {detail}", flush=True)
        rows.append(
            {
                "impl": impl,
                "quantity": quantity,
                "version": version,
                "declared": declared,
                "result": result,
                "detail": detail,
            }
        )
    return rows


def write(rows: list[dict[str, str]], examples: int, path: pathlib.Path) -> None:
    lines = [
        "---",  # no navigation column: the table needs the page's width
        "hide:",
        "  - navigation",
        "---",
        "",
        "# Conformance: other implementations checked against the math",
        "",
        "`reference.testing` turns the property sweep into a tool for any RL code: a check takes your",
        "callable and a declaration of its conventions, draws hypothesis examples (episode ends,",
        "truncations, γ and λ at their edges, policies near the simplex's edges), computes the",
        "quantity independently and either passes or raises `ConformanceError` with the equation, both",
        "values and the shrunk counterexample.",
        "",
        "## Point it at your own code (three lines)",
        "",
        "```python",
        "from reference.testing import Conventions, check_gae",
        "",
        "",
        "def test_my_gae():  # in your test suite, run by pytest",
        '    check_gae(my_gae, Conventions(arrays="numpy", layout="batch_major"))',
        "```",
        "",
        "`my_gae(rewards, values, dones, gamma, lam)` receives `[B, T]`, `[B, T + 1]`, `[B, T]` arrays",
        "here; a different signature takes a `lambda`. The checks: `check_gae`,",
        "`check_discounted_returns`, `check_ppo_clip` (value and gradient), `check_categorical_kl`,",
        "`check_gaussian_kl`, `check_sampled_kl` (PPO's `approx_kl`: the k1, k2, k3 estimators),",
        "`check_trpo_step` (direction and scale), `check_happo_factor`, `check_happo_objective` (value",
        "and gradient), `check_sequential_factors`; the conventions (`Conventions`): array type (numpy,",
        "JAX or PyTorch), layout, done, discount or episode-start flags (as floats or booleans),",
        "truncation handled as termination or bootstrapped, sign, reduction, advantage normalisation",
        "(population or sample std), PPO's dual clip, KL inputs and direction, Gaussian scale, a",
        "Gaussian KL summed or per dimension, the KL estimator, damping in the Fisher product, how a",
        "sequential pass gets its ratios, tolerance (per entry; a failure at float32 rounding says",
        "so). See the API entries below.",
        'Install: `pip install "reference-rl[testing]"` (and PyTorch for `arrays="torch"`).',
        "",
        "**Without JAX.** The checks' references are numpy, so the numpy and PyTorch checks need only",
        'numpy and hypothesis: `pip install --no-deps reference-rl && pip install "hypothesis>=6.100"',
        'numpy` (and PyTorch for `arrays="torch"`). Measured in a fresh virtual environment (Linux',
        "x86-64, Python 3.11, pip itself not counted): 89 MB installed and `import reference.testing`",
        "in 0.27 s, against 633 MB (jaxlib alone 349 MB) and 1.65 s for `pip install",
        '"reference-rl[testing]"`. Without JAX, `arrays="jax"`, the strategies that build JAX objects',
        "(`mdps`, `policies`, `policy_pairs`, `games`) and the equations of `reference` itself are",
        "unavailable; the latter say so when used.",
        "",
        "A check draws the same examples on every run (`seed=0`, the default; `seed=None` leaves the choice to",
        "hypothesis), hands your function copies of its inputs (changing them in place cannot change the",
        "report), and is called from a plain test: parametrise with `pytest.mark.parametrize`, not",
        "inside a hypothesis `@given` test (hypothesis refuses nested `@given`; the check says so). A",
        "call the check cannot make (your function's signature), a result of the wrong shape or a bad",
        "convention is a `UsageError`, told apart from a `ConformanceError`. A check leaves no files in",
        "the working directory: hypothesis's cache of your modules' constants goes to a temporary",
        "directory for the check's duration (or where `HYPOTHESIS_STORAGE_DIRECTORY` says).",
        "",
        "## The table",
        "",
        f"Regenerated by `python examples/conformance.py --write` ({examples} examples per check). A row",
        "conforms *under the conventions it declares*; a convention is not a deviation. Third-party",
        "scripts are tested through the few lines vendored in `third_party/conformance_vendored/`",
        "(origin and commit in its `README.md`, each licence in full beside the code), through an adapter written in",
        "`examples/conformance.py`. stable-baselines3, TorchRL and Tianshou are installed from the package",
        "index at the versions the `conformance` extra pins, and called through the adapters in",
        "`examples/_torch_libraries.py`: where a library computes a quantity inside a training method",
        "(stable-baselines3's PPO loss and `approx_kl`, Tianshou's PPO loss), the adapter runs that",
        "method on a stand-in policy whose log-probabilities are the check's and reads what it computed;",
        "TorchRL's `ClipPPOLoss` runs on a two-action categorical actor built from the check's ratios.",
        "A tolerance of rtol 1e-5 is declared where the library computes in float32 (its buffers, its",
        "ratios, γ as a float32 tensor).",
        "",
        "| implementation | quantity | version / source | conventions declared | result |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['impl']} | {r['quantity']} | {r['version']} | {r['declared']} | {r['result']} |")
    notes = [r for r in rows if r["detail"]]
    if notes:
        lines += ["", "## Deviations found", ""]
        for r in notes:
            lines += [f"- **{r['impl']}, {r['quantity']}**: {r['detail']}", ""]
    lines += [
        "",
        "## Not covered yet",
        "",
        "- HARL's Fisher-vector product (`fisher_vector_product`) differentiates its network twice; it",
        "  is not vendored (the network would come with it), so its damping term 0.1·v is stated, not",
        "  checked: the step it feeds solves (F + 0.1·I)x = g.",
        "- Tianshou's TRPO line search (the step it starts from is checked).",
        "- stable-baselines3's time-limit bootstrap lives in `collect_rollouts`, which steps an",
        "  environment: the adapter writes its one line (`rewards[idx] += gamma * terminal_value`) and",
        "  runs the buffer's GAE on the result.",
        "- A whole sequential HAPPO/HATRPO update is not checked end to end (its optimiser and",
        "  epochs are the implementation's own); `check_sequential_factors` checks the factors it",
        "  hands its agents in a given order, and `check_happo_factor` the product itself.",
        "",
        "## API of `reference.testing`",
        "",
        "::: reference.testing.Conventions",
        "",
        "::: reference.testing.ConformanceError",
        "",
        "::: reference.testing.UsageError",
        "",
    ]
    for name in CHECKS:
        lines += [f"::: reference.testing.{name}", ""]
    lines += ["### Strategies", ""]
    for name in STRATEGIES:
        lines += [f"::: reference.testing.{name}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = cli.OneLineParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="hypothesis examples per check (>= 1)")
    parser.add_argument("--only", help="run only rows whose implementation contains this text")
    parser.add_argument("--write", action="store_true", help="write docs/conformance.md")
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error(f"--examples must be >= 1, got {args.examples}")
    rows = run(args.examples, args.only)
    if not rows:
        parser.error(f"--only {args.only!r} matches no implementation")
    if args.write:
        write(rows, args.examples, HERE.parent / "docs" / "conformance.md")
        print("wrote docs/conformance.md")
    unexpected = [r for r in rows if "unexpected" in r["detail"]]
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
