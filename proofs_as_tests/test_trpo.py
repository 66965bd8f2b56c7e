"""Notes §3: the Fisher matrix, the natural-gradient step and the TRPO update. Catalogue item B13 (`docs/notes.md`)."""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, strategies as st

import reference as rf
from proofs_as_tests.strategies import at_most, mdps, tol


def tabular_kl(theta_old, weights):
    """θ ↦ Σ_s w_s D_KL(softmax(θ_old[s]) ‖ softmax(θ[s]))."""
    p = jax.nn.softmax(theta_old, -1)
    return lambda theta: jnp.dot(weights, rf.kl_divergence(p, jax.nn.softmax(theta, -1)))


@jax.jit
def _tabular_fisher_matrix(theta, w, damping):
    """The matrix of `fisher_vector_product` of Σ_s w_s KL at θ, column i = H·e_i (one compilation per shape)."""
    S, A = theta.shape
    fvp = rf.fisher_vector_product(tabular_kl(theta, w), theta, damping)
    return jax.vmap(lambda e: fvp(e.reshape(S, A)).reshape(-1), out_axes=1)(jnp.eye(S * A, dtype=theta.dtype))


@given(st.integers(1, 4), st.integers(2, 4), st.data())
def test_tabular_softmax_fisher_matches_closed_form(S, A, data):
    """A48, B13: for a tabular softmax the Hessian of Σ_s w_s KL at θ_old, by autodiff
    (forward-over-reverse), equals blockdiag_s w_s (diag π_s − π_s π_sᵀ); damping adds λI."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    theta = jnp.asarray(rng.uniform(-3, 3, (S, A)))
    w = jnp.asarray(rng.uniform(0.1, 2, S))
    damping = data.draw(st.sampled_from([0.0, 0.1]))
    H = np.asarray(_tabular_fisher_matrix(theta, w, damping))
    n = S * A
    pi = np.asarray(jax.nn.softmax(theta, -1))
    closed = np.zeros((n, n))
    for s in range(S):
        block = float(w[s]) * (np.diag(pi[s]) - np.outer(pi[s], pi[s]))
        closed[s * A : (s + 1) * A, s * A : (s + 1) * A] = block
    np.testing.assert_allclose(H, closed + damping * np.eye(n), rtol=0, atol=1e-12)


@jax.jit
def _tabular_natural_step(mdp, theta, w, delta):
    """`natural_gradient_step` on the gradient of `surrogate_objective` at θ with the Fisher of
    Σ_s w_s KL (CG: exact in ≤ SA steps, up to round-off; one compilation per shape)."""
    pi = jax.nn.softmax(theta, -1)
    grad = jax.grad(lambda th: rf.surrogate_objective(mdp, pi, jax.nn.softmax(th, -1)))(theta)
    fvp = rf.fisher_vector_product(tabular_kl(theta, w), theta)
    return rf.natural_gradient_step(grad, fvp, delta, cg_steps=10 * theta.size)


@at_most(30)
@given(mdps(min_actions=2), st.data(), st.sampled_from([1e-3, 0.01, 0.5]))
def test_tabular_natural_gradient_is_the_weighted_advantage(mdp, data, delta):
    """B13, tabular softmax: with g = ∇_θ L_π(π_θ) at θ_k and H the Fisher of Σ_s w_s KL,
    H⁺g = (ρ/w)⊙Ā + a per-state constant (Ā = A_π, which has zero π-mean), so the natural step is
    d = √(2δ / Σ_s (ρ_s²/w_s) Σ_a π Ā²)·((ρ/w)⊙Ā − its per-state mean) up to a per-state constant.
    Right side in numpy from an independently solved A_π and ρ_π; left side from
    `natural_gradient_step` with `fisher_vector_product` and the gradient of `surrogate_objective`.
    With w = ρ it is the centred advantage (the known natural policy gradient)."""
    S, A = mdp.num_states, mdp.num_actions
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    theta = jnp.asarray(rng.uniform(-2, 2, (S, A)))
    pi = jax.nn.softmax(theta, -1)
    P, R, g = np.asarray(mdp.P), np.asarray(mdp.R), float(mdp.gamma)
    p = np.asarray(pi)
    P_pi = np.einsum("sa,sat->st", p, P)
    V = np.linalg.solve(np.eye(S) - g * P_pi, (p * R).sum(1))
    adv = R + g * P @ V - V[:, None]
    rho = np.linalg.solve((np.eye(S) - g * P_pi).T, np.asarray(mdp.rho0))
    w = rho if data.draw(st.booleans()) else rng.uniform(0.1, 2.0, S)
    if np.min(w) <= 1e-6 or np.max(np.abs(adv)) <= 1e-6:
        return  # a state never visited (w = 0) or no advantage anywhere: no step to compare
    d = np.asarray(_tabular_natural_step(mdp, theta, jnp.asarray(w), delta))
    x = (rho / w)[:, None] * adv
    x = x - x.mean(axis=1, keepdims=True)
    quad = np.sum(w * ((p * x**2).sum(1) - (p * x).sum(1) ** 2))  # xᵀHx = Σ_s w_s Var_π(x_s)
    expected = np.sqrt(2 * delta / quad) * x
    # compared up to the per-state constant the claim allows (H's null space: round-off in CG can
    # put a component there; it changes neither dᵀHd nor the policy softmax(θ + d))
    centred = d - d.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(centred, expected, rtol=0, atol=1e-6 * (1 + np.abs(expected).max()))


@functools.partial(jax.jit, static_argnames="cg_steps")
def _natural_step(g, H, delta, cg_steps):
    """`natural_gradient_step` with v ↦ Hv, compiled once per shape (a new closure per call would
    make lineax compile its CG again at every example)."""
    return rf.natural_gradient_step(g, lambda v: H @ v, delta, cg_steps=cg_steps)


@functools.partial(jax.jit, static_argnames="cg_steps")
def _natural_step_on_a_tree(g, H, delta, cg_steps):
    """The same step with g and Hv as a dict of two blocks {a: first k entries, b: the rest}."""
    k = g["a"].shape[0]

    def tree_fvp(v):
        flat = H @ jnp.concatenate([v["a"], v["b"]])
        return {"a": flat[:k], "b": flat[k:]}

    return rf.natural_gradient_step(g, tree_fvp, delta, cg_steps=cg_steps)


@given(st.integers(1, 6), st.data())
def test_natural_gradient_step_is_optimal_on_the_ellipsoid(n, data):
    """A49, B13: d* = √(2δ/gᵀH⁻¹g) H⁻¹g lies on the boundary ½dᵀHd = δ, equals the formula
    with numpy's solve, maximises gᵀd there (no random boundary point does better), and the
    pytree form (a dict of two blocks) gives the same step as the flat vector."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    M = rng.normal(size=(n, n))
    H = M @ M.T + 0.1 * np.eye(n)
    g = rng.normal(size=n)
    delta = float(data.draw(st.sampled_from([1e-3, 0.01, 0.5])))
    Hj = jnp.asarray(H)
    d = np.asarray(_natural_step(jnp.asarray(g), Hj, delta, cg_steps=4 * n))
    x = np.linalg.solve(H, g)
    np.testing.assert_allclose(d, np.sqrt(2 * delta / (g @ x)) * x, rtol=1e-8, atol=1e-12)
    assert abs(0.5 * d @ H @ d - delta) <= 1e-9 * delta
    for _ in range(20):
        u = rng.normal(size=n)
        u *= np.sqrt(2 * delta / (u @ H @ u))
        assert g @ u <= g @ d + 1e-12
    k = n // 2
    tree_g = {"a": jnp.asarray(g[:k]), "b": jnp.asarray(g[k:])}
    tree_d = _natural_step_on_a_tree(tree_g, Hj, delta, cg_steps=4 * n)
    np.testing.assert_allclose(np.concatenate([tree_d["a"], tree_d["b"]]), d, rtol=1e-8, atol=1e-12)


