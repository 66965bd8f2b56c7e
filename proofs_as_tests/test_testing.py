"""`reference.testing`: the conformance checks' own proofs.

1. Each check's reference computation is right: proved against an independent computation (the
   λ-return sum for the GAE recursion, the discounted sum for the returns, quadrature for the
   Gaussian KL, the ellipsoid's maximiser for the TRPO step, finite differences for the PPO
   gradient).
2. Each check passes correct code — ours and implementations written differently — under every
   convention it declares (no false failure), and
3. catches a catalogue of deliberately broken implementations, each a bug people make.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np
import pytest
import scipy.integrate
from hypothesis import given, strategies as st

import reference as rf
from proofs_as_tests.strategies import at_most, examples
from reference.testing import (
    ConformanceError,
    Conventions,
    UsageError,
    agent_orders,
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
    reference_categorical_kl,
    reference_gae,
    reference_gaussian_kl,
    reference_kl_estimate,
    reference_natural_step,
    reference_ppo_clip,
    reference_returns,
    trajectories,
)

# ------------------------------------------------------------------------------------------------
# 1. The references are right
# ------------------------------------------------------------------------------------------------


def _episode_sums(traj, truncation):
    """Â_t = Σ_l (γλ)^l δ_{t+l} and G_t = Σ_k γ^k r_{t+k} (+ the bootstrap), summed FORWARD from t to
    the episode's end — not the backward recursion the references use."""
    T, B = traj.rewards.shape
    term = traj.terminations.copy()
    trunc = traj.truncations.copy()
    if truncation == "as_termination":
        term, trunc = np.maximum(term, trunc), np.zeros_like(trunc)
    g, lam = traj.gamma, traj.lam
    adv, ret = np.zeros((T, B)), np.zeros((T, B))
    for b in range(B):
        for t in range(T):
            a = r = 0.0
            for k in range(t, T):
                if trunc[k, b]:
                    v_next, tail = traj.final_values[k, b], traj.final_values[k, b]
                elif term[k, b]:
                    v_next, tail = 0.0, 0.0
                else:
                    v_next, tail = traj.values[k + 1, b], traj.values[T, b]
                delta = traj.rewards[k, b] + g * v_next - traj.values[k, b]
                a += (g * lam) ** (k - t) * delta
                r += g ** (k - t) * traj.rewards[k, b]
                ended = term[k, b] or trunc[k, b]
                if ended or k == T - 1:
                    r += g ** (k - t + 1) * tail
                    break
            adv[t, b], ret[t, b] = a, r
    return adv, ret


@given(trajectories(), st.sampled_from(["as_termination", "bootstrap"]))
def test_reference_gae_and_returns_are_the_forward_sums(traj, truncation):
    """The checks' GAE and returns (backward recursions) equal the forward sums
    Â_t = Σ_{l} (γλ)^l δ_{t+l} and G_t = Σ_k γ^k r_{t+k} + γ^{K}·(bootstrap), each to the episode's end."""
    adv, ret = _episode_sums(traj, truncation)
    np.testing.assert_allclose(reference_gae(traj, truncation), adv, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reference_returns(traj, truncation), ret, rtol=1e-12, atol=1e-12)


@at_most(40)  # each new T compiles the library's GAE once
@given(trajectories(truncations=False))
def test_reference_gae_is_the_librarys(traj):
    """Without truncations the checks' GAE equals `generalized_advantage_estimate`, column by column."""
    for b in range(traj.rewards.shape[1]):
        ours = rf.generalized_advantage_estimate(
            traj.rewards[:, b], traj.values[:, b], traj.terminations[:, b], traj.gamma, traj.lam
        )
        np.testing.assert_allclose(reference_gae(traj, "bootstrap")[:, b], ours, rtol=1e-12, atol=1e-12)


@at_most(10)
@given(st.integers(0, 2**32 - 1))
def test_reference_gaussian_kl_is_the_integral(seed):
    """The closed-form diagonal-Gaussian KL equals ∫ p log(p/q) by quadrature, dimension by dimension
    (the KL of a product of independent factors is the sum of the factors' KLs)."""
    rng = np.random.default_rng(seed)
    mp, mq = rng.normal(0, 1, (1, 2)), rng.normal(0, 1, (1, 2))
    sp, sq = np.exp(rng.normal(0, 0.5, (1, 2))), np.exp(rng.normal(0, 0.5, (1, 2)))
    total = 0.0
    for d in range(2):

        def integrand(x, d=d):
            logp = -0.5 * ((x - mp[0, d]) / sp[0, d]) ** 2 - np.log(sp[0, d] * np.sqrt(2 * np.pi))
            logq = -0.5 * ((x - mq[0, d]) / sq[0, d]) ** 2 - np.log(sq[0, d] * np.sqrt(2 * np.pi))
            return np.exp(logp) * (logp - logq)

        total += scipy.integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-12)[0]
    np.testing.assert_allclose(reference_gaussian_kl(mp, sp, mq, sq)[0], total, rtol=1e-9, atol=1e-12)


