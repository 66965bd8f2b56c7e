"""Figure for notes §4: J and the nash gap per iteration of Algorithm 1 over seeds (A44b–A44d), and
Proposition 1's ratio J*_share / J* against the number of agents (A37).

Run: `python examples/algorithm1_plot.py [--out docs/img/algorithm1.png]`.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import reference as rf

jax.config.update("jax_enable_x64", True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/img/algorithm1.png")
    parser.add_argument("--iters", type=int, default=30)
    args = parser.parse_args()

    game = rf.random_game(jax.random.key(20), 3, (2, 3, 2), 0.5)
    S, n = game.num_states, game.num_agents
    mdp = rf.joint_action_mdp(game)
    J_star = float(jnp.dot(game.rho0, rf.value_iteration(mdp)))
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.2))
    for seed in range(5):
        keys = jax.random.split(jax.random.key(100 + seed), n + 1)
        pis = tuple(
            jax.nn.softmax(jax.random.normal(k, (S, a)), -1) for k, a in zip(keys[:n], game.action_sizes, strict=True)
        )
        history = rf.multi_agent_policy_iteration(keys[n], game, pis, args.iters)
        Js, gaps = [], []
        for k in range(args.iters + 1):
            joint = [h[k] for h in history]
            Js.append(float(rf.expected_return(mdp, rf.joint_policy(joint).reshape(S, -1))))
            gaps.append(float(rf.nash_gap(game, joint)))
        ax1.plot(Js, label=f"seed {seed}")
        ax2.semilogy([max(g, 1e-16) for g in gaps], label=f"seed {seed}")
    ax1.axhline(J_star, color="k", ls=":", label=r"$J^*$ (joint optimum)")
    ax1.set_xlabel("iteration k")
    ax1.set_title(r"Algorithm 1: $J(\pi_k)$ never decreases (Theorem 2)")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("iteration k")
    ax2.set_title("nash gap (best unilateral gain)")

    ns = [2, 4, 6, 8, 10]
    ratios = []
    for m in ns:
        g = rf.parameter_sharing_game(m, 0.0)
        gm = rf.joint_action_mdp(g)
        J_opt = float(jnp.dot(g.rho0, rf.value_iteration(gm)))
        ps = jnp.linspace(0.0, 1.0, 201)
        shared = jax.vmap(
            lambda p, gm=gm, m=m: rf.expected_return(
                gm, rf.joint_policy([jnp.stack([1 - p, p])[None]] * m).reshape(1, -1)
            )
        )(ps)
        ratios.append(float(jnp.max(shared)) / J_opt)
    ax3.semilogy(ns, ratios, "o", label=r"best shared policy (grid over $p$) / $J^*$")
    ax3.semilogy(ns, [2 / 2**m for m in ns], "-", label=r"$2/2^n$ (Proposition 1)")
    ax3.set_xlabel("number of agents n")
    ax3.set_title("Proposition 1: parameter sharing")
    ax3.legend(fontsize=8)
    fig.suptitle(r"random cooperative game, $|S| = 3$, action sizes (2, 3, 2), $\gamma = 0.5$")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
