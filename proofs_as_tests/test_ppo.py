"""Notes §3: PPO's clipped objective and GAE. Catalogue items B14, B25 (`docs/notes.md`)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, strategies as st

import reference as rf
from proofs_as_tests.strategies import at_most, mdp_and_policy, mdps, tol

ratios = st.floats(0.01, 5.0, allow_subnormal=False)  # XLA on CPU flushes subnormals to zero
advs = st.floats(-10.0, 10.0, allow_subnormal=False)
eps_values = st.floats(0.01, 0.9)


@given(st.lists(st.tuples(ratios, advs), min_size=1, max_size=20), eps_values)
def test_ppo_clip_closed_form(samples, eps):
    """A29, A32–A35, B14 (i, ii, v): min(rA, clip(r)A) equals A·min(r, 1+ε) for A ≥ 0 and
    A·max(r, 1−ε) for A < 0, never exceeds rA, and equals A at r = 1; the ratio is
    exp(log π_new − log π_old)."""
    r = jnp.asarray([s[0] for s in samples])
    A = jnp.asarray([s[1] for s in samples])
    f = rf.ppo_clip_objective(r, A, eps)
    closed = np.where(
        np.asarray(A) >= 0, np.asarray(A) * np.minimum(r, 1 + eps), np.asarray(A) * np.maximum(r, 1 - eps)
    )
    np.testing.assert_allclose(f, closed, rtol=1e-14, atol=1e-14)
    assert bool(jnp.all(f <= r * A + 1e-12))
    np.testing.assert_allclose(rf.ppo_clip_objective(jnp.ones_like(A), A, eps), A, rtol=1e-15)
    np.testing.assert_allclose(rf.probability_ratio(jnp.log(r), jnp.zeros_like(r)), r, rtol=1e-14)


@given(ratios, advs, eps_values)
def test_ppo_clip_gradient_regions(r, A, eps):
    """B14 (iv), C15: ∂f/∂r = 0 when (A > 0, r > 1+ε) or (A < 0, r < 1−ε) — the improving side
    is capped — and ∂f/∂r = A otherwise, including the 'wrong-direction' regions r < 1−ε with
    A > 0 and r > 1+ε with A < 0 where the gradient is kept (away from the kinks)."""
    # away from the kinks; |A| far above the subnormal range (XLA on CPU flushes it to zero)
    if min(abs(r - (1 + eps)), abs(r - (1 - eps))) < 1e-6 or abs(A) < 1e-100:
        return
    grad = float(jax.grad(lambda x: rf.ppo_clip_objective(x, jnp.asarray(A), eps))(jnp.asarray(r)))
    capped = (A > 0 and r > 1 + eps) or (A < 0 and r < 1 - eps)
    assert grad == (0.0 if capped else A)


clip_objective_grad = jax.jit(
    jax.grad(
        lambda th, th_old, rho, A, eps: jnp.dot(
            rho,
            jnp.sum(
                jax.nn.softmax(th_old, -1)
                * rf.ppo_clip_objective(jax.nn.softmax(th, -1) / jax.nn.softmax(th_old, -1), A, eps),
                -1,
            ),
        )
    )
)
grad_J = jax.jit(jax.grad(lambda th, mdp: rf.expected_return(mdp, jax.nn.softmax(th, -1))))


@given(mdps(min_actions=2), st.data())
def test_ppo_clip_gradient_at_old_policy_is_policy_gradient(mdp, data):
    """B14 (iii): with exact advantages and the unnormalised ρ, the gradient of
    L^CLIP(θ) = Σ_s ρ(s) Σ_a π_k(a|s) f(π_θ/π_k, A) at θ = θ_k equals ∇J(θ_k)."""
    S, A_ = mdp.num_states, mdp.num_actions
    theta = jnp.asarray(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).uniform(-3, 3, (S, A_)))
    pi = jax.nn.softmax(theta, -1)
    g = clip_objective_grad(theta, theta, rf.discounted_visitation(mdp, pi), rf.advantages(mdp, pi), 0.2)
    np.testing.assert_allclose(g, grad_J(theta, mdp), rtol=0, atol=tol(rf.state_values(mdp, pi), rel=1e-9))


@at_most(60)
@given(mdp_and_policy(max_states=3, max_actions=2, kinds=("soft", "uniform")), st.integers(1, 3), st.floats(0.0, 1.0))
def test_gae_with_exact_values_is_unbiased(case, T, lam):
    """B25 (A31): with V = V_π exact, E[Â_0 | s_0, a_0] = A_π(s_0, a_0) for every λ — computed
    exactly by enumerating every trajectory (s_0, a_0, s_1, a_1, …, s_T) and weighting the
    output of generalized_advantage_estimate by its probability (no sampling)."""
    mdp, pi = case
    S, A = mdp.num_states, mdp.num_actions
    g = float(mdp.gamma)
    V = np.asarray(rf.state_values(mdp, pi))
    P, R, pi_np = np.asarray(mdp.P), np.asarray(mdp.R), np.asarray(pi)
    adv = np.asarray(rf.advantages(mdp, pi))
    for s0, a0 in itertools.product(range(S), range(A)):
        rewards, values, weights = [], [], []
        for rest in itertools.product(*([range(S), range(A)] * (T - 1)), range(S)):
            states = [s0, *rest[0 : 2 * (T - 1) : 2], rest[-1]]
            actions = [a0, *rest[1 : 2 * (T - 1) : 2]]
            w = 1.0
            for t in range(T):
                w *= P[states[t], actions[t], states[t + 1]]
                if t + 1 < T:
                    w *= pi_np[states[t + 1], actions[t + 1]]
            rewards.append([R[states[t], actions[t]] for t in range(T)])
            values.append([V[s] for s in states])
            weights.append(w)
        est = jax.vmap(lambda r, v: rf.generalized_advantage_estimate(r, v, jnp.zeros(T), g, lam))(
            jnp.asarray(rewards), jnp.asarray(values)
        )
        expectation = float(np.dot(weights, np.asarray(est)[:, 0]))
        assert abs(np.sum(weights) - 1) <= 1e-12
        assert abs(expectation - adv[s0, a0]) <= tol(V, rel=1e-10)


@given(st.integers(1, 12), st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.data())
def test_gae_matches_explicit_sums_with_episode_ends(T, gamma, lam, data):
    """A31: GAE equals Σ_l (γλ)^l δ_{t+l} summed to the end of the episode, with
    δ_t = r_t + γ(1−d_t)V_{t+1} − V_t; λ = 0 gives δ_t; λ = 1 gives the discounted return to
    the episode's end (bootstrapped by V at a cut-off) minus V_t."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    r = rng.normal(size=T)
    v = rng.normal(size=T + 1)
    d = (rng.random(T) < 0.3).astype(float)
    deltas = r + gamma * (1 - d) * v[1:] - v[:-1]
    expected = np.zeros(T)
    for t in range(T):
        total, w = 0.0, 1.0
        for k in range(t, T):
            total += w * deltas[k]
            if d[k]:
                break
            w *= gamma * lam
        expected[t] = total
    got = rf.generalized_advantage_estimate(jnp.asarray(r), jnp.asarray(v), jnp.asarray(d), gamma, lam)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        rf.generalized_advantage_estimate(jnp.asarray(r), jnp.asarray(v), jnp.asarray(d), gamma, 0.0),
        deltas,
        rtol=1e-12,
        atol=1e-12,
    )
    returns = np.zeros(T)
    for t in range(T):
        total, w = 0.0, 1.0
        for k in range(t, T):
            total += w * r[k]
            if d[k]:
                break
            w *= gamma
        else:
            total += w * v[T]
        returns[t] = total
    got1 = rf.generalized_advantage_estimate(jnp.asarray(r), jnp.asarray(v), jnp.asarray(d == 1), gamma, 1.0)
    np.testing.assert_allclose(got1, returns - v[:-1], rtol=1e-9, atol=1e-10)