@at_most(30)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.sampled_from([1e-3, 0.1]), st.sampled_from([0.0, 0.1, 1.0]))
def test_reference_natural_step_maximises_on_the_ellipsoid(seed, n, delta, damping):
    """The checks' TRPO step lies on ½dᵀFd = δ, F = H + λI (λ the declared damping), and beats every
    other boundary point's gᵀd (the ellipsoid of the damped Fisher, as a damped CG step uses)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n))
    H = X @ X.T + 0.1 * np.eye(n)
    F = H + damping * np.eye(n)
    g = rng.normal(size=n)
    d = reference_natural_step(g, H, delta, damping)
    np.testing.assert_allclose(0.5 * d @ F @ d, delta, rtol=1e-10)
    for _ in range(200):
        u = rng.normal(size=n)
        u *= np.sqrt(2 * delta / (u @ F @ u))
        assert g @ u <= g @ d + 1e-12


@given(st.integers(0, 2**32 - 1), st.sampled_from([0.1, 0.2]), st.sampled_from([None, 1.5, 3.0]))
def test_reference_ppo_clip_by_numpy_and_finite_differences(seed, eps, dual_clip):
    """The checks' PPO value is numpy's min(rA, clip(r)A) (with a dual clip c: Tianshou's
    where(A < 0, max(min(rA, clip(r)A), cA), …)); its derivative is the central difference."""
    rng = np.random.default_rng(seed)
    r, a = np.exp(rng.normal(0, 1.0, 40)), rng.normal(0, 1, 40)
    value, grad = reference_ppo_clip(r, a, eps, dual_clip)

    def f(r):
        clipped = np.minimum(r * a, np.clip(r, 1 - eps, 1 + eps) * a)
        return clipped if dual_clip is None else np.where(a < 0, np.maximum(clipped, dual_clip * a), clipped)

    np.testing.assert_allclose(value, f(r), rtol=1e-15, atol=0)
    h = 1e-6
    kinks = [1 - eps, 1 + eps] + ([dual_clip] if dual_clip is not None else [])
    away = np.all([np.abs(r - k) > 1e-4 for k in kinks], axis=0)
    fd = (f(r + h) - f(r - h)) / (2 * h)
    np.testing.assert_allclose(grad[away], fd[away], rtol=1e-6, atol=1e-8)


def _categorical_pair(seed, A, uniform_old=False):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (2, A))
    p, q = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return (np.full(A, 1 / A) if uniform_old else p), q


@given(st.integers(0, 2**32 - 1), st.integers(2, 6), st.sampled_from(["k1", "k3"]))
def test_unbiased_kl_estimates_average_to_the_kl_under_the_old_policy(seed, A, estimator):
    """E_{a∼π_old}[k(a)] = D_KL(π_old‖π_new) for k1 = −log r and k3 = (r − 1) − log r: the
    estimate at every action, weighted by π_old, against the KL's closed sum Σ p log(p/q)."""
    p, q = _categorical_pair(seed, A)
    k = reference_kl_estimate(np.log(q), np.log(p), estimator)
    np.testing.assert_allclose(np.sum(p * k), reference_categorical_kl(p[None], q[None])[0], rtol=1e-10, atol=1e-15)


@given(st.integers(0, 2**32 - 1), st.integers(2, 6))
def test_k2_agrees_with_the_kl_to_second_order(seed, A):
    """k2 = ½(log r)² is biased, and only at third order: for π_new ∝ π_old·exp(εz),
    E_old[k2] − KL = −E_old[(log r)³]/6 + O(ε⁴), the Taylor expansion of E_old[r] = 1."""
    p, _ = _categorical_pair(seed, A)
    z = np.random.default_rng(seed + 1).normal(0, 1, A)
    zeros = np.zeros(A)
    for eps in (1e-2, 2e-3):
        # log r = εz − log Σ p e^{εz}, without the cancellation of log q − log p (the estimates
        # depend on the log-probabilities only through their difference)
        log_r = eps * z - np.log1p(np.sum(p * np.expm1(eps * z)))
        kl = np.sum(p * reference_kl_estimate(log_r, zeros, "k1"))  # the KL (the test above)
        gap = np.sum(p * reference_kl_estimate(log_r, zeros, "k2")) - kl
        third = -np.sum(p * log_r**3) / 6
        fourth = np.max(np.abs(log_r)) ** 4
        assert abs(gap - third) <= fourth, (eps, gap, third)


@given(st.integers(0, 2**32 - 1), st.integers(2, 6))
def test_k3_summed_over_all_actions_is_not_the_kl(seed, A):
    """Summed over every action, unweighted (HARL's discrete `kl_approx`), k3 is |A|·D_KL(π_old‖π_new)
    when π_old is uniform (and no multiple of the KL in general: `check_categorical_kl` catches it)."""
    p, q = _categorical_pair(seed, A, uniform_old=True)
    summed = np.sum(reference_kl_estimate(np.log(q), np.log(p), "k3"))
    np.testing.assert_allclose(summed, A * reference_categorical_kl(p[None], q[None])[0], rtol=1e-10, atol=1e-15)


@given(st.integers(1, 5), st.data())
def test_agent_orders_are_permutations(n, data):
    order = data.draw(agent_orders(n))
    assert sorted(order) == list(range(n))


# ------------------------------------------------------------------------------------------------
# 2. Correct implementations pass, under every declared convention
# ------------------------------------------------------------------------------------------------

_gae_batched = jax.vmap(rf.generalized_advantage_estimate, in_axes=(1, 1, 1, None, None), out_axes=1)


def _gae_numpy_discounts(r, v, disc, gamma, lam):
    """A GAE written in numpy on per-step discounts γ_t = γ(1 − d_t), batch-major [B, T]."""
    adv = np.zeros_like(r)
    carry = np.zeros(r.shape[0])
    for t in reversed(range(r.shape[1])):
        delta = r[:, t] + disc[:, t] * v[:, t + 1] - v[:, t]
        carry = delta + lam * disc[:, t] * carry
        adv[:, t] = carry
    return adv


def _gae_with_truncation(r, v, term, trunc, final, gamma, lam):
    """GAE that bootstraps a truncated step with V of the state it reached (time-major, JAX)."""
    v_next = jnp.where(trunc > 0, final, v[1:])
    deltas = r + gamma * (1 - term) * v_next - v[:-1]
    decay = gamma * lam * (1 - term) * (1 - trunc)

    def step(carry, x):
        d, k = x
        carry = d + k * carry
        return carry, carry

    return jax.lax.scan(step, jnp.zeros(r.shape[1]), (deltas, decay), reverse=True)[1]


def _gae_sb3(r, v, episode_starts, last_episode_starts, gamma, lam, *, last_from_starts=False):
    """stable-baselines3's `RolloutBuffer.compute_returns_and_advantage` loop (numpy, time-major):
    `episode_starts[t + 1]` ends step t, the argument `dones` (here `last_episode_starts`) the last
    step. `last_from_starts` reads the last step's flag from `episode_starts[0]` (a bug)."""
    T = r.shape[0]
    adv, last = np.zeros_like(r), 0.0
    for t in reversed(range(T)):
        if t == T - 1:
            non_terminal = 1.0 - (episode_starts[0] if last_from_starts else last_episode_starts)
        else:
            non_terminal = 1.0 - episode_starts[t + 1]
        delta = r[t] + gamma * v[t + 1] * non_terminal - v[t]
        last = delta + gamma * lam * non_terminal * last
        adv[t] = last
    return adv


