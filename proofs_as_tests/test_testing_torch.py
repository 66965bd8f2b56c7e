"""`reference.testing` with PyTorch callables (`Conventions(arrays="torch")`).

The same two claims as for numpy and JAX, for code written in PyTorch: correct implementations —
PyTorch's own distributions among them — pass under their declared conventions, and broken ones
are caught, the gradient through `torch.autograd` included. Skipped where PyTorch is not installed
(CI installs a CPU build).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from proofs_as_tests.strategies import examples  # noqa: E402
from reference.testing import (  # noqa: E402
    ConformanceError,
    Conventions,
    check_categorical_kl,
    check_discounted_returns,
    check_gae,
    check_gaussian_kl,
    check_happo_factor,
    check_happo_objective,
    check_ppo_clip,
    check_sequential_factors,
    check_trpo_step,
)

TORCH = Conventions(arrays="torch")


def _gae(rewards, values, dones, gamma, lam, *, carry_cut=True):
    """GAE in PyTorch, time-major, a backward loop over steps."""
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * values[t + 1] * nonterminal - values[t]
        last = delta + gamma * lam * (nonterminal if carry_cut else 1.0) * last
        adv[t] = last
    return adv


def _gae_negating_bools(rewards, values, dones, gamma, lam):
    """GAE in PyTorch that negates its boolean done flags with `~` (a TypeError on float flags)."""
    alive = (~dones).to(rewards.dtype)
    return _gae(rewards, values, 1.0 - alive, gamma, lam)


def _returns(rewards, dones, bootstrap, gamma):
    out = torch.zeros_like(rewards)
    g = bootstrap
    for t in reversed(range(rewards.shape[0])):
        g = rewards[t] + gamma * (1.0 - dones[t]) * g
        out[t] = g
    return out


def _ppo_loss(ratio, adv, eps, *, unbiased=True, detach=False):
    """A mean PPO loss with the advantages standardised, as CleanRL's PyTorch scripts write it."""
    adv = (adv - adv.mean()) / (adv.std(unbiased=unbiased) + 1e-8)
    r1 = ratio.detach() if detach else ratio
    return torch.max(-adv * r1, -adv * torch.clamp(ratio, 1 - eps, 1 + eps)).mean()


def _categorical_kl(logits_p, logits_q):
    Cat = torch.distributions.Categorical
    return torch.distributions.kl_divergence(Cat(logits=logits_p), Cat(logits=logits_q))


def _gaussian_kl_torch(mp, sp, mq, sq):
    Normal = torch.distributions.Normal
    return torch.distributions.kl_divergence(Normal(mp, sp), Normal(mq, sq)).sum(-1)


def _trpo_step(g, fvp, delta, *, steps=30, scale=2.0):
    """Conjugate gradient on F x = g, then the step √(scale·δ / xᵀFx)·x."""
    x = torch.zeros_like(g)
    r, p = g.clone(), g.clone()
    rr = r @ r
    for _ in range(steps):
        if rr < 1e-30:
            break
        Fp = fvp(p)
        alpha = rr / (p @ Fp)
        x, r = x + alpha * p, r - alpha * Fp
        rr_new = r @ r
        p, rr = r + rr_new / rr * p, rr_new
    return torch.sqrt(scale * delta / (x @ fvp(x))) * x


def _sequential(order, ratios, adv, *, by_index=False):
    rows, M = [], adv.clone()
    for m, agent in enumerate(order):
        rows.append(M)
        M = M * ratios[:, m if by_index else agent]
    return torch.stack(rows)


