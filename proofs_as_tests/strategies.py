"""Hypothesis strategies: finite MDPs (with edge cases) and policies, built in float64.

Random arrays come from a numpy generator seeded by hypothesis, so every example is
reproducible and shrinks towards small sizes and simple kinds.
"""

from __future__ import annotations

import random

import jax.numpy as jnp
import numpy as np
from hypothesis import settings, strategies as st

import reference as rf

MDP_KINDS = ("dense", "deterministic", "absorbing", "sparse")
POLICY_KINDS = ("soft", "deterministic", "near_deterministic", "uniform")


def transition_tensor(rng: np.random.Generator, S: int, A: int, kind: str) -> np.ndarray:
    if kind == "deterministic":
        P = np.zeros((S, A, S))
        nxt = rng.integers(0, S, size=(S, A))
        P[np.arange(S)[:, None], np.arange(A)[None, :], nxt] = 1.0
        return P
    P = rng.dirichlet(np.ones(S), size=(S, A))
    if kind == "sparse":
        mask = rng.random((S, A, S)) < 0.5
        mask[np.arange(S)[:, None], np.arange(A)[None, :], rng.integers(0, S, size=(S, A))] = True
        P = P * mask
        P = P / P.sum(-1, keepdims=True)
    if kind == "absorbing":
        s = int(rng.integers(0, S))
        P[s] = 0.0
        P[s, :, s] = 1.0
    return P


@st.composite
def mdps(
    draw: st.DrawFn,
    min_states: int = 1,
    max_states: int = 5,
    min_actions: int = 1,
    max_actions: int = 4,
    max_gamma: float = 0.99,
    state_reward: bool | None = None,
) -> rf.FiniteMDP:
    """A random finite MDP; edge cases: one state, one action, gamma = 0, deterministic and
    sparse transitions, absorbing states, gamma up to 0.99, state-only rewards."""
    S = draw(st.integers(min_states, max_states))
    A = draw(st.integers(min_actions, max_actions))
    gamma = draw(st.one_of(st.just(0.0), st.just(max_gamma), st.floats(0.0, max_gamma)))
    kind = draw(st.sampled_from(MDP_KINDS))
    if state_reward is None:
        state_reward = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    P = transition_tensor(rng, S, A, kind)
    R = rng.uniform(-1, 1, size=(S,) if state_reward else (S, A))
    rho0 = rng.dirichlet(np.ones(S)) if rng.random() < 0.8 else np.eye(S)[rng.integers(0, S)]
    # beartype samples containers with the global `random` module; hypothesis forbids strategies
    # from changing its state, so restore it after building the (type-checked) MDP.
    state = random.getstate()
    mdp = rf.FiniteMDP(jnp.asarray(P), jnp.asarray(R), gamma, jnp.asarray(rho0))
    random.setstate(state)
    return mdp


def policy_array(rng: np.random.Generator, S: int, A: int, kind: str, scale: float = 3.0) -> np.ndarray:
    if kind == "uniform":
        return np.full((S, A), 1.0 / A)
    if kind == "deterministic":
        return np.eye(A)[rng.integers(0, A, size=S)]
    logits = rng.uniform(-scale, scale, size=(S, A))
    if kind == "near_deterministic":
        logits = 10 * logits
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@st.composite
def policies(draw: st.DrawFn, S: int, A: int, kinds: tuple[str, ...] = POLICY_KINDS) -> jnp.ndarray:
    """A stochastic policy `pi[s, a]`: softmax of logits in [-3, 3], deterministic, nearly
    deterministic or uniform."""
    kind = draw(st.sampled_from(kinds))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return jnp.asarray(policy_array(rng, S, A, kind))


@st.composite
def mdp_and_policy(draw: st.DrawFn, kinds: tuple[str, ...] = POLICY_KINDS, **mdp_kwargs):
    mdp = draw(mdps(**mdp_kwargs))
    return mdp, draw(policies(mdp.num_states, mdp.num_actions, kinds))


def tol(*xs: object, rel: float = 1e-9) -> float:
    """A tolerance `rel * (1 + max |x|)` for comparing float64 results."""
    scale = max(float(np.max(np.abs(np.asarray(x)))) if np.size(np.asarray(x)) else 0.0 for x in xs)
    return rel * (1.0 + scale)


@st.composite
def policy_pairs(draw: st.DrawFn, S: int, A: int):
    """(π, π̄) with full support: π = softmax(θ), π̄ = softmax(θ + scale·N(0, 1)), scale in
    {0.01, 0.1, 1, 3} (both tiny and far-apart steps)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.01, 0.1, 1.0, 3.0]))
    theta = rng.uniform(-3, 3, size=(S, A))
    theta_bar = theta + scale * rng.standard_normal((S, A))

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return jnp.asarray(softmax(theta)), jnp.asarray(softmax(theta_bar))


@st.composite
def mdp_and_policy_pair(draw: st.DrawFn, **mdp_kwargs):
    mdp = draw(mdps(**mdp_kwargs))
    pi, pi_bar = draw(policy_pairs(mdp.num_states, mdp.num_actions))
    return mdp, pi, pi_bar


@st.composite
def games(
    draw: st.DrawFn,
    max_states: int = 3,
    max_agents: int = 3,
    max_actions: int = 3,
    max_gamma: float = 0.95,
    min_agents: int = 1,
):
    """A random cooperative game: S ≤ 3, n ≤ 3 agents, A_i ∈ [2, 3], γ ∈ [0, 0.95]."""
    S = draw(st.integers(1, max_states))
    n = draw(st.integers(min_agents, max_agents))
    sizes = tuple(draw(st.integers(2, max_actions)) for _ in range(n))
    gamma = draw(st.one_of(st.just(0.0), st.floats(0.0, max_gamma)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    P = rng.dirichlet(np.ones(S), size=(S, *sizes))
    R = rng.uniform(-1, 1, size=(S, *sizes))
    rho0 = rng.dirichlet(np.ones(S))
    state = random.getstate()
    game = rf.CooperativeGame(jnp.asarray(P), jnp.asarray(R), gamma, jnp.asarray(rho0))
    random.setstate(state)
    return game


@st.composite
def joint_policy_pairs(draw: st.DrawFn, game: rf.CooperativeGame):
    """Per-agent (π^i, π̄^i) with full support, near or far apart (scale in {0.01, 0.1, 1, 3})."""
    S, sizes = int(game.P.shape[0]), [int(a) for a in game.P.shape[1:-1]]  # fields: no type-checked call
    pairs = [draw(policy_pairs(S, a)) for a in sizes]
    return tuple(p for p, _ in pairs), tuple(q for _, q in pairs)


def at_most(n: int) -> settings:
    """`settings(max_examples=n)`, but never more examples than the loaded profile draws (a test
    that is costly per example caps itself at n in the thorough profile, and the quick profile
    stays quick)."""
    profile = settings.default
    return settings(max_examples=n if profile is None else min(n, profile.max_examples))