def _returns_from_starts(r, starts, last_starts, boot, gamma):
    """Discounted returns on episode-start flags (one trajectory, numpy)."""
    ends = np.append(starts[1:], last_starts)
    return _returns_numpy(r, ends, boot, gamma)


def _gae_negating_bools(r, v, d, gamma, lam):
    """A GAE that negates its done flags with `~` (meaningful for booleans only), time-major JAX."""
    alive = (~d).astype(r.dtype)
    deltas = r + gamma * alive * v[1:] - v[:-1]

    def step(carry, x):
        delta, a = x
        carry = delta + gamma * lam * a * carry
        return carry, carry

    return jax.lax.scan(step, jnp.zeros(r.shape[1]), (deltas, alive), reverse=True)[1]


def _sequential_pass(order, old, adv, update, *, stale=False, by_index=False):
    """A sequential HAPPO pass as HARL writes it: each agent is updated on the factor, then the
    factor is multiplied by its new/old ratio. `stale` forms the ratio from log-probabilities read
    BEFORE the update (the old policy: ratio 1); `by_index` updates the agents 0, 1, … whatever
    the order."""
    M = np.array(adv)
    for i in range(len(order)) if by_index else order:
        before = np.array(old[:, i])  # the current policy's log-probabilities, read before the update
        new = np.asarray(update(i, M))
        M = M * np.exp((before if stale else new) - old[:, i])
    return None


def _returns_numpy(r, d, boot, gamma):
    out, g = np.zeros_like(r), boot
    for t in reversed(range(len(r))):
        g = r[t] + gamma * (1 - d[t]) * g
        out[t] = g
    return out


def _ppo_loss_mean(r, a, eps):
    return -jnp.mean(jnp.minimum(r * a, jnp.clip(r, 1 - eps, 1 + eps) * a))


def _ppo_numpy_normalised(r, a, eps, ddof):
    a = (a - a.mean()) / (a.std(ddof=ddof) + 1e-8)
    return -np.mean(np.minimum(r * a, np.clip(r, 1 - eps, 1 + eps) * a))


def _kl_from_log_probs_reversed(logq, logp):
    """D_KL(second‖first) computed from log-probabilities: the reversed-argument convention."""
    return jnp.sum(jnp.exp(logp) * (logp - logq), -1)


def _gaussian_kl_std(mp, sp, mq, sq):
    return np.sum(np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5, -1)


def _ppo_dual_clip(r, a, eps, dual=3.0, reduce=True):
    """Tianshou's PPO loss with `dual_clip` (JAX): clip1 = min(rA, clip(r)A), clip2 = max(clip1, cA),
    −mean(where(A < 0, clip2, clip1))."""
    clip1 = jnp.minimum(r * a, jnp.clip(r, 1 - eps, 1 + eps) * a)
    clip2 = jnp.maximum(clip1, dual * a)
    out = jnp.where(a < 0, clip2, clip1)
    return -jnp.mean(out) if reduce else -out


def _gaussian_kl_variance_ratio(mp, sp, mq, sq):
    """Each dimension's KL as torch.distributions writes it: ½(v + t − 1 − log v), v = (σ_p/σ_q)²,
    t = ((μ_p − μ_q)/σ_q)²."""
    v = (sp / sq) ** 2
    t = ((mp - mq) / sq) ** 2
    return 0.5 * (v + t - 1 - np.log(v))


def _numpy_step(g, fvp, delta, *, direction_damping, scale_damping):
    """A dense TRPO step in numpy whose direction solves (H + λ₁I)x = g and whose scale uses
    xᵀ(H + λ₂I)x (no compilation per drawn size: the failing runs shrink quickly)."""
    H = np.stack([fvp(e) for e in np.eye(len(g))], axis=1)
    x = np.linalg.solve(H + direction_damping * np.eye(len(g)), g)
    return np.sqrt(2 * delta / (x @ (H + scale_damping * np.eye(len(g))) @ x)) * x


def _natural_step_by_cg(g, fvp, delta):
    x = jax.scipy.sparse.linalg.cg(fvp, g, tol=1e-13, maxiter=50)[0]
    return jnp.sqrt(2 * delta / (x @ fvp(x))) * x