CORRECT = {
    "gae: a PyTorch loop, time-major dones": (check_gae, _gae, TORCH),
    "gae: boolean done flags negated with ~, declared": (
        check_gae,
        _gae_negating_bools,
        Conventions(arrays="torch", flag_dtype="bool"),
    ),
    "returns: a PyTorch loop, one trajectory at a time": (
        check_discounted_returns,
        _returns,
        Conventions(arrays="torch", layout="single"),
    ),
    "ppo: CleanRL-style mean loss, sample-std advantages": (
        check_ppo_clip,
        _ppo_loss,
        Conventions(arrays="torch", sign="loss", reduction="mean", advantages="normalised_sample_std"),
    ),
    "kl: torch.distributions.Categorical from logits": (
        check_categorical_kl,
        _categorical_kl,
        Conventions(arrays="torch", kl_inputs="logits"),
    ),
    "gaussian kl: torch.distributions.Normal, summed over dimensions": (
        check_gaussian_kl,
        _gaussian_kl_torch,
        Conventions(arrays="torch", scale="std"),
    ),
    "trpo step: conjugate gradient in PyTorch": (check_trpo_step, _trpo_step, Conventions(arrays="torch", rtol=1e-7)),
    "happo factor: torch.prod": (check_happo_factor, lambda r, a: a * torch.prod(r, dim=1), TORCH),
    "happo objective: per sample": (
        check_happo_objective,
        lambda r, f, a, e: torch.min(r * f * a, torch.clamp(r, 1 - e, 1 + e) * f * a),
        TORCH,
    ),
    "sequential factors: a PyTorch loop": (check_sequential_factors, _sequential, TORCH),
}

BROKEN = {
    "gae: (1 − done) missing in the carry": (check_gae, lambda *a: _gae(*a, carry_cut=False), TORCH),
    "returns: bootstrap value ignored": (
        check_discounted_returns,
        lambda r, d, b, g: _returns(r, d, 0.0, g),
        Conventions(arrays="torch", layout="single"),
    ),
    "ppo: population std where the sample std is declared": (
        check_ppo_clip,
        lambda r, a, e: _ppo_loss(r, a, e, unbiased=False),
        Conventions(arrays="torch", sign="loss", reduction="mean", advantages="normalised_sample_std"),
    ),
    "ppo: gradient detached through the unclipped term (value right)": (
        check_ppo_clip,
        lambda r, a, e: _ppo_loss(r, a, e, detach=True),
        Conventions(arrays="torch", sign="loss", reduction="mean", advantages="normalised_sample_std"),
    ),
    "kl: direction reversed": (
        check_categorical_kl,
        lambda p, q: _categorical_kl(q, p),
        Conventions(arrays="torch", kl_inputs="logits"),
    ),
    "gaussian kl: log-std passed where std is expected": (
        check_gaussian_kl,
        _gaussian_kl_torch,
        Conventions(arrays="torch", scale="log_std"),
    ),
    "trpo step: the 2 in √(2δ/…) dropped": (check_trpo_step, lambda *a: _trpo_step(*a, scale=1.0), TORCH),
    "happo objective: the product r·factor clipped": (
        check_happo_objective,
        lambda r, f, a, e: torch.min(r * f * a, torch.clamp(r * f, 1 - e, 1 + e) * a),
        TORCH,
    ),
    "sequential factors: agents taken by index, not by the order": (
        check_sequential_factors,
        lambda o, r, a: _sequential(o, r, a, by_index=True),
        TORCH,
    ),
}


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_torch_implementations_conform(name):
    check, fn, conventions = CORRECT[name]
    check(fn, conventions, max_examples=examples(25))


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_torch_implementations_are_caught(name):
    check, fn, conventions = BROKEN[name]
    with pytest.raises(ConformanceError) as info:
        check(fn, conventions, max_examples=100)
    message = str(info.value)
    assert "violated" in message and "expected" in message and "got" in message


def test_the_torch_gradient_is_checked_not_only_the_value():
    """The detached-gradient loss has the right values: only the autograd comparison catches it."""
    conventions = Conventions(arrays="torch", sign="loss", reduction="mean", advantages="normalised_sample_std")
    with pytest.raises(ConformanceError, match="∂f/∂r"):
        check_ppo_clip(lambda r, a, e: _ppo_loss(r, a, e, detach=True), conventions, max_examples=100)


def test_a_torch_function_that_changes_its_inputs_gets_the_true_counterexample():
    """PyTorch tensors made from numpy share its memory: an in-place `mul_` on the rewards must not
    change the example the report prints (the rewards the function received on its last call)."""
    import numpy as np

    seen = []

    def rewards_then_scales_them(r, d, boot, g):  # wrong returns (G_t = r_t), and it mutates `r`
        seen.append(np.array(r.detach().numpy(), copy=True))
        out = r.clone()
        r.mul_(100.0)
        return out

    with pytest.raises(ConformanceError) as info:
        check_discounted_returns(rewards_then_scales_them, TORCH, max_examples=100)
    printed = str(info.value).split(" for rewards=")[1]
    assert printed.startswith(f"{seen[-1].tolist()},"), (seen[-1], printed[:300])