@given(st.integers(4, 10), st.integers(1, 3), st.data())
def test_truncated_cg_step_is_the_krylov_step_on_the_ellipsoid(n, k, data):
    """A49 with CG stopped after k < n steps (the trainer's case): CG's k-th iterate is the
    Galerkin solution s_k = K(KᵀHK)⁻¹Kᵀg on the Krylov space K = span{g, Hg, …, H^{k−1}g}
    (computed here by numpy from an orthonormal basis of K, no CG), and the step
    √(2δ/s_kᵀHs_k)·s_k lies on the boundary ½dᵀHd = δ: its scale uses s_kᵀg, which equals s_kᵀHs_k
    only because the residual g − Hs_k is orthogonal to K."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    M = rng.normal(size=(n, n))
    H = M @ M.T / n + 0.5 * np.eye(n)
    g = rng.normal(size=n)
    delta = 0.01
    d = np.asarray(_natural_step(jnp.asarray(g), jnp.asarray(H), delta, cg_steps=k))
    krylov = np.stack([np.linalg.matrix_power(H, j) @ g for j in range(k)], axis=1)
    K, _ = np.linalg.qr(krylov)
    s = K @ np.linalg.solve(K.T @ H @ K, K.T @ g)
    np.testing.assert_allclose(d, np.sqrt(2 * delta / (s @ H @ s)) * s, rtol=1e-8, atol=1e-12)
    assert abs(0.5 * d @ H @ d - delta) <= 1e-9 * delta


F64 = float(np.finfo(np.float64).eps) / 2  # unit round-off u of float64


def kl_rounding_bound(theta, direction, e, weights, fvp_direction) -> float:
    """An upper bound on |fl(KL(θ + eΔ)) − KL(θ + eΔ)| for `tabular_kl` in float64.

    Each term p(log p − log q) of Σ_s w_s Σ_a is computed from softmax outputs with relative
    error ≤ (A + 3)u (max-shift, A exponentials, one sum, one division), so log p and log q carry
    absolute errors ≤ u|log| + (A + 3)u; with Σ_a p = 1 the errors of the two logs add at most
    u(2L + 2(A + 3)) per state, L = max_{s,a}(|log p|, |log q|). The subtraction and the weighted
    sums over A actions and S states add ≤ (A + S + 2)u · Σ_s w_s Σ_a p(|log p| + |log q|)
    ≤ (A + S + 2)u · 2L. Rounding θ + eΔ moves the argument by ≤ u|θ + eΔ| per entry, which
    moves the KL by ≤ u‖θ + eΔ‖∞ ‖∇KL‖₁ with ∇KL(θ + eΔ) = eHΔ + O(e²) (bounded by 2e‖HΔ‖₁).
    Everything is doubled for safety; for e = 1e-3 the bound is ~1e-14, i.e. ~1e-8 after division
    by e², far below the O(1)·ΔᵀHΔ a wrong Hessian would leave.
    """
    S, A = theta.shape
    p = jax.nn.softmax(theta, -1)
    q = jax.nn.softmax(theta + e * direction, -1)
    L = float(jnp.max(jnp.abs(jnp.concatenate([jnp.log(p), jnp.log(q)]))))
    logs = 2 * L + 2 * (A + 3) + (A + S + 2) * 2 * L
    shift = float(jnp.max(jnp.abs(theta + e * direction))) * 2 * e * float(jnp.sum(jnp.abs(fvp_direction)))
    return 2 * F64 * (float(jnp.sum(weights)) * logs + shift)


CAUCHY = -math.log(2 - math.exp(0.5))  # ≈ 1.046: the bound on |log E e^{t(Δ − EΔ)}| at |t| = 1/(2M)


@at_most(40)  # each example compiles new shapes
@given(st.integers(1, 4), st.integers(2, 4), st.data())
def test_mean_kl_is_quadratic_in_the_fisher_to_second_order(S, A, data):
    """B13: E_s KL(π_k‖π_{θk+εΔ}) = ½ε²ΔᵀHΔ + O(ε³): no constant or linear term, and the
    quadratic coefficient is q = ½ΔᵀHΔ with H from `fisher_vector_product`.

    Per state, KL(π‖softmax(θ + εΔ)) = log E_π e^{ε(Δ − E_πΔ)}, the cumulant generating function
    of the centred Δ, so its Taylor coefficients are the cumulants κ_n/n! (n ≥ 2). With M the
    largest |Δ_{s,a} − E_πΔ_s|, on the circle |ε| = 1/(2M) the expectation is within e^{1/2} − 1
    of 1, so the logarithm is analytic inside and at most c = −log(2 − e^{1/2}) ≈ 1.046 in
    modulus there; Cauchy's estimate bounds every coefficient of the w-weighted sum by
    c·Σw·(2M)^n. At ε = 1e-3 (2Mε < 1) this gives, with the KL's computed rounding bound r(ε)
    (`kl_rounding_bound`) added:
    - the odd part (KL(ε) − KL(−ε))/2 = Σ_{odd n ≥ 3} a_n ε^n has no linear term: it is at most
      c·Σw·(2Mε)³/(1 − (2Mε)²);
    - the even part over ε², D(ε) = q + a_4ε² + a_6ε⁴ + …, extrapolated (Richardson,
      (4D(ε/2) − D(ε))/3, which cancels a_4) equals q up to c·Σw·(2M)⁶ε⁴/(3(1 − (2Mε)²)).
    A Hessian off by a factor f leaves |1 − f|·q. (An earlier form of this proof compared
    remainders at two ε, assuming the ε³ term dominates the ε⁴ term; the thorough profile found
    a direction at S = 1, A = 3 where they cancel near ε = 4e-3, and it failed on correct code.)
    """
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    theta = jnp.asarray(rng.uniform(-2, 2, (S, A)))
    w = jnp.asarray(rng.dirichlet(np.ones(S)))
    kl = tabular_kl(theta, w)
    fvp = rf.fisher_vector_product(kl, theta)
    direction = jnp.asarray(rng.normal(size=(S, A)))
    h_direction = fvp(direction)
    quad = 0.5 * float(jnp.vdot(direction, h_direction))
    # rounding of q itself: a dot product of S·A terms, relative error ≤ S·A·u of Σ|Δ||HΔ|
    q_round = S * A * F64 * float(jnp.sum(jnp.abs(direction * h_direction)))

    pi, d = np.asarray(jax.nn.softmax(theta, -1)), np.asarray(direction)
    M = float(np.max(np.abs(d - np.sum(pi * d, -1, keepdims=True))))
    scale, eps = CAUCHY * float(np.sum(np.asarray(w))), 1e-3
    x = 2 * M * eps
    assert x < 0.5  # inside the circle, with the geometric tails below at most doubled

    def kl_at(e):  # KL(θ + eΔ), KL(θ − eΔ) and a rounding bound for each
        r = kl_rounding_bound(theta, direction, e, w, h_direction) + kl_rounding_bound(
            theta, -direction, e, w, h_direction
        )
        return float(kl(theta + e * direction)), float(kl(theta - e * direction)), r

    plus, minus, r = kl_at(eps)
    assert abs(plus - minus) / 2 <= scale * x**3 / (1 - x**2) + r
    half_plus, half_minus, half_r = kl_at(eps / 2)
    even_full, even_half = (plus + minus) / 2 / eps**2, (half_plus + half_minus) / 2 / (eps / 2) ** 2
    extrapolated = (4 * even_half - even_full) / 3
    truncation = scale * (2 * M) ** 6 * eps**4 / (3 * (1 - x**2))
    rounding = (4 * half_r / 2 / (eps / 2) ** 2 + r / 2 / eps**2) / 3 + q_round + 8 * F64 * abs(quad)
    assert abs(extrapolated - quad) <= truncation + rounding, (extrapolated, quad, truncation, rounding)


def tabular_problem(mdp, theta_old):
    pi_old = jax.nn.softmax(theta_old, -1)
    rho = rf.discounted_visitation(mdp, pi_old)
    A = rf.advantages(mdp, pi_old)

    def surrogate(theta):
        return jnp.dot(rho, jnp.sum(jax.nn.softmax(theta, -1) * A, -1))

    def kl(theta):
        return rf.mean_kl(mdp, pi_old, jax.nn.softmax(theta, -1))

    return surrogate, kl


@jax.jit
def tabular_trpo(mdp, theta, delta):
    surrogate, kl = tabular_problem(mdp, theta)
    new = rf.trpo_update(surrogate, kl, theta, delta)
    return new, kl(new), surrogate(new), surrogate(theta)


@given(mdps(min_actions=2, max_gamma=0.95), st.sampled_from([1e-3, 1e-2, 1e-1]), st.data())
def test_trpo_update_improves_within_the_trust_region(mdp, delta, data):
    """A27, A49: a TRPO update on a tabular softmax policy moves to a θ with mean KL ≤ δ and a
    strictly better surrogate L_π(π_θ) (the exact surrogate, ρ and A_π from linear solves); with a
    small radius (δ ≤ 0.01) and a non-zero surrogate gradient a step MUST be taken (a line search
    that never accepts would pass the weaker test)."""
    S, A = mdp.num_states, mdp.num_actions
    theta = jnp.asarray(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(-2, 2, (S, A)))
    new, kl_new, sur_new, sur_old = tabular_trpo(mdp, theta, delta)
    A = rf.advantages(mdp, jax.nn.softmax(theta, -1))
    rho = rf.discounted_visitation(mdp, jax.nn.softmax(theta, -1))
    # the exact surrogate's gradient, ∂L/∂θ[s, a] = ρ(s)π(a|s)A(s, a): something to gain iff non-zero
    gain_available = float(jnp.max(jnp.abs(rho[:, None] * jax.nn.softmax(theta, -1) * A))) > 1e-6
    taken = not bool(jnp.all(new == theta))
    if gain_available and delta <= 0.01:
        # a small trust region: the quadratic model is accurate, so a step must be accepted
        assert taken, "no step was accepted although the surrogate's gradient is non-zero"
    if taken:
        assert float(kl_new) <= delta
        # strictly better, up to round-off when every advantage is zero (nothing to gain)
        scale = tol(A, rel=1e-12)
        assert float(sur_new) > float(sur_old) - scale


def test_trpo_update_on_an_equinox_mlp_pytree():
    """A49 on a parameter pytree: an equinox MLP policy over one-hot states takes a TRPO step
    that stays in the KL ball and raises the exact surrogate of a random MDP."""
    mdp = rf.random_mdp(jax.random.key(0), 6, 3, 0.9)
    model = eqx.nn.MLP(6, 3, 16, 2, key=jax.random.key(1))
    params, static = eqx.partition(model, eqx.is_array)
    states = jnp.eye(6)

    def policy(p):
        return jax.nn.softmax(jax.vmap(eqx.combine(p, static))(states), -1)

    pi_old = policy(params)
    rho, A = rf.discounted_visitation(mdp, pi_old), rf.advantages(mdp, pi_old)

    def surrogate(p):
        return jnp.dot(rho, jnp.sum(policy(p) * A, -1))

    def kl(p):
        return rf.mean_kl(mdp, pi_old, policy(p))

    # one compiled program (run eagerly, the step's ~200 small operations compile one by one)
    new = jax.jit(lambda p: rf.trpo_update(surrogate, kl, p, 0.01))(params)
    assert float(kl(new)) <= 0.01
    assert float(surrogate(new)) > float(surrogate(params))
    assert float(rf.expected_return(mdp, policy(new))) > float(rf.expected_return(mdp, pi_old))


def test_line_search_closed_form_cases():
    """A49's backtracking line search on cases solved by hand (params θ = 0, step s, candidates
    θ + 0.8^j s, accepted when KL ≤ δ, the gain is > 0 and ≥ ½·0.8^j·(expected improvement)):
    - KL(x) = ‖x‖², ‖s‖² = 1.5δ, linear surrogate: the full step breaks the KL (1.5δ > δ), the
      first backtrack (0.64·1.5δ = 0.96δ) is accepted: θ = 0.8 s;
    - surrogate x − x² with s = 1, expected 1, KL never binding: the gain 0.8^j − 0.8^{2j} reaches
      ½·0.8^j first at 0.8^j ≤ ½, j = 4: θ = 0.8⁴;
    - a surrogate that every candidate lowers: nothing is accepted, θ stays 0."""
    delta = 0.01
    s = jnp.asarray([jnp.sqrt(1.5 * delta), 0.0])
    zero = jnp.zeros(2)
    linear = lambda x: x[0]
    sq = lambda x: jnp.sum(x**2)
    got = rf.backtracking_line_search(linear, sq, zero, s, delta, float(s[0]))
    np.testing.assert_allclose(got, 0.8 * s, rtol=1e-14)
    one = jnp.asarray([1.0])
    concave = lambda x: x[0] - x[0] ** 2
    got = rf.backtracking_line_search(concave, lambda x: 0.0 * x[0], jnp.zeros(1), one, 2.0, 1.0)
    np.testing.assert_allclose(got, 0.8**4 * one, rtol=1e-14)
    got = rf.backtracking_line_search(lambda x: -x[0], lambda x: 0.0 * x[0], jnp.zeros(1), one, 2.0, 1.0)
    np.testing.assert_allclose(got, jnp.zeros(1), atol=0)


@jax.jit
def _float32_trpo_step(g, c):
    return rf.trpo_update(lambda p: g @ p, lambda p: 0.5 * jnp.sum(c * p**2), jnp.zeros_like(g), 0.01, 0.1, 10)


@at_most(10)
@given(st.integers(0, 2**31 - 1))
def test_trpo_update_in_float32_solves_a_fisher_small_beside_its_damping(seed):
    """A47–A49 in float32 with many parameters: 6,000 parameters, a Fisher diag(c) with c in [0, 0.02]
    (a nearly deterministic policy's: small beside the damping 0.1), 10 CG steps. `trpo_update` takes
    the natural-gradient step d = √(2δ/gᵀA⁻¹g)·A⁻¹g, A = diag(c) + 0.1·I, computed here in float64
    (the first candidate is accepted: ½dᵀdiag(c)d < ½dᵀAd = δ and the surrogate gains gᵀd). lineax's
    CG declares a breakdown (NaN) when pᵀAp < 2·eps·size·100·rᵀr, 0.14·rᵀr here, which
    eigenvalues near 0.1 would trigger: the solve must be scaled by the damping to stay finite; and
    a fallback along g would fail the comparison (A⁻¹g is not parallel to g)."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=6000)
    c = rng.uniform(0.0, 0.02, size=6000)
    a_inv_g = g / (c + 0.1)
    expected = np.sqrt(2 * 0.01 / (g @ a_inv_g)) * a_inv_g
    step = _float32_trpo_step(jnp.asarray(g, jnp.float32), jnp.asarray(c, jnp.float32))
    assert step.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(step, np.float64), expected, rtol=2e-3, atol=1e-6)


def test_natural_gradient_step_falls_back_to_g_when_cg_breaks_down():
    """H = 0.11·I on 6,000 float32 parameters: lineax's CG declares a breakdown at its first step
    (pᵀHp = 0.11·rᵀr < 200·eps·6000·rᵀr ≈ 0.14·rᵀr), so the direction is g, which for H = cI is
    also H⁻¹g's: d = √(2δ/(gᵀg/c))·g/c, finite, on the ellipsoid ½dᵀHd = δ."""
    g = np.random.default_rng(0).normal(size=6000)
    d = rf.natural_gradient_step(jnp.asarray(g, jnp.float32), lambda v: 0.11 * v, 0.01)
    expected = np.sqrt(2 * 0.01 / (g @ g / 0.11)) * g / 0.11
    np.testing.assert_allclose(np.asarray(d, np.float64), expected, rtol=1e-4, atol=1e-7)
