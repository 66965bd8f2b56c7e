"""A tour of the notes, section by section, on the 4×3 gridworld of CS229 (Russell & Norvig).

Run: `python examples/tour.py`. Every number printed is computed by the public API of
`reference`; every "check" line compares two independent computations of the same quantity.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

import reference as rf

jax.config.update("jax_enable_x64", True)

# ---------------------------------------------------------------------------------------------
# The gridworld: 4 columns × 3 rows, a wall at (2, 2), +1 at (4, 3) and −1 at (4, 2)
# (column, row from the bottom-left, as in CS229 §15.1). The intended move succeeds with
# probability 0.8, slips to each side with 0.1; bumping into the wall or the edge stays put.
# Entering a terminal cell pays its reward once; then the episode moves to an absorbing,
# reward-free "end" state. Every other cell costs 0.02 per step; γ = 0.99 (CS229's choice).
# ---------------------------------------------------------------------------------------------
COLS, ROWS = 4, 3
WALL = (2, 2)
TERMINALS = {(4, 3): 1.0, (4, 2): -1.0}
CELLS = rf.GRIDWORLD_CELLS
INDEX = {cell: i for i, cell in enumerate(CELLS)}
ARROWS = {"N": "↑", "E": "→", "S": "↓", "W": "←"}


def show_grid(title: str, values) -> None:
    print(f"  {title}")
    for r in range(ROWS, 0, -1):
        row = []
        for c in range(1, COLS + 1):
            if (c, r) == WALL:
                row.append("  ####  ")
            else:
                v = values[INDEX[(c, r)]]
                row.append(f"{v:>8}" if isinstance(v, str) else f"{float(v):8.3f}")
        print("   " + " ".join(row))


def show_policy(title: str, actions) -> None:
    names = rf.GRIDWORLD_ACTIONS
    labels = [
        ("+1" if TERMINALS.get(cell) == 1.0 else "-1")
        if cell in TERMINALS
        else ARROWS[names[int(actions[INDEX[cell]])]]
        for cell in CELLS
    ]
    show_grid(title, [*labels, "end"])


def check(label: str, a, b, tol: float = 1e-9) -> None:
    diff = float(jnp.max(jnp.abs(jnp.asarray(a) - jnp.asarray(b))))
    status = "ok" if diff <= tol else "FAILED"
    print(f"  check [{status}] {label}: max |difference| = {diff:.2e}")
    if status != "ok":
        raise SystemExit(f"tour check failed: {label}")


def section_1(mdp: rf.FiniteMDP) -> jax.Array:
    print("\n§1 马可夫决策过程 (Markov decision processes) — notes A1–A14")
    print(f"  A1  the MDP: |S| = {mdp.num_states} (11 cells + end), |A| = {mdp.num_actions}, γ = {float(mdp.gamma)}")
    print("      R(s) = −0.02 per step, +1 / −1 on the terminal cells (a state reward, C2)")

    uniform = jnp.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions)
    V_uniform = rf.policy_evaluation(mdp, uniform)
    print("\n  A7, A9, A10  V^π of the uniformly random policy, by one linear solve:")
    show_grid("V^π (random policy)", V_uniform)
    residual = rf.bellman_expectation_operator(mdp, uniform, V_uniform) - V_uniform
    check("Bellman equation V^π = T^π V^π (A9)", residual, 0.0, 1e-12)

    result = rf.value_iteration_with_bound(mdp, tol=1e-10)
    V_star = result.values
    print(
        f"\n  A11, A12, A14a  V* by value iteration: {int(result.num_iterations)} sweeps, "
        f"certified ‖V − V*‖∞ ≤ {float(result.error_bound):.1e}"
    )
    show_grid("V*", V_star)
    check(
        "Bellman optimality V* = T* V* (A12)",
        rf.bellman_optimality_operator(mdp, V_star),
        V_star,
        1e-9,
    )
    actions_pi, V_pi = rf.policy_iteration(mdp)
    check("policy iteration gives the same V* (A14b)", V_pi, V_star, 1e-9)

    actions = rf.greedy_policy(mdp, V_star)
    print("\n  A13  the optimal policy π*(s) = argmax_a Q*(s, a):")
    show_policy("π*", actions)
    cs229 = jnp.argmax(jnp.einsum("sat,t->sa", mdp.P, V_star), axis=-1)
    same = [bool(cs229[INDEX[c]] == actions[INDEX[c]]) for c in CELLS if c not in TERMINALS]
    print(f"  CS229's form argmax_a Σ P_sa(s')V*(s') (state reward, C5) picks the same arrows: {all(same)}")
    V_of_greedy = rf.policy_evaluation(mdp, rf.one_hot_policy(actions, mdp.num_actions))
    check("V^{π*} = V* (A14)", V_of_greedy, V_star, 1e-9)
    print(f"  A14  V*(s) ≥ V^π(s) for the random policy: {bool(jnp.all(V_star >= V_uniform))}")
    del actions_pi
    return actions


def section_2(mdp: rf.FiniteMDP, actions: jax.Array) -> None:
    print("\n§2 状态价值函数, 策略目标函数, 优势函数 (values, objective, advantage) — notes A15–A19")
    logits = jax.random.normal(jax.random.key(0), (mdp.num_states, mdp.num_actions))
    pi = 0.7 * rf.one_hot_policy(actions, mdp.num_actions) + 0.3 * jax.nn.softmax(logits, axis=-1)
    print("  a soft policy π: 70% the optimal arrow, 30% a random softmax")
    V = rf.state_values(mdp, pi)
    Q = rf.action_values(mdp, pi)
    A = rf.advantages(mdp, pi)
    J = rf.expected_return(mdp, pi)
    rho = rf.discounted_visitation(mdp, pi)
    print(f"  A17  J(π) = E_{{s0~ρ0}} V_π(s0) = {float(J):.6f}   (start: bottom-left cell)")
    check("Σ_a π(a|s) Q_π(s,a) = V_π(s) (A15, A16)", jnp.sum(pi * Q, axis=-1), V, 1e-12)
    check(
        "zero expected advantage Σ_a π(a|s) A_π(s,a) = 0 (A19, B7)",
        jnp.sum(pi * A, axis=-1),
        0.0,
        1e-12,
    )
    g = float(mdp.gamma)
    print(f"  C8   ρ_π is unnormalised: Σ_s ρ_π(s) = {float(rho.sum()):.6f} = 1/(1−γ) = {1 / (1 - g):.6f}")
    check(
        "J = Σ_s ρ_π(s) r_π(s) (two linear systems)",
        jnp.dot(rho, rf.policy_reward(mdp, pi)),
        J,
        1e-10,
    )

    keys = jax.random.split(jax.random.key(1), 4000)
    horizon = 1500
    rollouts = jax.jit(jax.vmap(lambda k: rf.sample_trajectory(k, mdp, pi, horizon)[2]))(keys)
    returns = rf.discounted_return(rollouts, g)
    mean, err = float(returns.mean()), float(returns.std() / np.sqrt(len(keys)))
    print(
        f"  A2–A5  Monte Carlo over {len(keys)} trajectories of {horizon} steps: "
        f"J ≈ {mean:.4f} ± {err:.4f} (one standard error); exact {float(J):.4f}"
    )
    check("Monte Carlo J within 6 standard errors", mean, J, 6 * err)

    grad = jax.grad(lambda t: rf.expected_return(mdp, jax.nn.softmax(t, axis=-1)))(jnp.log(pi))
    theorem = rho[:, None] * pi * A
    check("∇_θ J (autodiff through the solve) = ρ_π(s) π(a|s) A_π(s,a)", grad, theorem, 1e-10)


def section_3(mdp: rf.FiniteMDP, actions: jax.Array) -> None:
    print("\n§3 信赖域算法 (trust region): TRPO and PPO — notes A21–A35, A48–A49")
    logits = jnp.log(0.7 * rf.one_hot_policy(actions, mdp.num_actions) + 0.3 / mdp.num_actions)
    pi = jax.nn.softmax(logits, axis=-1)
    pi_bar = jax.nn.softmax(logits + 0.5 * jax.random.normal(jax.random.key(2), logits.shape), axis=-1)
    J, J_bar = rf.expected_return(mdp, pi), rf.expected_return(mdp, pi_bar)
    L = rf.surrogate_objective(mdp, pi, pi_bar)
    C, D = rf.penalty_coefficient(mdp, pi), rf.max_kl(pi, pi_bar)
    bound = rf.trpo_lower_bound(mdp, pi, pi_bar)
    print("  π: 70% optimal arrow + 30% uniform; π̄: its logits perturbed by N(0, 0.5²)")
    print(f"  A22  L_π(π̄) = {float(L):.5f}   J(π) = {float(J):.5f}   J(π̄) = {float(J_bar):.5f}")
    print(f"  A24  C = 4γ max|A_π|/(1−γ)² = {float(C):.1f},  D_KL^max(π, π̄) = {float(D):.4f}")
    print(f"       lower bound L − C·D = {float(bound):.2f} ≤ J(π̄) = {float(J_bar):.5f}: {bool(J_bar >= bound)}")
    print("       (with γ = 0.99, C is huge: the bound is valid but loose — why TRPO uses a KL constraint)")
    check(
        "performance difference J(π̄) − J(π) = Σ ρ_π̄ π̄ A_π (B8)",
        rf.performance_difference(mdp, pi, pi_bar),
        J_bar - J,
        1e-12,
    )
    check("L_π(π) = J(π) (B9)", rf.surrogate_objective(mdp, pi, pi), J, 1e-12)

    path = rf.monotonic_policy_iteration(mdp, pi, 5)
    Js = [float(rf.expected_return(mdp, p)) for p in path]
    print("  A26  exact MM iteration π_{k+1} = argmax L − C·D^max:  J = " + ", ".join(f"{j:.6f}" for j in Js))
    print(
        f"       monotone: {all(b >= a - 1e-12 for a, b in itertools.pairwise(Js))} (steps are tiny: C ≈ {float(C):.0f})"
    )

    def surrogate(theta: jax.Array) -> jax.Array:
        return jnp.dot(
            rf.discounted_visitation(mdp, pi), jnp.sum(jax.nn.softmax(theta, -1) * rf.advantages(mdp, pi), -1)
        )

    def kl(theta: jax.Array) -> jax.Array:
        return rf.mean_kl(mdp, pi, jax.nn.softmax(theta, -1))

    new_logits = rf.trpo_update(surrogate, kl, logits, delta=0.01, damping=1e-3)
    pi_new = jax.nn.softmax(new_logits, -1)
    print(
        f"  A27, A49  one TRPO step (δ = 0.01, CG on the Fisher + 1e-3·I, line search): "
        f"J {float(J):.5f} → {float(rf.expected_return(mdp, pi_new)):.5f}, mean KL = {float(kl(new_logits)):.5f}"
    )

    ratio = jnp.asarray([0.5, 0.9, 1.0, 1.1, 1.5])
    print(f"  A29–A35  PPO clip (ε = 0.2), r = {np.asarray(ratio)}:")
    print(f"       A = +1: {np.asarray(rf.ppo_clip_objective(ratio, jnp.ones(5), 0.2))}")
    print(f"       A = −1: {np.asarray(rf.ppo_clip_objective(ratio, -jnp.ones(5), 0.2))}")
    states, _, rewards = rf.sample_trajectory(jax.random.key(3), mdp, pi, 7)
    V = rf.state_values(mdp, pi)
    # six steps, bootstrapped by V(s_6) at the cut-off
    gae = rf.generalized_advantage_estimate(rewards[:6], V[states], jnp.zeros(6), float(mdp.gamma), 0.95)
    print(f"  A31  GAE(γ, λ = 0.95) on a 6-step rollout with exact V: {np.round(np.asarray(gae), 4)}")


def section_4() -> None:
    print("\n§4 信赖域算法在MARL中的应用, HATRPO/HAPPO (multi-agent trust regions) — notes A20, A36–A51")
    game = rf.random_game(jax.random.key(10), 3, (2, 3, 2), 0.9)
    S, n = game.num_states, game.num_agents
    keys = jax.random.split(jax.random.key(11), n)
    pis = tuple(jax.nn.softmax(jax.random.normal(k, (S, a)), -1) for k, a in zip(keys, game.action_sizes, strict=True))
    print(f"  a random cooperative game: |S| = {S}, n = {n} agents with action sizes {game.action_sizes}, γ = 0.9")
    order = (2, 0, 1)
    a = (1, 2, 0)  # the joint action, indexed by agent
    whole = rf.multi_agent_advantage(game, pis, (), order)[(0, *[a[i] for i in order])]
    terms = [
        float(rf.multi_agent_advantage(game, pis, order[:j], (agent,))[(0, *[a[i] for i in order[: j + 1]])])
        for j, agent in enumerate(order)
    ]
    print(f"  A38  Lemma 1 at s = 0, a = {a}, order i_1:3 = {order}:")
    print(
        f"       A^{{i_1:3}} = {float(whole):+.6f} = "
        + " + ".join(f"({t:+.6f})" for t in terms)
        + f" = {sum(terms):+.6f}"
    )
    check("advantage decomposition (Lemma 1)", whole, sum(terms), 1e-12)
    new = tuple(
        jax.nn.softmax(jnp.log(p) + 0.5 * jax.random.normal(jax.random.key(12 + i), p.shape), -1)
        for i, p in enumerate(pis)
    )
    mdp = rf.joint_action_mdp(game)
    J_new = rf.expected_return(mdp, rf.joint_policy(new).reshape(S, -1))
    bound = rf.multi_agent_lower_bound(game, pis, new, order)
    print(f"  A44a Lemma 2: J(π̄) = {float(J_new):.4f} ≥ bound {float(bound):.4f}: {bool(J_new >= bound)}")

    history = rf.multi_agent_policy_iteration(jax.random.key(13), game, pis, 8)
    print("  A44b Algorithm 1 (exact per-agent steps, random order each iteration):")
    for k in (0, 1, 2, 4, 8):
        joint = [h[k] for h in history]
        J_k = rf.expected_return(mdp, rf.joint_policy(joint).reshape(S, -1))
        print(f"       k = {k}: J = {float(J_k):.6f}, nash gap = {float(rf.nash_gap(game, joint)):.6f}")

    print("  A37  Proposition 1 (parameter sharing): best shared Bernoulli(p) policy vs the optimum")
    for m in (2, 4, 6):
        g = rf.parameter_sharing_game(m, 0.0)
        J_star = float(jnp.dot(g.rho0, rf.value_iteration(rf.joint_action_mdp(g))))
        shared = float(
            rf.expected_return(rf.joint_action_mdp(g), rf.joint_policy([jnp.asarray([[0.5, 0.5]])] * m).reshape(1, -1))
        )
        print(f"       n = {m}: J_share(p = 1/2) / J* = {shared / J_star:.6f}   (2/2^n = {2 / 2**m:.6f})")

    ratios = jnp.asarray([[1.1, 0.7, 1.3]])
    A_hat = jnp.asarray([0.5])
    M = rf.happo_factor(ratios[:, :2], A_hat)
    print(f"  A50–A51  HAPPO: earlier ratios {np.asarray(ratios[0, :2])}, Â = 0.5 → M = {float(M[0]):.3f};")
    print(
        f"       clipped objective of the third agent (r = 1.3, ε = 0.2): {float(rf.happo_objective(ratios[:, 2], M, 0.2)[0]):.4f}"
    )
    print(f"  A36  MAPPO objective for the same sample: {float(rf.mappo_objective(ratios, A_hat, 0.2)[0]):.4f}")


def main() -> None:
    print("reference — a tour of the notes (CS229 ch. 15, TRPO/PPO, HATRPO/HAPPO)")
    mdp = rf.gridworld_4x3(living_reward=-0.02, gamma=0.99)
    actions = section_1(mdp)
    section_2(mdp, actions)
    section_3(mdp, actions)
    section_4()
    print("\nAll checks passed.")


if __name__ == "__main__":
    main()
