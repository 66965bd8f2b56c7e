"""How tight are the bounds? Each inequality of §3–§4 pushed towards equality.

A one-sided inequality proved on random instances cannot tell a right constant from one several
times too small when random instances sit far from equality. Here a small optimiser (Nelder–Mead
from fixed random starts, in numpy, independent of the library) searches over 2-state MDPs —
transitions, rewards, start distribution and both policies — for the instance that maximises
ratio = (the gap the bound allows for) / (the bound's penalty term). The library's bound is then
asserted at the worst instance found, and the ratio found is asserted to stay above the value
stated in each docstring: the bound is at least that tight, so any constant smaller than
ratio × (the true constant) is violated at that instance — a negative control for every weaker
constant. (The constants themselves are pinned against closed forms in `test_trust_region.py`
and `test_markov_game.py`.) The certified value-iteration bound (A14a) is searched the same way.
Catalogue items A14a, B10, B11, B20 (`docs/notes.md`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
import scipy.optimize

import reference as rf

S, A = 2, 2


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


class Unpack:
    """Slices a flat parameter vector into named arrays."""

    def __init__(self, x: np.ndarray):
        self.x, self.i = x, 0

    def __call__(self, *shape: int) -> np.ndarray:
        n = int(np.prod(shape))
        out = self.x[self.i : self.i + n].reshape(shape)
        self.i += n
        return out


def worst_instance(ratio: Callable[[np.ndarray], float], dim: int, starts: int = 6, seed: int = 0):
    """The largest ratio Nelder–Mead finds from `starts` random starts (fixed seed), and where."""
    rng = np.random.default_rng(seed)
    best, best_x = -np.inf, np.zeros(dim)
    for _ in range(starts):
        res = scipy.optimize.minimize(
            lambda x: -ratio(x),
            rng.normal(0.0, 2.0, dim),
            method="Nelder-Mead",
            options={"maxiter": 3000, "xatol": 1e-10, "fatol": 1e-14},
        )
        if -res.fun > best:
            best, best_x = float(-res.fun), res.x
    return best, best_x


def single_agent_instance(x: np.ndarray):
    """(P, R, ρ0, logits of π, logits of π̄) of a 2-state, 2-action MDP."""
    take = Unpack(x)
    P, R = softmax(take(S, A, S)), np.tanh(take(S, A))
    lp, lq, rho0 = take(S, A), take(S, A), softmax(take(S))
    return P, R, rho0, lp, lq


def numpy_terms(P, R, rho0, g, p, q):
    """J(π), J(π̄), L_π(π̄), A_π by numpy's linear solves."""
    n = P.shape[0]
    P_pi = np.einsum("sa,sat->st", p, P)
    V = np.linalg.solve(np.eye(n) - g * P_pi, (p * R).sum(1))
    Adv = R + g * P @ V - V[:, None]
    V_q = np.linalg.solve(np.eye(n) - g * np.einsum("sa,sat->st", q, P), (q * R).sum(1))
    rho = np.linalg.solve((np.eye(n) - g * P_pi).T, rho0)
    return rho0 @ V, rho0 @ V_q, rho0 @ V + rho @ (q * Adv).sum(1), Adv


DIM = S * A * S + S * A + 2 * S * A + S


def library_case(x: np.ndarray, g: float):
    P, R, rho0, lp, lq = single_agent_instance(x)
    return (
        rf.FiniteMDP(jnp.asarray(P), jnp.asarray(R), g, jnp.asarray(rho0)),
        jnp.asarray(softmax(lp)),
        jnp.asarray(softmax(lq)),
    )


def theorem_1_ratio(g: float, form: str) -> Callable[[np.ndarray], float]:
    def ratio(x: np.ndarray) -> float:
        P, R, rho0, lp, lq = single_agent_instance(x)
        p, q = softmax(lp), softmax(lq)
        _, J_q, L, Adv = numpy_terms(P, R, rho0, g, p, q)
        C = 4 * g * np.abs(Adv).max() / (1 - g) ** 2
        if form == "kl":
            D = (p * (log_softmax(lp) - log_softmax(lq))).sum(1).max()
        else:
            D = (0.5 * np.abs(p - q).sum(1).max()) ** 2
        return (L - J_q) / (C * D) if C * D > 1e-9 else 0.0

    return ratio


def test_theorem_1_kl_form_at_its_worst_instance():
    """B10, Theorem 1 (KL form): J(π̄) ≥ L_π(π̄) − C·D_KL^max(π, π̄). At γ = 0.05 the search finds
    (L − J(π̄)) / (C·D_KL^max) ≈ 0.457: the bound holds there (checked with the library), and any
    constant below 0.45·C is violated at that instance (the KL form is the loosest of the three:
    D_KL ≥ 2·D_TV² by Pinsker)."""
    g = 0.05
    worst, x = worst_instance(theorem_1_ratio(g, "kl"), DIM, starts=8)
    assert 0.45 <= worst <= 1.0, worst
    mdp, pi, pi_bar = library_case(x, g)
    assert float(rf.expected_return(mdp, pi_bar)) >= float(rf.trpo_lower_bound(mdp, pi, pi_bar)) - 1e-12