CORRECT = {
    "gae: ours (vmapped), time-major dones": (
        check_gae,
        lambda r, v, d, g, lam: _gae_batched(r, v, d, g, lam),
        Conventions(),
    ),
    "gae: numpy, batch-major discounts": (
        check_gae,
        _gae_numpy_discounts,
        Conventions(arrays="numpy", layout="batch_major", flags="discount"),
    ),
    "gae: truncations bootstrapped": (check_gae, _gae_with_truncation, Conventions(truncation="bootstrap")),
    "gae: ours, one trajectory at a time": (
        check_gae,
        rf.generalized_advantage_estimate,
        Conventions(layout="single"),
    ),
    "gae: stable-baselines3's loop on episode-start flags": (
        check_gae,
        _gae_sb3,
        Conventions(arrays="numpy", flags="episode_start"),
    ),
    "gae: boolean done flags negated with ~, declared": (
        check_gae,
        _gae_negating_bools,
        Conventions(flag_dtype="bool"),
    ),
    "returns: numpy on episode-start flags, one trajectory at a time": (
        check_discounted_returns,
        _returns_from_starts,
        Conventions(arrays="numpy", layout="single", flags="episode_start"),
    ),
    "returns: numpy, one trajectory at a time": (
        check_discounted_returns,
        _returns_numpy,
        Conventions(arrays="numpy", layout="single"),
    ),
    "ppo: ours per sample": (check_ppo_clip, rf.ppo_clip_objective, Conventions()),
    "ppo: a mean loss": (check_ppo_clip, _ppo_loss_mean, Conventions(sign="loss", reduction="mean")),
    "kl: ours on probabilities": (check_categorical_kl, rf.kl_divergence, Conventions()),
    "kl: reversed arguments from log-probabilities, declared": (
        check_categorical_kl,
        _kl_from_log_probs_reversed,
        Conventions(kl_inputs="log_probs", kl_direction="second_first"),
    ),
    "gaussian kl: numpy on standard deviations": (
        check_gaussian_kl,
        _gaussian_kl_std,
        Conventions(arrays="numpy", scale="std"),
    ),
    "trpo step: ours": (
        check_trpo_step,
        lambda g, f, d: rf.natural_gradient_step(g, f, d, cg_steps=20),
        Conventions(rtol=1e-7),
    ),
    "trpo step: jax.scipy CG": (check_trpo_step, _natural_step_by_cg, Conventions(rtol=1e-7)),
    "happo factor: ours": (check_happo_factor, rf.happo_factor, Conventions()),
    "sequential factors: ours, happo_factor on the earlier agents' ratios": (
        check_sequential_factors,
        lambda order, r, a: jnp.stack(
            [rf.happo_factor(r[:, jnp.asarray(order[:m], dtype=int)], a) for m in range(len(order))]
        ),
        Conventions(),
    ),
    "sequential factors: a pass that calls the agents' updates, numpy": (
        check_sequential_factors,
        _sequential_pass,
        Conventions(arrays="numpy", sequential="update"),
    ),
    "sequential factors: a pass that calls the agents' updates, JAX": (
        check_sequential_factors,
        lambda order, old, adv, update: _sequential_pass(order, np.asarray(old), np.asarray(adv), update),
        Conventions(sequential="update"),
    ),
    "happo objective: ours on M = factor·A": (
        check_happo_objective,
        lambda r, f, a, e: rf.happo_objective(r, f * a, e),
        Conventions(),
    ),
    "happo objective: the factor outside the min (HARL's form), a mean loss": (
        check_happo_objective,
        lambda r, f, a, e: -jnp.mean(f * jnp.minimum(r * a, jnp.clip(r, 1 - e, 1 + e) * a)),
        Conventions(sign="loss", reduction="mean"),
    ),
    "ppo: numpy, advantages standardised with the sample std": (
        check_ppo_clip,
        lambda r, a, e: _ppo_numpy_normalised(r, a, e, ddof=1),
        Conventions(arrays="numpy", sign="loss", reduction="mean", advantages="normalised_sample_std"),
    ),
    "happo factor: numpy product": (
        check_happo_factor,
        lambda r, a: a * np.prod(r, axis=1),
        Conventions(arrays="numpy"),
    ),
    "ppo: Tianshou's dual clip, a mean loss": (
        check_ppo_clip,
        _ppo_dual_clip,
        Conventions(sign="loss", reduction="mean", dual_clip=3.0),
    ),
    "happo objective: dual clip on M": (
        check_happo_objective,
        lambda r, f, a, e: -_ppo_dual_clip(r, f * a, e, dual=2.0, reduce=False),
        Conventions(dual_clip=2.0),
    ),
    "gaussian kl: per dimension, torch's variance-ratio form": (
        check_gaussian_kl,
        _gaussian_kl_variance_ratio,
        Conventions(arrays="numpy", scale="std", kl_dimensions="per_dimension"),
    ),
    "trpo step: damped CG (Hv + λv in the product)": (
        check_trpo_step,
        lambda g, fvp, delta: _natural_step_by_cg(g, lambda v: fvp(v) + 0.1 * v, delta),
        Conventions(rtol=1e-7, damping=0.1),
    ),
    "sampled kl: k3, a mean (stable-baselines3's approx_kl)": (
        check_sampled_kl,
        lambda lp, old: jnp.mean(jnp.exp(lp - old) - 1 - (lp - old)),
        Conventions(kl_estimator="k3", reduction="mean"),
    ),
    "sampled kl: k1 per sample, numpy": (
        check_sampled_kl,
        lambda lp, old: old - lp,
        Conventions(arrays="numpy", kl_estimator="k1"),
    ),
    "sampled kl: k2 per sample": (
        check_sampled_kl,
        lambda lp, old: jnp.square(lp - old) / 2,
        Conventions(kl_estimator="k2"),
    ),
    "sampled kl: k3 per sample from the ratio": (
        check_sampled_kl,
        lambda lp, old: (lambda r: r - 1 - jnp.log(r))(jnp.exp(lp) / jnp.exp(old)),
        Conventions(kl_estimator="k3", atol=1e-8),
    ),
}


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_implementations_conform(name):
    """No false failure: each correct implementation, under the convention it declares, passes."""
    check, fn, conventions = CORRECT[name]
    check(fn, conventions, max_examples=examples(25))


# ------------------------------------------------------------------------------------------------
# 3. Broken implementations are caught
# ------------------------------------------------------------------------------------------------


def _gae_scan(r, v, d, gamma, lam, *, carry_cut=True, bootstrap_cut=True, shift=False, swap=False):
    """A time-major JAX GAE with a switch for each classic bug."""
    if swap:
        gamma, lam = lam, gamma
    dd = jnp.concatenate([jnp.zeros_like(d[:1]), d[:-1]]) if shift else d
    deltas = r + gamma * (1 - dd if bootstrap_cut else 1) * v[1:] - v[:-1]
    decay = gamma * lam * (1 - dd if carry_cut else jnp.ones_like(d))

    def step(carry, x):
        delta, k = x
        carry = delta + k * carry
        return carry, carry

    return jax.lax.scan(step, jnp.zeros(r.shape[1]), (deltas, decay), reverse=True)[1]


def _trpo_step(g, fvp, delta, *, scale="sqrt", natural=True):
    H = jax.jacfwd(fvp)(g)
    x = jnp.linalg.solve(H, g) if natural else g
    if scale == "sqrt":
        return jnp.sqrt(2 * delta / (g @ H @ x)) * x if natural else jnp.sqrt(2 * delta / (g @ H @ g)) * g
    if scale == "delta":  # δ instead of √δ
        return 2 * delta / jnp.sqrt(g @ x) * x
    return jnp.sqrt(delta / (g @ x)) * x  # the 2 dropped


