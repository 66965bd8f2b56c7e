"""The linear solves behind V^π and ρ_π (reference/_linalg.py) against LAPACK through numpy.

Three paths, chosen by size: unrolled Gauss–Jordan without pivoting (|S| ≤ 16), a float64 LU
(17–127) and a float32 LU refined to float64 (≥ 128, LAPACK's dsgesv), with a float64 fallback.
Each is compared with `numpy.linalg.solve` on the same system, in the forward direction
(policy_evaluation, A10), the transposed one (discounted_visitation, A22) and through `jax.grad`
(lineax's transpose rule), with a tolerance of a few ε·κ∞ — the accuracy of any backward-stable
float64 solve, which κ∞(I − γP_π) ≤ (1 + γ)/(1 − γ) bounds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import reference as rf
from proofs_as_tests.strategies import at_most, policy_array, transition_tensor

EPS = float(np.finfo(np.float64).eps)
# One size below, at and above each switch between the three paths.
SIZES = [1, 2, 16, 17, 127, 128, 200]
# Action counts on both sides of the switch in `P_π = Σ_a π(a|s) P(·|s,a)`: written out term by
# term up to 16 actions, an einsum beyond (reference/_bellman.py::action_average).
ACTIONS = [1, 2, 3, 4, 16, 17, 40]


def system(S: int, A: int, gamma: float, kind: str, seed: int, policy_kind: str = "soft"):
    rng = np.random.default_rng(seed)
    P = transition_tensor(rng, S, A, kind)
    R = rng.uniform(-1, 1, size=(S, A))
    rho0 = rng.dirichlet(np.ones(S))
    pi = policy_array(rng, S, A, policy_kind)
    mdp = rf.FiniteMDP(jnp.asarray(P), jnp.asarray(R), gamma, jnp.asarray(rho0))
    M = np.eye(S) - gamma * np.einsum("sa,sat->st", pi, P)
    return mdp, jnp.asarray(pi), M, (pi * R).sum(1), rho0


def assert_solves(x, M: np.ndarray, b: np.ndarray, eps: float = EPS, built: tuple[int, float] | None = None) -> None:
    """x agrees with numpy's LAPACK solve of M x = b to 64·ε·κ∞(M) relative to ‖x‖∞.

    `built = (A, c)`: the library built its own M = I − γP_π and b from sums over A actions (b's
    terms bounded by c; c = 0 when b is given, as ρ0 is), so its system differs from numpy's by
    rounding: each side's entries are within (A − 1)·ε of the exact sums (recursive summation), so
    ‖ΔM‖∞ ≤ 2Aε‖I − M‖∞, ‖Δb‖∞ ≤ 2Aεc, and the solutions may differ by a further
    ‖M⁻¹‖∞(‖ΔM‖∞‖x‖∞ + ‖Δb‖∞) (Higham, Accuracy and Stability, Thm. 7.2). This term matters when
    γ is near 1 and A is large: 1 − γ·P_π cancels.
    """
    expected = np.linalg.solve(M, b)
    inverse_norm = float(np.linalg.norm(np.linalg.inv(M), np.inf))
    kappa = float(np.linalg.norm(M, np.inf)) * inverse_norm
    scale = max(1.0, float(np.max(np.abs(expected))))
    tolerance = 64 * eps * kappa * scale
    if built is not None:
        A, c = built
        size = float(np.max(np.abs(expected)))
        tolerance += 2 * A * eps * inverse_norm * (float(np.linalg.norm(np.eye(len(M)) - M, np.inf)) * size + c)
    np.testing.assert_allclose(np.asarray(x), expected, rtol=0, atol=tolerance)


@at_most(40)
@given(
    S=st.sampled_from(SIZES),
    A=st.sampled_from(ACTIONS),
    gamma=st.sampled_from([0.0, 0.5, 0.9, 0.99, 0.999]),
    kind=st.sampled_from(["dense", "deterministic", "absorbing", "sparse"]),
    policy_kind=st.sampled_from(["soft", "deterministic", "uniform"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_bellman_solves_match_lapack_on_every_path(S, A, gamma, kind, policy_kind, seed):
    """V^π = (I − γP_π)⁻¹ r_π and ρ_π = (I − γP_π)⁻ᵀ ρ0 agree with numpy.linalg.solve (P_π and r_π
    built there by numpy's einsum), on every solver path and both ways of summing over actions."""
    mdp, pi, M, r, rho0 = system(S, A, gamma, kind, seed, policy_kind)
    max_reward = float(np.max(np.abs(np.asarray(mdp.R))))
    assert_solves(jax.jit(rf.policy_evaluation)(mdp, pi), M, r, built=(A, max_reward))
    assert_solves(jax.jit(rf.discounted_visitation)(mdp, pi), M.T, rho0, built=(A, 0.0))


@pytest.mark.parametrize("S", [16, 100, 200])
def test_gradient_through_the_solve_is_the_policy_gradient_theorem(S):
    """∂J/∂θ[s,a] by autodiff through the solve (lineax transposes the solver) equals
    ρ_π(s) π(a|s) A_π(s,a) computed with numpy's solves, on each path."""
    rng = np.random.default_rng(S)
    A, gamma = 3, 0.99
    P = transition_tensor(rng, S, A, "dense")
    R = rng.uniform(-1, 1, size=(S, A))
    rho0 = rng.dirichlet(np.ones(S))
    theta = rng.uniform(-2, 2, size=(S, A))
    mdp = rf.FiniteMDP(jnp.asarray(P), jnp.asarray(R), gamma, jnp.asarray(rho0))
    grad = jax.jit(jax.grad(lambda th: rf.expected_return(mdp, jax.nn.softmax(th, axis=-1))))(jnp.asarray(theta))

    pi = np.exp(theta - theta.max(1, keepdims=True))
    pi /= pi.sum(1, keepdims=True)
    M = np.eye(S) - gamma * np.einsum("sa,sat->st", pi, P)
    V = np.linalg.solve(M, (pi * R).sum(1))
    rho = np.linalg.solve(M.T, rho0)
    advantage = R + gamma * P @ V - V[:, None]
    expected = rho[:, None] * pi * advantage
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=0, atol=1e-11 * (1 + np.abs(expected).max()))