def test_theorem_1_tv_form_at_its_worst_instance():
    """B10, Theorem 1 (TV form, TRPO eq. 8): J(π̄) ≥ L_π(π̄) − C·α², α = max_s D_TV(π(·|s), π̄(·|s)).
    At γ = 0.1 the search finds (L − J(π̄)) / (Cα²) ≈ 0.87: the bound holds there with the library's
    C, and 0.8·C (so also C/2, the Kakade–Langford factor 2 for 4) is violated at that instance."""
    g = 0.1
    worst, x = worst_instance(theorem_1_ratio(g, "tv"), DIM)
    assert 0.85 <= worst <= 1.0, worst
    mdp, pi, pi_bar = library_case(x, g)
    J_bar, L = float(rf.expected_return(mdp, pi_bar)), float(rf.surrogate_objective(mdp, pi, pi_bar))
    penalty = float(rf.penalty_coefficient(mdp, pi)) * float(rf.max_total_variation(pi, pi_bar)) ** 2
    assert J_bar >= L - penalty - 1e-12
    assert J_bar < L - 0.8 * penalty  # negative control: 0.8·C fails here


def test_two_sided_error_bound_at_its_worst_instance():
    """B10, TRPO App. A: |J(π̄) − L_π(π̄)| ≤ 4α²γε/((1−γ)(1−γ(1−α))). At γ = 0.6 the search finds
    |J(π̄) − L| / bound ≈ 0.96 — nearly tight; the library's `surrogate_error_bound` holds there
    and 0.9× it does not."""
    g = 0.6

    def ratio(x: np.ndarray) -> float:
        P, R, rho0, lp, lq = single_agent_instance(x)
        p, q = softmax(lp), softmax(lq)
        _, J_q, L, Adv = numpy_terms(P, R, rho0, g, p, q)
        alpha = 0.5 * np.abs(p - q).sum(1).max()
        bound = 4 * alpha**2 * g * np.abs(Adv).max() / ((1 - g) * (1 - g * (1 - alpha)))
        return abs(J_q - L) / bound if bound > 1e-9 else 0.0

    worst, x = worst_instance(ratio, DIM)
    assert 0.9 <= worst <= 1.0, worst
    mdp, pi, pi_bar = library_case(x, g)
    gap = abs(float(rf.expected_return(mdp, pi_bar)) - float(rf.surrogate_objective(mdp, pi, pi_bar)))
    bound = float(rf.surrogate_error_bound(mdp, pi, pi_bar))
    assert 0.9 * bound < gap <= bound + 1e-12


def test_kakade_langford_bound_at_its_worst_instance():
    """B11 (TRPO eq. 6): for π_new = (1 − α)π + απ′, J(π_new) ≥ L_π(π_new) − 2εγα²/(1−γ)²,
    ε = max_s |E_{a∼π′} A_π(s, a)|. At γ = 0.3 the search (over the MDP, π, π′ and α) finds a ratio
    ≈ 0.999: the bound is tight, holds there (J and L from the library), and 0.95× it fails."""
    g = 0.3

    def split(x: np.ndarray):
        P, R, rho0, lp, lq = single_agent_instance(x[:-1])
        alpha = 1.0 / (1.0 + np.exp(-x[-1]))
        return P, R, rho0, softmax(lp), softmax(lq), alpha

    def ratio(x: np.ndarray) -> float:
        P, R, rho0, p, q, alpha = split(x)
        new = (1 - alpha) * p + alpha * q
        _, J_new, L, Adv = numpy_terms(P, R, rho0, g, p, new)
        penalty = 2 * np.abs((q * Adv).sum(1)).max() * g * alpha**2 / (1 - g) ** 2
        return (L - J_new) / penalty if penalty > 1e-9 else 0.0

    worst, x = worst_instance(ratio, DIM + 1)
    assert 0.95 <= worst <= 1.0 + 1e-9, worst
    P, R, rho0, p, q, alpha = split(x)
    mdp = rf.FiniteMDP(jnp.asarray(P), jnp.asarray(R), g, jnp.asarray(rho0))
    new = jnp.asarray((1 - alpha) * p + alpha * q)
    eps = float(jnp.max(jnp.abs(jnp.sum(jnp.asarray(q) * rf.advantages(mdp, jnp.asarray(p)), axis=-1))))
    penalty = 2 * eps * g * alpha**2 / (1 - g) ** 2
    J_new, L = float(rf.expected_return(mdp, new)), float(rf.surrogate_objective(mdp, jnp.asarray(p), new))
    assert L - penalty - 1e-12 <= J_new < L - 0.95 * penalty