BROKEN = {
    "gae: (1 − done) missing in the carry": (check_gae, lambda *a: _gae_scan(*a, carry_cut=False), Conventions()),
    "gae: (1 − done) missing in the bootstrap": (
        check_gae,
        lambda *a: _gae_scan(*a, bootstrap_cut=False),
        Conventions(),
    ),
    "gae: λ and γ swapped": (check_gae, lambda *a: _gae_scan(*a, swap=True), Conventions()),
    "gae: done flag off by one step": (check_gae, lambda *a: _gae_scan(*a, shift=True), Conventions()),
    "gae: truncation treated as termination where bootstrapping is declared": (
        check_gae,
        lambda r, v, te, tr, fv, g, lam: _gae_scan(r, v, jnp.maximum(te, tr), g, lam),
        Conventions(truncation="bootstrap"),
    ),
    "gae: episode-start flags read one step late (the last step's flag from the first row)": (
        check_gae,
        lambda *a: _gae_sb3(*a, last_from_starts=True),
        Conventions(arrays="numpy", flags="episode_start"),
    ),
    "gae: episode-start flags taken for done flags": (
        check_gae,
        lambda r, v, s, last, g, lam: _gae_scan(r, v, s, g, lam),
        Conventions(flags="episode_start"),
    ),
    "returns: (1 − done) missing": (
        check_discounted_returns,
        lambda r, d, b, g: _returns_numpy(r, 0 * d, b, g),
        Conventions(arrays="numpy", layout="single"),
    ),
    "returns: bootstrap value ignored": (
        check_discounted_returns,
        lambda r, d, b, g: _returns_numpy(r, d, 0.0, g),
        Conventions(arrays="numpy", layout="single"),
    ),
    "ppo: ratio inverted": (check_ppo_clip, lambda r, a, e: rf.ppo_clip_objective(1 / r, a, e), Conventions()),
    "ppo: clip on the wrong side (max for min)": (
        check_ppo_clip,
        lambda r, a, e: jnp.maximum(r * a, jnp.clip(r, 1 - e, 1 + e) * a),
        Conventions(),
    ),
    "ppo: loss sign flipped against the declaration": (check_ppo_clip, _ppo_loss_mean, Conventions(reduction="mean")),
    "ppo: gradient stopped through the unclipped term": (
        check_ppo_clip,
        lambda r, a, e: jnp.minimum(jax.lax.stop_gradient(r) * a, jnp.clip(r, 1 - e, 1 + e) * a),
        Conventions(),
    ),
    "kl: direction reversed": (check_categorical_kl, lambda p, q: rf.kl_divergence(q, p), Conventions()),
    "kl: logits given where probabilities are declared": (
        check_categorical_kl,
        lambda p, q: rf.kl_divergence(jax.nn.softmax(p), jax.nn.softmax(q)),
        Conventions(),
    ),
    "gaussian kl: reversed": (
        check_gaussian_kl,
        lambda mp, sp, mq, sq: _gaussian_kl_std(mq, sq, mp, sp),
        Conventions(arrays="numpy", scale="std"),
    ),
    "gaussian kl: variance for standard deviation": (
        check_gaussian_kl,
        lambda mp, sp, mq, sq: _gaussian_kl_std(mp, sp**2, mq, sq**2),
        Conventions(arrays="numpy", scale="std"),
    ),
    "gaussian kl: the ½ dropped": (
        check_gaussian_kl,
        lambda mp, sp, mq, sq: _gaussian_kl_std(mp, sp, mq, sq) - 0.5 * mp.shape[-1],
        Conventions(arrays="numpy", scale="std"),
    ),
    "trpo step: scaled by δ instead of √δ": (check_trpo_step, lambda *a: _trpo_step(*a, scale="delta"), Conventions()),
    "trpo step: the 2 in √(2δ/…) dropped": (check_trpo_step, lambda *a: _trpo_step(*a, scale="half"), Conventions()),
    "trpo step: gradient instead of natural direction": (
        check_trpo_step,
        lambda *a: _trpo_step(*a, natural=False),
        Conventions(),
    ),
    "happo factor: M not updated": (check_happo_factor, lambda r, a: a, Conventions(arrays="numpy")),
    "happo factor: ratios summed": (
        check_happo_factor,
        lambda r, a: a * (1 + np.sum(r - 1, axis=1)),
        Conventions(arrays="numpy"),
    ),
    "sequential factors: agents taken by index, not by the order": (
        check_sequential_factors,
        lambda order, r, a: np.stack([a * np.prod(r[:, :m], axis=1) for m in range(len(order))]),
        Conventions(arrays="numpy"),
    ),
    "sequential factors: every other agent's ratio (a simultaneous update)": (
        check_sequential_factors,
        lambda order, r, a: np.stack([a * np.prod(r, axis=1) / r[:, i] for i in order]),
        Conventions(arrays="numpy"),
    ),
    "sequential factors: each ratio read before its agent's update (the old policy)": (
        check_sequential_factors,
        lambda *a: _sequential_pass(*a, stale=True),
        Conventions(arrays="numpy", sequential="update"),
    ),
    "sequential factors: agents updated by index, not in the order": (
        check_sequential_factors,
        lambda *a: _sequential_pass(*a, by_index=True),
        Conventions(arrays="numpy", sequential="update"),
    ),
    "gae: small entries 1% off, within 1e-3 of the batch's largest but not of their own": (
        check_gae,
        lambda *a: (lambda A: jnp.where(jnp.abs(A) < 0.1, 1.01 * A, A))(_gae_batched(*a)),
        Conventions(rtol=1e-3),
    ),
    "ppo: population std where the sample std is declared": (
        check_ppo_clip,
        lambda r, a, e: _ppo_numpy_normalised(r, a, e, ddof=0),
        Conventions(arrays="numpy", sign="loss", reduction="mean", advantages="normalised_sample_std"),
    ),
    "happo objective: the product r·factor clipped": (
        check_happo_objective,
        lambda r, f, a, e: jnp.minimum(r * f * a, jnp.clip(r * f, 1 - e, 1 + e) * a),
        Conventions(),
    ),
    "happo objective: the factor ignored (PPO per agent)": (
        check_happo_objective,
        lambda r, f, a, e: rf.ppo_clip_objective(r, a, e),
        Conventions(),
    ),
    "happo objective: gradient stopped through the factor's term": (
        check_happo_objective,
        lambda r, f, a, e: jnp.minimum(jax.lax.stop_gradient(r) * f * a, jnp.clip(r, 1 - e, 1 + e) * f * a),
        Conventions(),
    ),
    "ppo: dual clip declared, not applied": (
        check_ppo_clip,
        _ppo_loss_mean,
        Conventions(sign="loss", reduction="mean", dual_clip=3.0),
    ),
    "ppo: dual clip applied to positive advantages too": (
        check_ppo_clip,
        lambda r, a, e: -jnp.mean(jnp.maximum(jnp.minimum(r * a, jnp.clip(r, 1 - e, 1 + e) * a), 3.0 * a)),
        Conventions(sign="loss", reduction="mean", dual_clip=3.0),
    ),
    "gaussian kl: per dimension, the log term's ratio inverted": (
        check_gaussian_kl,
        lambda mp, sp, mq, sq: _gaussian_kl_variance_ratio(mp, sp, mq, sq) + np.log((sp / sq) ** 2),
        Conventions(arrays="numpy", scale="std", kl_dimensions="per_dimension"),
    ),
    "trpo step: damped direction, scale from the undamped product": (
        check_trpo_step,
        lambda g, fvp, delta: _numpy_step(g, fvp, delta, direction_damping=0.1, scale_damping=0.0),
        Conventions(arrays="numpy", damping=0.1),
    ),
    "trpo step: damping declared, not added": (
        check_trpo_step,
        lambda g, fvp, delta: _numpy_step(g, fvp, delta, direction_damping=0.0, scale_damping=0.0),
        Conventions(arrays="numpy", damping=0.1),
    ),
    "sampled kl: the log-ratio reversed (k3 of old/new)": (
        check_sampled_kl,
        lambda lp, old: jnp.mean(jnp.exp(old - lp) - 1 - (old - lp)),
        Conventions(kl_estimator="k3", reduction="mean"),
    ),
    "sampled kl: k1's sign flipped": (
        check_sampled_kl,
        lambda lp, old: lp - old,
        Conventions(arrays="numpy", kl_estimator="k1"),
    ),
    "sampled kl: k3 without the − 1": (
        check_sampled_kl,
        lambda lp, old: jnp.exp(lp - old) - (lp - old),
        Conventions(kl_estimator="k3"),
    ),
    "sampled kl: (log r)² without the ½ where k2 is declared": (
        check_sampled_kl,
        lambda lp, old: jnp.square(lp - old),
        Conventions(kl_estimator="k2"),
    ),
    "happo factor: the first agent's ratio dropped": (
        check_happo_factor,
        lambda r, a: a * np.prod(r[:, 1:], axis=1),
        Conventions(arrays="numpy"),
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_implementations_are_caught(name):
    """Every bug in the catalogue is reported, with the equation and both values in the message."""
    check, fn, conventions = BROKEN[name]
    with pytest.raises(ConformanceError) as info:
        check(fn, conventions, max_examples=100)
    message = str(info.value)
    assert "violated" in message and "expected" in message and "got" in message


# ------------------------------------------------------------------------------------------------
# Bad arguments
# ------------------------------------------------------------------------------------------------


def test_bad_arguments_are_refused_with_a_clear_error():
    # a convention outside its Literal: jaxtyping's hook (on in this suite) names the parameter and
    # the allowed values; without the hook, as in a user's project, __post_init__ does
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="layout"):
        Conventions(layout="row_major")  # type: ignore[arg-type]
    unchecked = Conventions()
    object.__setattr__(unchecked, "layout", "row_major")  # as if built without the type hook
    with pytest.raises(ValueError, match="`layout` must be one of"):
        unchecked.__post_init__()
    with pytest.raises(ValueError, match="`rtol` must be a finite number"):
        Conventions(rtol=-1.0)
    # a non-callable / a dict for the conventions: TypeError naming the parameter, from the hook
    # (jaxtyping's TypeCheckError is a TypeError) or, without it, from the check itself
    with pytest.raises(TypeError, match="fn"):
        check_gae(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="conventions"):
        check_gae(rf.generalized_advantage_estimate, {"layout": "single"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`max_examples` must be an int >= 1"):
        check_happo_factor(rf.happo_factor, max_examples=0)


def test_a_function_that_raises_is_reported_with_its_input():
    def wrong_shape(r, v, d, g, lam):
        return r[:-1]

    with pytest.raises(UsageError, match="returned shape"):  # a usage error, not a deviation
        check_gae(wrong_shape, max_examples=5)

    def crashes(r, v, d, g, lam):
        raise RuntimeError("boom")

    with pytest.raises(ConformanceError, match=r"the function raised RuntimeError: boom for rewards=\[\[") as info:
        check_gae(crashes, max_examples=5)
    assert "gamma=" in str(info.value) and "lam=" in str(info.value)
    with pytest.raises(ConformanceError, match=r"the function raised RuntimeError: boom for g=\["):
        check_trpo_step(lambda g, fvp, delta: crashes(g, fvp, delta, 0, 0), max_examples=5)


@pytest.mark.parametrize("layout", ["time_major", "batch_major"])
def test_a_function_that_changes_its_inputs_gets_the_true_counterexample(layout):
    """A function that scales its rewards in place (as stable-baselines3's buffer adds γ·V to its
    own) must not change the example the report prints: the rewards printed are the ones the
    function received on its last call (the shrunk counterexample; recorded by the function on
    entry, in its layout), not 100 times them."""
    seen = []
    time_major = layout == "time_major"

    def td_then_scales_rewards(r, v, d, g, lam):  # wrong GAE (λ ignored), and it mutates `r`
        seen.append(r.copy())
        R, V, D = (r, v, d) if time_major else (r.T, v.T, d.T)  # time-major views
        adv = R + g * (1 - D) * V[1:] - V[:-1]
        r *= 100.0
        return adv if time_major else adv.T

    def rewards_then_scales_them(r, d, boot, g):  # wrong returns (G_t = r_t), and it mutates `r`
        seen.append(r.copy())
        out = r.copy()
        r *= 100.0
        return out

    for check, fn in ((check_gae, td_then_scales_rewards), (check_discounted_returns, rewards_then_scales_them)):
        seen.clear()
        with pytest.raises(ConformanceError) as info:
            check(fn, Conventions(arrays="numpy", layout=layout), max_examples=100)
        printed = str(info.value).split(" for rewards=")[1]
        assert printed.startswith(f"{seen[-1].tolist()},"), (seen[-1], printed[:300])


def test_a_check_draws_the_same_examples_on_every_run_and_another_seed_others():
    """Reproducible by default (seed 0): two runs hand the function the same inputs; another seed
    draws others. (`seed=None` leaves the choice to hypothesis, whose own runs under pytest may
    repeat: not asserted.)"""

    def recorded(**kwargs):
        seen = []

        def product(r, a):
            seen.append((np.array(r, copy=True), np.array(a, copy=True)))
            return a * np.prod(r, axis=1)

        check_happo_factor(product, Conventions(arrays="numpy"), max_examples=8, **kwargs)
        return seen

    def same(x, y):
        return len(x) == len(y) and all(
            a.shape == c.shape and b.shape == d.shape and np.array_equal(a, c) and np.array_equal(b, d)
            for (a, b), (c, d) in zip(x, y, strict=True)
        )

    first, again = recorded(), recorded()
    assert same(first, again)
    assert not same(first, recorded(seed=1))


@given(st.integers(1, 2))
def test_a_check_inside_a_given_test_says_how_to_call_it(k):
    """hypothesis refuses a @given inside a @given with a health check about quadratic shrinking;
    the check says instead what to do."""
    with pytest.raises(RuntimeError, match=r"inside a hypothesis @given test.*pytest.mark.parametrize"):
        check_happo_factor(lambda r, a: a * np.prod(r, axis=1), Conventions(arrays="numpy"), max_examples=k)


def test_bad_seeds_and_boolean_tolerances_are_refused():
    # under the proofs' run-time type checking (jaxtyping's hook) a str is refused by its type first
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="seed"):
        check_happo_factor(rf.happo_factor, seed="0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`seed` must be an int or None, got True"):
        check_happo_factor(rf.happo_factor, seed=True)
    with pytest.raises(ValueError, match="`max_examples` must be an int >= 1, got True"):
        check_happo_factor(rf.happo_factor, max_examples=True)
    # a bool is an int to Python: Conventions(rtol=True) was accepted. (The proofs' type-checking
    # hook refuses it before __post_init__; a user's call reaches __post_init__, called here.)
    for name in ("rtol", "atol", "damping"):
        c = Conventions()
        object.__setattr__(c, name, True)
        with pytest.raises(ValueError, match=f"`{name}` must be a finite number >= 0, got True"):
            c.__post_init__()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("damping", -0.1, "`damping` must be a finite number >= 0, got -0.1"),
        ("damping", float("nan"), "`damping` must be a finite number >= 0, got nan"),
        ("dual_clip", 1.0, "`dual_clip` must be None or a finite number > 1 .*got 1.0"),
        ("dual_clip", float("inf"), "`dual_clip` must be None or a finite number > 1 .*got inf"),
        ("kl_estimator", "k4", "`kl_estimator` must be one of"),
        ("kl_dimensions", "mean", "`kl_dimensions` must be one of"),
    ],
)
def test_new_conventions_refuse_bad_values(field, value, message):
    """A dual clip c ≤ 1 would clip the ordinary objective (Tianshou asserts c > 1); a negative damping
    makes the Fisher indefinite; an unknown estimator or KL reduction is no convention. (As a user's
    call meets it: the proofs' type-checking hook would refuse a value outside a Literal first.)"""
    c = Conventions()
    object.__setattr__(c, field, value)
    with pytest.raises(UsageError, match=message):
        c.__post_init__()