@pytest.mark.parametrize("one_minus_gamma", [1e-6, 1e-9])
def test_refinement_falls_back_to_float64_when_float32_cannot_converge(one_minus_gamma):
    """γ = 1 − 1e-6 (κ∞ ≈ 2·10⁶, near the limit of float32 refinement) and γ = 1 − 1e-9 (γ rounds
    to 1 in float32: the float32 factorisation is singular and only the float64 fallback can
    answer); either way the float64 solution, to ε·κ∞."""
    S, A = 160, 2
    gamma = 1.0 - one_minus_gamma
    mdp, pi, M, r, rho0 = system(S, A, gamma, "dense", seed=7)
    assert_solves(jax.jit(rf.policy_evaluation)(mdp, pi), M, r)
    assert_solves(jax.jit(rf.discounted_visitation)(mdp, pi), M.T, rho0)


def test_vmapped_solves_equal_one_at_a_time():
    """A batch of large systems under vmap (the fallback's cond becomes a select) gives, system
    by system, what the unbatched solve gives."""
    cases = [system(150, 3, g, "dense", seed) for seed, g in enumerate([0.5, 0.99, 1 - 1e-9])]
    mdps = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[c[0] for c in cases])
    pis = jnp.stack([c[1] for c in cases])
    batched = jax.jit(jax.vmap(rf.policy_evaluation))(mdps, pis)
    for i, (mdp, pi, M, r, _) in enumerate(cases):
        assert_solves(batched[i], M, r)
        np.testing.assert_allclose(batched[i], rf.policy_evaluation(mdp, pi), rtol=0, atol=1e-12 * (1 + abs(r).max()))


def test_float32_systems_are_solved_in_float32():
    """A float32 MDP of size ≥ 128 takes the plain float32 LU: float32 result, float32 accuracy."""
    mdp, pi, M, r, _ = system(200, 3, 0.9, "dense", seed=3)
    mdp32 = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32) if isinstance(x, jax.Array) else x, mdp)
    V = rf.policy_evaluation(mdp32, pi.astype(jnp.float32))
    assert V.dtype == jnp.float32
    assert_solves(V, M, r, eps=float(np.finfo(np.float32).eps))
