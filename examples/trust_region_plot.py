"""Figure for notes §3: J(π̄) against the TRPO lower bound along a path of policies, and J over
the exact MM iterations (A24, A26).

Run: `python examples/trust_region_plot.py [--out docs/img/trust_region.png]`.
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
    parser.add_argument("--out", default="docs/img/trust_region.png")
    args = parser.parse_args()

    mdp = rf.random_mdp(jax.random.key(4), 6, 3, 0.6)
    theta = jax.random.normal(jax.random.key(5), (6, 3))
    pi = jax.nn.softmax(theta, -1)
    direction = rf.advantages(mdp, pi)  # move along the advantage (a natural path of improvement)
    ts = jnp.linspace(-3.0, 6.0, 181)
    path = jax.vmap(lambda t: jax.nn.softmax(theta + t * direction, -1))(ts)
    J = jax.vmap(lambda p: rf.expected_return(mdp, p))(path)
    L = jax.vmap(lambda p: rf.surrogate_objective(mdp, pi, p))(path)
    bound = jax.vmap(lambda p: rf.trpo_lower_bound(mdp, pi, p))(path)

    iterates = rf.monotonic_policy_iteration(mdp, pi, 40)
    J_mm = jax.vmap(lambda p: rf.expected_return(mdp, p))(iterates)
    J_star = jnp.dot(mdp.rho0, rf.value_iteration(mdp))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(ts, J, label=r"$J(\bar\pi_t)$", color="C0", lw=2)
    ax1.plot(ts, L, label=r"$L_\pi(\bar\pi_t)$ (surrogate)", color="C2", ls="--")
    ax1.plot(ts, bound, label=r"$L_\pi(\bar\pi_t) - C\,D^{\max}_{KL}(\pi,\bar\pi_t)$", color="C3")
    ax1.axvline(0.0, color="grey", lw=0.8)
    ax1.set_ylim(float(J.min()) - 0.5 * float(J.max() - J.min()), float(J.max()) + 0.3 * float(J.max() - J.min()))
    ax1.set_xlabel(r"$t$ in $\bar\pi_t = \mathrm{softmax}(\theta + t A_\pi)$")
    ax1.set_title("A24: the TRPO lower bound (touches J at t = 0)")
    ax1.legend(fontsize=8, loc="upper left")

    ax2.plot(range(len(J_mm)), J_mm, marker="o", ms=3, label=r"$J(\pi_k)$, exact MM steps")
    ax2.axhline(float(J_star), color="k", ls=":", label=r"$J^* = \rho_0^\top V^*$")
    ax2.set_xlabel("iteration k")
    ax2.set_title("A26: monotone improvement of the MM iteration")
    ax2.legend(fontsize=8)
    fig.suptitle(r"random MDP, $|S| = 6$, $|A| = 3$, $\gamma = 0.6$")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