def test_torch_arrays_without_torch_are_refused_before_any_example(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    calls = []
    with pytest.raises(ModuleNotFoundError, match=r'Conventions\(arrays="torch"\) needs PyTorch'):
        check_gae(lambda *a: calls.append(a), Conventions(arrays="torch"))
    assert calls == []


def test_flag_conventions_refuse_what_no_library_does_and_hint_at_booleans():
    """`flag_dtype='bool'` needs 0/1 flags (not discounts); episode-start flags do not combine with
    separate truncations; a function that negates float flags with `~` is reported with a hint to
    declare boolean flags."""
    with pytest.raises(ValueError, match="flag_dtype='bool'` needs 0/1 flags"):
        Conventions(flags="discount", flag_dtype="bool")
    with pytest.raises(ValueError, match="`flags='episode_start'` with `truncation='bootstrap'`"):
        Conventions(flags="episode_start", truncation="bootstrap")
    with pytest.raises(ConformanceError, match="declare `flag_dtype='bool'`"):
        check_gae(_gae_negating_bools, Conventions(), max_examples=5)


def test_usage_errors_are_told_apart_from_deviations():
    """A function whose signature cannot take the check's call, one that returns the wrong shape,
    and one that returns no array of numbers are `UsageError`s showing the input (not
    `ConformanceError`s: nothing was learnt about the equation); a bad convention is one too."""
    with pytest.raises(UsageError, match=r"cannot be called with the check's 5 arguments \(array\[") as info:
        check_gae(lambda r, v, d: r, Conventions(arrays="numpy"), max_examples=5)
    assert not isinstance(info.value, ConformanceError)
    with pytest.raises(UsageError, match=r"returned shape \(\d+,\), expected \(\d+, \d+\)"):
        check_gae(lambda r, v, d, g, lam: r[0], Conventions(arrays="numpy"), max_examples=5)
    with pytest.raises(UsageError, match="returned dict, not an array of numbers"):
        check_gae(lambda r, v, d, g, lam: {"adv": r}, Conventions(arrays="numpy"), max_examples=5)
    with pytest.raises(UsageError, match=r"one KL per dimension, .*declare `kl_dimensions='per_dimension'` for mean_p"):
        check_gaussian_kl(_gaussian_kl_variance_ratio, Conventions(arrays="numpy", scale="std"), max_examples=5)
    with pytest.raises(UsageError, match="`layout` must be one of"):
        unchecked = Conventions()
        object.__setattr__(unchecked, "layout", "row_major")
        unchecked.__post_init__()


def _gae_float32(r, v, d, gamma, lam):
    """A correct GAE computed in float32, as many libraries do (numpy, time-major: no compilation
    per drawn shape, so the failing run's shrinking is quick)."""
    r, v, d = (np.asarray(x, np.float32) for x in (r, v, d))
    gamma, lam = np.float32(gamma), np.float32(lam)
    adv = np.zeros_like(r)
    carry = np.zeros_like(r[0])
    for t in reversed(range(r.shape[0])):
        alive = np.float32(1) - d[t]
        carry = r[t] + gamma * alive * v[t + 1] - v[t] + gamma * lam * alive * carry
        adv[t] = carry
    return adv.astype(np.float64)


def test_float32_code_is_told_what_to_declare():
    """Correct GAE computed in float32 fails the float64 defaults with a message that says the
    errors are at float32 rounding and what to declare; declared so, it passes."""
    with pytest.raises(ConformanceError, match=r"at float32 rounding .*declare it, e.g. `Conventions\(rtol=1e-5"):
        check_gae(_gae_float32, Conventions(arrays="numpy"), max_examples=50)
    check_gae(_gae_float32, Conventions(arrays="numpy", rtol=1e-5, atol=1e-6), max_examples=examples(50))


NUMPY_GAE = r"""
import numpy as np

def gae(r, v, d, g, lam):
    adv, carry = np.zeros_like(r), np.zeros(r.shape[1])
    for t in reversed(range(len(r))):
        carry = r[t] + g * (1 - d[t]) * v[t + 1] - v[t] + g * lam * (1 - d[t]) * carry
        adv[t] = carry
    return adv
"""
"""A numpy GAE, written out for the proofs that run `reference.testing` in a fresh process."""

JAX_FREE = (
    r"""
import sys
for name in ("jax", "jaxlib", "equinox", "optax", "lineax", "jaxtyping"):
    sys.modules[name] = None  # as if not installed: importing it raises ModuleNotFoundError
from reference.testing import ConformanceError, Conventions, check_gae
"""
    + NUMPY_GAE
    + r"""
check_gae(gae, Conventions(arrays="numpy"), max_examples=20)
try:
    check_gae(lambda r, v, d, g, lam: gae(r, v, 0 * d, g, lam), Conventions(arrays="numpy"), max_examples=20)
except ConformanceError:
    print("caught")
import reference
try:
    reference.value_iteration
except ModuleNotFoundError as e:
    print(e)
print(sorted(m for m, module in sys.modules.items() if module is not None and m.split(".")[0] == "jax"))
"""
)


def test_the_numpy_checks_run_without_jax():
    """With JAX (and what needs it) not installed, `reference.testing`'s numpy checks pass a correct
    GAE and catch a broken one; the flat API's equations say they need JAX."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", JAX_FREE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    caught, message, jax_modules = out.stdout.strip().split("\n")
    assert caught == "caught"
    assert message.startswith("reference.value_iteration needs JAX, which is not installed")
    assert jax_modules == "[]"


@pytest.mark.parametrize("layout", ["time_major", "batch_major", "single"])
def test_counterexamples_are_shown_as_the_function_received_them(layout):
    """The reported arrays are those the function was called with, in the declared layout (for
    "single", one row per call), and the reported index is an index into the function's own result:
    a GAE right everywhere but at its own first row's last entry is reported at that index."""
    import re

    seen = []

    def off_at_first_row_end(r, v, d, g, lam):
        """Right, except its entry [0, -1] (in its own layout; [-1] of each one-trajectory call)."""
        seen.append(np.array(r, copy=True))
        rows = (lambda x: x.T) if layout == "time_major" else (lambda x: x)  # to [B, T] and back
        if r.ndim == 1:
            adv = _gae_numpy_discounts(r[None], v[None], (g * (1 - d))[None], g, lam)[0]
            if len(r) >= 2:  # one step: a transposed report would look the same
                adv[-1] += 1.0
            return adv
        adv = rows(_gae_numpy_discounts(rows(r), rows(v), rows(g * (1 - d)), g, lam))
        if r.shape[0] != r.shape[1] and min(r.shape) >= 2:  # else a transposed report could look the same
            adv[0, -1] += 1.0
        return adv

    with pytest.raises(ConformanceError) as info:
        check_gae(off_at_first_row_end, Conventions(arrays="numpy", layout=layout), max_examples=20)
    message = str(info.value)
    if layout == "single":  # the last example's calls, one per environment
        B = message.split(" for rewards=")[1].split("]], ")[0].count("], [") + 1
        shown = np.array(seen[-B:])
    else:
        shown = seen[-1]
    assert f"rewards={shown.tolist()}" in message
    note = {"time_major": "(time-major [T, B])", "batch_major": "(batch-major [B, T])", "single": "(one row per"}
    assert note[layout] in message
    found = re.search(r"violated at index \((\d+), (\d+)\)", message)
    assert found, message
    index = tuple(map(int, found.groups()))
    assert index == (0, shown.shape[1] - 1), (index, shown.shape)


def test_a_gaussian_counterexample_shows_the_scales_as_passed():
    """Under scale="log_std" the report shows the log standard deviations the function received."""
    seen = []

    def wrong(mp, log_sp, mq, log_sq):
        seen.append(np.array(log_sp, copy=True))
        return np.full(mp.shape[:-1], -1.0)

    with pytest.raises(ConformanceError) as info:
        check_gaussian_kl(wrong, Conventions(arrays="numpy", scale="log_std"), max_examples=5)
    assert f"log_std_p={seen[-1].tolist()}" in str(info.value) and "std_p=[" not in str(info.value).replace(
        "log_std_p", ""
    )


LEAVES_NO_FILES = r"""
import numpy as np
from hypothesis import configuration
from reference.testing import ConformanceError, Conventions, check_gae
from mygae import gae  # a module of the caller's own: hypothesis reads its constants

check_gae(gae, Conventions(arrays="numpy"), max_examples=20)
try:
    check_gae(lambda r, v, d, g, lam: gae(r, v, 0 * d, g, lam), Conventions(arrays="numpy"), max_examples=20)
except ConformanceError:
    print("caught")
print(configuration.storage_directory("x").home_directory)  # the caller's own storage, set back
"""


def test_a_check_leaves_no_files_in_the_working_directory(tmp_path):
    """A passing and a failing check run from a directory holding the caller's own module leave
    nothing there (hypothesis caches such modules' constants in `.hypothesis/` by default), and
    hypothesis's storage is set back to the caller's afterwards."""
    import os
    import subprocess
    import sys

    (tmp_path / "mygae.py").write_text(NUMPY_GAE)
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    out = subprocess.run(
        [sys.executable, "-c", LEAVES_NO_FILES], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    caught, home = out.stdout.strip().split("\n")
    assert caught == "caught"
    assert home == str(tmp_path / ".hypothesis")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["mygae.py"]
