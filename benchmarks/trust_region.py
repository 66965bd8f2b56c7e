"""Speed of §3: Fisher-vector products and the CG natural-gradient step against one gradient, GAE
against rlax and a numpy loop, and the exact MM step against one policy evaluation.

Run: `python -m benchmarks.trust_region`. Ratios are measured in this run.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import rlax

import reference as rf
from benchmarks._timing import best_time, machine


def bench_fisher() -> None:
    key = jax.random.key(0)
    in_size, actions, width, batch = 64, 16, 256, 1024
    model = eqx.nn.MLP(in_size, actions, width, 2, key=key)
    params, static = eqx.partition(model, eqx.is_array)
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
    obs = jax.random.normal(jax.random.key(1), (batch, in_size))
    old_logp = jax.nn.log_softmax(jax.vmap(model)(obs))

    def kl_fn(p):
        logp = jax.nn.log_softmax(jax.vmap(eqx.combine(p, static))(obs))
        return jnp.mean(jnp.sum(jnp.exp(old_logp) * (old_logp - logp), -1))

    grad = jax.jit(jax.grad(kl_fn))
    fvp_full = jax.jit(lambda p, v: rf.fisher_vector_product(kl_fn, p, 0.1)(v))
    g = jax.tree_util.tree_map(lambda x: jax.random.normal(jax.random.key(2), x.shape), params)

    @jax.jit
    def step(p, g):
        return rf.natural_gradient_step(g, rf.fisher_vector_product(kl_fn, p, 0.1), 0.01, cg_steps=10)

    t_grad = best_time(lambda: grad(params))
    t_fvp = best_time(lambda: fvp_full(params, g))
    t_step = best_time(lambda: step(params, g))
    print(f"MLP policy {in_size}-{width}-{width}-{actions}, {n_params:,} parameters, batch {batch}")
    print(f"  gradient of the KL          {t_grad * 1e3:8.3f} ms")
    print(f"  Fisher-vector product       {t_fvp * 1e3:8.3f} ms   = {t_fvp / t_grad:.2f}× one gradient (target ≤ 3×)")
    print(
        f"  10-step CG natural gradient {t_step * 1e3:8.3f} ms   = {t_step / t_grad:.2f}× one gradient (target ≤ 25×)"
    )


def bench_gae() -> None:
    envs, steps = 64, 1_000_000 // 64
    key = jax.random.key(3)
    r = jax.random.normal(key, (envs, steps))
    v = jax.random.normal(jax.random.key(4), (envs, steps + 1))
    d = (jax.random.uniform(jax.random.key(5), (envs, steps)) < 0.01).astype(r.dtype)
    gamma, lam = 0.99, 0.95
    ours = jax.jit(jax.vmap(lambda r, v, d: rf.generalized_advantage_estimate(r, v, d, gamma, lam)))

    @jax.jit
    def theirs(r, v, d):
        discount = gamma * (1.0 - d)
        return jax.vmap(lambda r, disc, v: rlax.truncated_generalized_advantage_estimation(r, disc, lam, v))(
            r, discount, v
        )

    rn, vn, dn = np.asarray(r), np.asarray(v), np.asarray(d)

    def numpy_loop():
        adv = np.zeros_like(rn)
        last = np.zeros(envs)
        for t in range(steps - 1, -1, -1):
            nd = 1.0 - dn[:, t]
            delta = rn[:, t] + gamma * nd * vn[:, t + 1] - vn[:, t]
            last = delta + gamma * lam * nd * last
            adv[:, t] = last
        return adv

    np.testing.assert_allclose(np.asarray(ours(r, v, d)), np.asarray(theirs(r, v, d)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ours(r, v, d)), numpy_loop(), rtol=1e-4, atol=1e-4)
    t_ours = best_time(lambda: ours(r, v, d))
    t_rlax = best_time(lambda: theirs(r, v, d))
    t_np = best_time(numpy_loop, repeats=2, min_time=0.0)
    print(f"GAE over 10^6 steps ({envs} environments × {steps} steps, float32)")
    print(
        f"  reference {t_ours * 1e3:8.2f} ms | rlax {t_rlax * 1e3:8.2f} ms ({t_rlax / t_ours:.2f}× ours) | numpy loop {t_np * 1e3:8.1f} ms ({t_np / t_ours:.0f}× ours)"
    )


def bench_mm_step() -> None:
    jax.config.update("jax_enable_x64", True)
    S, A = 200, 8
    mdp = rf.random_mdp(jax.random.key(6), S, A, 0.99)
    pi = jax.nn.softmax(jax.random.normal(jax.random.key(7), (S, A)), -1)
    step = jax.jit(lambda m, p: rf.monotonic_policy_iteration(m, p, 1))
    evaluate = jax.jit(rf.policy_evaluation)
    t_step = best_time(lambda: step(mdp, pi))
    t_eval = best_time(lambda: evaluate(mdp, pi))
    print(f"exact MM step (A26) at S = {S}, A = {A}, γ = 0.99, float64")
    print(
        f"  one step {t_step * 1e3:.3f} ms = {t_step / t_eval:.2f}× one policy evaluation ({t_eval * 1e3:.3f} ms) (target < 10×)"
    )


def main() -> None:
    print(f"machine: {machine()}\n")
    bench_fisher()
    print()
    bench_gae()
    print()
    bench_mm_step()


if __name__ == "__main__":
    main()