def test_lemma_2_at_its_worst_instance():
    """B20, Lemma 2 (two agents, two actions each, two states, order (0, 1)):
    J(π̄) ≥ J(π) + Σ_m [L^{i_{1:m}} − C·D_KL^max(π^{i_m}, π̄^{i_m})]. At γ = 0.05 the search finds
    (J(π) + Σ_m L − J(π̄)) / (C·Σ_m D_m) ≈ 0.33: `multi_agent_lower_bound` holds there, and any
    constant below 0.3·C is violated at that instance."""
    g = 0.05

    def split(x: np.ndarray):
        take = Unpack(x)
        P, R = softmax(take(S, A, A, S)), np.tanh(take(S, A, A))
        l1, l2, m1, m2 = take(S, A), take(S, A), take(S, A), take(S, A)
        return P, R, softmax(take(S)), (l1, l2), (m1, m2)

    def ratio(x: np.ndarray) -> float:
        P, R, rho0, (l1, l2), (m1, m2) = split(x)
        p1, p2, q1, q2 = map(softmax, (l1, l2, m1, m2))

        def joint_V(u, v):
            joint = (u[:, :, None] * v[:, None, :]).reshape(S, -1)
            P_pi = np.einsum("sa,sat->st", joint, P.reshape(S, -1, S))
            return np.linalg.solve(np.eye(S) - g * P_pi, (joint * R.reshape(S, -1)).sum(1)), P_pi

        V, P_pi = joint_V(p1, p2)
        V_new, _ = joint_V(q1, q2)
        Q = R + g * np.einsum("sabt,t->sab", P, V)
        C = 4 * g * np.abs(Q - V[:, None, None]).max() / (1 - g) ** 2
        rho = np.linalg.solve((np.eye(S) - g * P_pi).T, rho0)
        Q1 = np.einsum("sab,sb->sa", Q, p2)  # Q^{0}
        L1 = rho @ (q1 * (Q1 - V[:, None])).sum(1)
        L2 = rho @ np.einsum("sa,sb,sab->s", q1, q2, Q - Q1[:, :, None])
        D = sum((softmax(lp) * (log_softmax(lp) - log_softmax(lq))).sum(1).max() for lp, lq in ((l1, m1), (l2, m2)))
        return (rho0 @ V + L1 + L2 - rho0 @ V_new) / (C * D) if C * D > 1e-9 else 0.0

    worst, x = worst_instance(ratio, S * A * A * S + S * A * A + 4 * S * A + S)
    assert 0.3 <= worst <= 1.0, worst
    P, R, rho0, (l1, l2), (m1, m2) = split(x)
    game = rf.CooperativeGame(jnp.asarray(P), jnp.asarray(R), g, jnp.asarray(rho0))
    pis = (jnp.asarray(softmax(l1)), jnp.asarray(softmax(l2)))
    new = (jnp.asarray(softmax(m1)), jnp.asarray(softmax(m2)))
    mdp = rf.joint_action_mdp(game)
    J_new = float(rf.expected_return(mdp, rf.joint_policy(new).reshape(S, -1)))
    assert J_new >= float(rf.multi_agent_lower_bound(game, pis, new, (0, 1))) - 1e-12


def test_value_iteration_certificate_at_its_worst_instance():
    """A14a: the certified value-iteration bound is tight. After k = 2 sweeps from V_0 = 0 (γ = 0.9),
    Nelder–Mead over 2-state, 2-action MDPs maximises ‖midpoint − V*‖∞ / bound (V* by enumerating
    the 4 deterministic policies; instances whose bound is below 0.05 are ignored so that rounding
    cannot pose as tightness). The ratio found is 1 to 1e-12: V* sits at an end of the MacQueen
    interval. There, the library's `value_iteration_with_bound(max_iters=2)` certificate holds (up
    to rounding) and 0.99 × its bound does not — the factor γ/(1 − γ) and the halving cannot be
    lowered even by 1%."""
    g, k = 0.9, 2
    c = g / (1 - g)

    def instance(x):
        take = Unpack(x)
        return softmax(take(S, A, S)), np.tanh(take(S, A))

    def v_star(P, R):
        best = np.full(S, -np.inf)
        for a0 in range(A):
            for a1 in range(A):
                p = np.eye(A)[[a0, a1]]
                V = np.linalg.solve(np.eye(S) - g * np.einsum("sa,sat->st", p, P), (p * R).sum(1))
                best = np.maximum(best, V)
        return best

    def ratio(x):
        P, R = instance(x)
        V_prev, V = np.zeros(S), np.zeros(S)
        for _ in range(k):
            V_prev, V = V, (R + g * P @ V).max(1)
        d = V - V_prev
        half = c * (d.max() - d.min()) / 2
        if half < 0.05:
            return 0.0
        return float(np.max(np.abs(V + c * (d.max() + d.min()) / 2 - v_star(P, R))) / half)

    worst, x = worst_instance(ratio, S * A * S + S * A)
    assert worst >= 1 - 1e-9
    P, R = instance(x)
    mdp = rf.FiniteMDP(jnp.asarray(P), jnp.asarray(R), g, jnp.full(S, 0.5))
    result = rf.value_iteration_with_bound(mdp, tol=1e-300, max_iters=k)
    assert int(result.num_iterations) == k
    error = float(np.max(np.abs(np.asarray(result.values) - v_star(P, R))))
    bound = float(result.error_bound)
    assert error <= bound + 1e-12
    assert error > 0.99 * bound
