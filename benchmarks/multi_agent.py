"""Speed of §4: all marginal action values of a 5-agent game against numpy enumeration, one
iteration of Algorithm 1 against one joint policy evaluation, and jitted HAPPO/HATRPO updates.

Run: `python -m benchmarks.multi_agent`. Ratios are measured in this run.
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import reference as rf
from benchmarks._timing import best_time, machine

jax.config.update("jax_enable_x64", True)


def brute_force_all(P, R, gamma, pis, subsets):
    """numpy: the joint Q by a linear solve, then every Q^{subset} by enumerating joint actions."""
    S = P.shape[0]
    sizes = P.shape[1:-1]
    joint = np.ones((S, 1))
    for p in pis:
        joint = (joint[:, :, None] * p[:, None, :]).reshape(S, -1)
    P2, R2 = P.reshape(S, -1, S), R.reshape(S, -1)
    V = np.linalg.solve(np.eye(S) - gamma * np.einsum("sa,sat->st", joint, P2), (joint * R2).sum(1))
    Q = (R2 + gamma * P2 @ V).reshape(S, *sizes)
    out = []
    for subset in subsets:
        M = np.zeros((S, *[sizes[i] for i in subset]))
        for s in range(S):
            for a in itertools.product(*[range(k) for k in sizes]):
                w = 1.0
                for k in range(len(sizes)):
                    if k not in subset:
                        w *= pis[k][s, a[k]]
                M[(s, *[a[i] for i in subset])] += w * Q[(s, *a)]
        out.append(M)
    return out


def bench_marginals() -> None:
    sizes = (4, 4, 4, 4, 4)
    game = rf.random_game(jax.random.key(0), 20, sizes, 0.95)
    keys = jax.random.split(jax.random.key(1), len(sizes))
    pis = tuple(jax.nn.softmax(jax.random.normal(k, (20, a)), -1) for k, a in zip(keys, sizes, strict=True))
    subsets = [s for m in range(len(sizes) + 1) for s in itertools.combinations(range(len(sizes)), m)]
    ours = jax.jit(lambda g, p: [rf.marginal_action_values(g, p, s) for s in subsets])
    t_ours = best_time(lambda: ours(game, pis))
    P, R, pis_np = np.asarray(game.P), np.asarray(game.R), [np.asarray(p) for p in pis]
    t_np = best_time(lambda: brute_force_all(P, R, 0.95, pis_np, subsets), repeats=1, min_time=0.0)
    check = brute_force_all(P, R, 0.95, pis_np, subsets[:3])
    for a, b in zip(ours(game, pis)[:3], check, strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-9, atol=1e-9)
    print(f"all {len(subsets)} marginal action values, 5 agents × 4 actions × 20 states (1,024 joint actions), float64")
    print(
        f"  reference {t_ours * 1e3:.2f} ms | numpy enumeration {t_np * 1e3:.0f} ms | {t_np / t_ours:.0f}× faster (target ≥ 50×)"
    )

    history_fn = jax.jit(lambda k, g, p: rf.multi_agent_policy_iteration(k, g, p, 1))
    evaluate = jax.jit(lambda g, p: rf.policy_evaluation(rf.joint_action_mdp(g), rf.joint_policy(p).reshape(20, -1)))
    t_iter = best_time(lambda: history_fn(jax.random.key(2), game, pis))
    t_eval = best_time(lambda: evaluate(game, pis))
    print(
        f"one iteration of Algorithm 1 (5 exact per-agent steps) {t_iter * 1e3:.2f} ms = {t_iter / t_eval:.1f}× one joint policy evaluation ({t_eval * 1e3:.3f} ms) (target < 20×)"
    )


def mlp_agents(num_agents: int, obs_size: int, actions: int, key):
    keys = jax.random.split(key, num_agents)
    models = [eqx.nn.MLP(obs_size, actions, 64, 2, key=k) for k in keys]
    parts = [eqx.partition(m, eqx.is_array) for m in models]
    params = tuple(p for p, _ in parts)
    fns = tuple((lambda p, o, st=st: jax.nn.log_softmax(jax.vmap(eqx.combine(p, st))(o), -1)) for _, st in parts)
    return params, fns


def bench_updates() -> None:
    jax.config.update("jax_enable_x64", False)
    n, B, obs_size, actions = 3, 10_000, 18, 5
    params, fns = mlp_agents(n, obs_size, actions, jax.random.key(3))
    obs = tuple(jax.random.normal(jax.random.key(4 + i), (B, obs_size)) for i in range(n))
    acts = jax.random.randint(jax.random.key(9), (B, n), 0, actions)
    old = jnp.stack(
        [jnp.take_along_axis(fns[i](params[i], obs[i]), acts[:, i : i + 1], -1)[:, 0] for i in range(n)], -1
    )
    adv = jax.random.normal(jax.random.key(10), (B,))
    opt = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(5e-4))
    states = tuple(opt.init(p) for p in params)

    happo = jax.jit(
        lambda k, p, s: rf.happo_update(
            k, p, fns, obs, acts, old, adv, opt, s, 0.2, num_epochs=5, num_minibatches=1, entropy_coef=0.01
        )
    )
    hatrpo = jax.jit(lambda k, p: rf.hatrpo_update(k, p, fns, obs, acts, old, adv, 0.01))
    t_happo = best_time(lambda: happo(jax.random.key(0), params, states), repeats=3)
    t_hatrpo = best_time(lambda: hatrpo(jax.random.key(0), params), repeats=3)
    print(f"3 agents, MLP policies 18-64-64-5, {B:,} samples, one jitted call per iteration (float32)")
    print(
        f"  happo_update (5 epochs, Adam, each agent in a random order): {t_happo * 1e3:.1f} ms = {1 / t_happo:.1f} updates/s"
    )
    print(
        f"  hatrpo_update (CG 10 steps, line search, each agent):       {t_hatrpo * 1e3:.1f} ms = {1 / t_hatrpo:.1f} updates/s"
    )


def main() -> None:
    print(f"machine: {machine()}\n")
    bench_marginals()
    print()
    bench_updates()


if __name__ == "__main__":
    main()
