"""Hypothesis strategies for RL mathematics.

Finite MDPs, policies, cooperative games, trajectories with episode ends and truncations, agent
orders. These are the strategies the project's own proofs draw from, public so that a user can point
them at their own code. Random arrays come from a numpy generator seeded by hypothesis, so every
example is reproducible and shrinks towards small sizes and simple kinds. Everything is float64.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from hypothesis import strategies as st

import reference as rf

if TYPE_CHECKING:  # JAX is imported where a strategy builds JAX arrays: the numpy checks run without it
    import jax.numpy as jnp

#: hypothesis's `draw` (its `DrawFn` protocol cannot be checked at run time by beartype)
Draw = Callable[[st.SearchStrategy[Any]], Any]

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
    draw: Draw,
    min_states: int = 1,
    max_states: int = 5,
    min_actions: int = 1,
    max_actions: int = 4,
    max_gamma: float = 0.99,
    state_reward: bool | None = None,
) -> rf.FiniteMDP:
    """A random finite MDP, with its edge cases.

    One state, one action, gamma = 0, deterministic and sparse transitions, absorbing states,
    gamma up to 0.99, state-only rewards.
    """
    import jax.numpy as jnp

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
def policies(draw: Draw, S: int, A: int, kinds: tuple = POLICY_KINDS) -> jnp.ndarray:
    """A stochastic policy `pi[s, a]`.

    The softmax of logits in [-3, 3], deterministic, nearly deterministic or uniform: `kinds`, a
    tuple of names from `POLICY_KINDS`. (A bare `tuple` annotation: beartype samples the items of a
    `tuple[str, ...]` with the `random` module, which hypothesis forbids inside strategies.)
    """
    import jax.numpy as jnp

    kind = draw(st.sampled_from(kinds))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return jnp.asarray(policy_array(rng, S, A, kind))


@st.composite
def policy_pairs(draw: Draw, S: int, A: int):
    """A pair of policies (π, π̄) with full support.

    π = softmax(θ), π̄ = softmax(θ + scale·N(0, 1)), scale in {0.01, 0.1, 1, 3} (both tiny and
    far-apart steps).
    """
    import jax.numpy as jnp

    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.01, 0.1, 1.0, 3.0]))
    theta = rng.uniform(-3, 3, size=(S, A))
    theta_bar = theta + scale * rng.standard_normal((S, A))

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return jnp.asarray(softmax(theta)), jnp.asarray(softmax(theta_bar))


@st.composite
def games(
    draw: Draw,
    max_states: int = 3,
    max_agents: int = 3,
    max_actions: int = 3,
    max_gamma: float = 0.95,
    min_agents: int = 1,
):
    """A random cooperative game: S ≤ 3, n ≤ 3 agents, A_i ∈ [2, 3], γ ∈ [0, 0.95]."""
    import jax.numpy as jnp

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
def joint_policy_pairs(draw: Draw, game: rf.CooperativeGame):
    """Per-agent (π^i, π̄^i) with full support, near or far apart (scale in {0.01, 0.1, 1, 3})."""
    S, sizes = int(game.P.shape[0]), [int(a) for a in game.P.shape[1:-1]]  # fields: no type-checked call
    pairs = [draw(policy_pairs(S, a)) for a in sizes]
    return tuple(p for p, _ in pairs), tuple(q for _, q in pairs)


class Trajectory(NamedTuple):
    """A batch of `B` rollouts of `T` steps, time-major, float64.

    - `rewards[t, b]`: $r_t$.
    - `values[t, b]`, `t ≤ T`: $V(s_t)$; row `T` is the bootstrap value of the state after the
      last step. After an episode end at step `t`, `values[t + 1]` is the value of the next
      episode's first state (as a vectorised environment that resets itself stores it).
    - `terminations[t, b]`: 1 if step `t` reached a terminal state (nothing follows: no bootstrap).
    - `truncations[t, b]`: 1 if the episode was cut after step `t` by a time limit (the state
      reached was not terminal: the return continues with $V$ of that state). Never 1 together
      with `terminations`.
    - `final_values[t, b]`: $V$ of the state reached at step `t` where `truncations[t, b]` is 1
      (that state is not in `values`, which holds the next episode's first state); 0 elsewhere.
    - `gamma`, `lam`: a discount in [0, 1] and a GAE λ in [0, 1].
    """

    rewards: np.ndarray
    values: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    final_values: np.ndarray
    gamma: float
    lam: float


@st.composite
def trajectories(
    draw: Draw,
    max_steps: int = 12,
    max_batch: int = 3,
    truncations: bool = True,
    max_gamma: float = 1.0,
) -> Trajectory:
    """A `Trajectory` with episode ends and truncations.

    T ≤ `max_steps` steps of B ≤ `max_batch` environments with episode ends (terminations and,
    if `truncations`, time-limit truncations) at random steps, including the last step and
    consecutive steps; γ and λ include their edges 0 and 1 (γ up to `max_gamma`).
    """
    T = draw(st.integers(1, max_steps))
    B = draw(st.integers(1, max_batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p_end = draw(st.sampled_from([0.0, 0.1, 0.3, 0.7]))
    ends = rng.random((T, B)) < p_end
    if truncations:
        cut = ends & (rng.random((T, B)) < 0.5)
    else:
        cut = np.zeros((T, B), bool)
    terminations = (ends & ~cut).astype(np.float64)
    truncated = cut.astype(np.float64)
    rewards = rng.uniform(-1, 1, (T, B)) * (rng.random((T, B)) < 0.8)
    values = rng.uniform(-2, 2, (T + 1, B))
    final_values = np.where(cut, rng.uniform(-2, 2, (T, B)), 0.0)
    edges = [0.0, max_gamma] if max_gamma < 1.0 else [0.0, 0.99, 1.0]
    gamma = draw(st.one_of(st.sampled_from(edges), st.floats(0.0, max_gamma)))
    lam = draw(st.one_of(st.sampled_from([0.0, 0.95, 1.0]), st.floats(0.0, 1.0)))
    return Trajectory(rewards, values, terminations, truncated, final_values, gamma, lam)


def agent_orders(n: int) -> st.SearchStrategy[tuple[int, ...]]:
    """A permutation of the agents `0, …, n − 1` (shrinks towards the identity)."""
    return st.permutations(list(range(n))).map(tuple)
