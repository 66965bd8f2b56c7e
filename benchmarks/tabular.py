"""Speed of §1 (policy evaluation, value iteration, policy iteration) against numpy/scipy and
pymdptoolbox, on random dense MDPs with A = 4, γ = 0.99, float64.

Run: `python benchmarks/tabular.py [--quick]`. Prints ratios measured in this run (a ratio > 1
means `reference` is faster); compile times are reported apart.
"""

from __future__ import annotations

import argparse
import warnings

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import mdptoolbox.mdp  # noqa: E402

import reference as rf  # noqa: E402
from benchmarks._timing import best_time, compile_time, interleaved_times, machine  # noqa: E402

GAMMA, A = 0.99, 4


def make(S: int, seed: int = 0):
    mdp = rf.random_mdp(jax.random.key(seed), S, A, GAMMA)
    P = np.asarray(mdp.P)
    return mdp, P, np.asarray(mdp.R), np.ascontiguousarray(P.transpose(1, 0, 2))


def certified_sweeps(tol: float, rmax: float) -> int:
    """Sweeps of plain value iteration from 0 after which ‖V_k − V*‖ ≤ γ^k rmax/(1−γ) ≤ tol."""
    return int(np.ceil(np.log(tol * (1 - GAMMA) / rmax) / np.log(GAMMA)))


def bench_policy_evaluation(S: int) -> dict:
    mdp, P, R, _ = make(S)
    pi = np.full((S, A), 1.0 / A)
    pi_j = jnp.asarray(pi)
    ours = jax.jit(rf.policy_evaluation)
    t_compile = compile_time(lambda: ours(mdp, pi_j))
    t_ours = best_time(lambda: ours(mdp, pi_j))

    def numpy_full():
        P_pi = np.einsum("sa,sat->st", pi, P)
        return np.linalg.solve(np.eye(S) - GAMMA * P_pi, (pi * R).sum(1))

    system = np.eye(S) - GAMMA * np.einsum("sa,sat->st", pi, P)
    r_pi = (pi * R).sum(1)
    t_np_full = best_time(numpy_full)
    t_np_solve = best_time(lambda: np.linalg.solve(system, r_pi))
    assert np.allclose(np.asarray(ours(mdp, pi_j)), numpy_full(), atol=1e-8)
    return dict(S=S, ours=t_ours, numpy=t_np_full, solve=t_np_solve, compile=t_compile)


def bench_value_iteration(S: int, tol: float) -> dict:
    mdp, P, R, P_ast = make(S)
    vi = jax.jit(lambda m: rf.value_iteration_with_bound(m, tol=tol))
    t_compile = compile_time(lambda: vi(mdp))
    result = vi(mdp)
    t_ours = best_time(lambda: vi(mdp))
    sweeps = int(result.num_iterations)
    _, V_star = rf.policy_iteration(mdp)
    err_ours = float(jnp.max(jnp.abs(result.values - V_star)))

    # pymdptoolbox: default stopping (not a certificate), and the sweeps that certify `tol`.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = mdptoolbox.mdp.ValueIteration(P_ast, R, GAMMA)
        default.run()
    err_default = float(np.max(np.abs(np.asarray(default.V) - np.asarray(V_star))))
    K = certified_sweeps(tol, float(np.abs(R).max()))

    def toolbox_certified():
        vi_tb = mdptoolbox.mdp.ValueIteration(P_ast, R, GAMMA, epsilon=1e-300, max_iter=K)
        vi_tb.run()
        return vi_tb.V

    t_tb = best_time(toolbox_certified, repeats=3, min_time=0.0)
    err_tb = float(np.max(np.abs(np.asarray(toolbox_certified()) - np.asarray(V_star))))

    # The memory-bandwidth limit of one sweep: the time to read P once (numpy BLAS gemv).
    P2 = P.reshape(S * A, S)
    V0 = np.asarray(V_star)
    t_read = best_time(lambda: P2 @ V0)
    sweep = jax.jit(rf.bellman_optimality_operator)
    t_sweep = best_time(lambda: sweep(mdp, V_star))
    return dict(
        S=S,
        ours=t_ours,
        sweeps=sweeps,
        err=err_ours,
        bound=float(result.error_bound),
        toolbox=t_tb,
        toolbox_sweeps=K,
        toolbox_err=err_tb,
        default_V=float(np.max(default.V)),
        default_err=err_default,
        V_star=float(np.max(V_star)),
        sweep=t_sweep,
        read=t_read,
        compile=t_compile,
    )


def bench_policy_iteration(S: int) -> dict:
    mdp, _, R, P_ast = make(S)
    pi_fn = jax.jit(rf.policy_iteration)
    t_compile = compile_time(lambda: pi_fn(mdp))
    t_ours = best_time(lambda: pi_fn(mdp), repeats=3)
    # The same start as pymdptoolbox (greedy in R): no value-iteration warm start.
    cold_fn = jax.jit(lambda m: rf.policy_iteration(m, warm_start_sweeps=0))
    t_cold = best_time(lambda: cold_fn(mdp), repeats=3)

    def toolbox():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = mdptoolbox.mdp.PolicyIteration(P_ast, R, GAMMA)
            p.run()
        return p

    t_tb = best_time(toolbox, repeats=3)
    same = np.allclose(np.asarray(pi_fn(mdp)[1]), np.asarray(toolbox().V), atol=1e-6)
    return dict(S=S, ours=t_ours, cold=t_cold, toolbox=t_tb, same=same, compile=t_compile)


def bench_batch(num: int = 1024, S: int = 10, A_small: int = 3) -> dict:
    keys = jax.random.split(jax.random.key(1), num)
    mdps = jax.vmap(lambda k: rf.random_mdp(k, S, A_small, GAMMA))(keys)
    pis = jnp.full((num, S, A_small), 1.0 / A_small)
    batched = jax.jit(jax.vmap(rf.policy_evaluation))
    t_compile = compile_time(lambda: batched(mdps, pis))
    Ps, Rs, pis_np = np.asarray(mdps.P), np.asarray(mdps.R), np.asarray(pis)

    def loop():
        out = np.empty((num, S))
        for i in range(num):
            P_pi = np.einsum("sa,sat->st", pis_np[i], Ps[i])
            out[i] = np.linalg.solve(np.eye(S) - GAMMA * P_pi, (pis_np[i] * Rs[i]).sum(1))
        return out

    assert np.allclose(np.asarray(batched(mdps, pis)), loop(), atol=1e-9)
    # Sub-millisecond calls against a ~15 ms loop on a shared machine whose speed drifts: the two
    # take turns (10 ms of vmapped calls, then one loop) and the ratio is also taken per round.
    times = interleaved_times({"ours": lambda: batched(mdps, pis), "loop": loop}, rounds=30, min_time=0.01)
    ours, looped = np.array(times["ours"]), np.array(times["loop"])
    vi_batched = jax.jit(jax.vmap(rf.value_iteration))
    t_vi = best_time(lambda: vi_batched(mdps))
    return dict(
        ours=ours.min(),
        loop=looped.min(),
        median_ratio=float(np.median(looped / ours)),
        max_ratio=float((looped / ours).max()),
        vi=t_vi,
        compile=t_compile,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    args = parser.parse_args()
    sizes = [50, 200] if args.quick else [50, 200, 1000, 2000]
    tol = 1e-6
    print(f"machine: {machine()}")
    print(f"random dense MDPs, A = {A}, γ = {GAMMA}, float64; times are best-of-repeats after compilation\n")

    print("policy evaluation (LU solve of (I − γP_π)V = r_π) vs numpy (build P_π + np.linalg.solve)")
    print(f"{'S':>6} {'reference':>12} {'numpy':>12} {'np.solve only':>14} {'numpy/ours':>11} {'compile':>8}")
    for S in sizes:
        r = bench_policy_evaluation(S)
        print(
            f"{S:>6} {r['ours'] * 1e3:>10.3f}ms {r['numpy'] * 1e3:>10.3f}ms {r['solve'] * 1e3:>12.3f}ms {r['numpy'] / r['ours']:>10.2f}x {r['compile']:>7.2f}s"
        )

    print(f"\nvalue iteration to certified sup-norm accuracy {tol:g} vs pymdptoolbox ValueIteration run for the")
    print("sweeps that certify the same accuracy a priori (γ^K·max|R|/(1−γ) ≤ tol)")
    print(
        f"{'S':>6} {'reference':>12} {'sweeps':>7} {'true err':>9} {'toolbox':>12} {'sweeps':>7} {'speed-up':>9} {'sweep':>9} {'read P':>9} {'sweep/read':>10}"
    )
    notes = []
    for S in sizes:
        r = bench_value_iteration(S, tol)
        print(
            f"{S:>6} {r['ours'] * 1e3:>10.3f}ms {r['sweeps']:>7} {r['err']:>9.1e} {r['toolbox'] * 1e3:>10.1f}ms {r['toolbox_sweeps']:>7} {r['toolbox'] / r['ours']:>8.1f}x {r['sweep'] * 1e3:>7.3f}ms {r['read'] * 1e3:>7.3f}ms {r['sweep'] / r['read']:>9.2f}x"
        )
        notes.append(
            f"  S={S}: pymdptoolbox's default ValueIteration returns max V = {r['default_V']:.2f} where max V* = {r['V_star']:.2f} (error {r['default_err']:.1f})"
        )
    print("\n".join(notes))

    print("\npolicy iteration vs pymdptoolbox PolicyIteration (matrix evaluation); 'cold' starts like")
    print("pymdptoolbox (greedy in R, warm_start_sweeps=0), the default after 2 value-iteration sweeps")
    print(
        f"{'S':>6} {'reference':>12} {'cold':>12} {'toolbox':>12} {'speed-up':>9} {'cold':>7} {'same V':>7} {'compile':>8}"
    )
    for S in sizes:
        r = bench_policy_iteration(S)
        print(
            f"{S:>6} {r['ours'] * 1e3:>10.3f}ms {r['cold'] * 1e3:>10.3f}ms {r['toolbox'] * 1e3:>10.3f}ms {r['toolbox'] / r['ours']:>8.2f}x {r['toolbox'] / r['cold']:>6.2f}x {r['same']!s:>7} {r['compile']:>7.2f}s"
        )

    r = bench_batch()
    print("\n1,024 MDPs (S = 10, A = 3): one vmapped policy_evaluation vs a Python loop of numpy solves")
    print(
        f"  reference {r['ours'] * 1e3:.3f}ms, loop {r['loop'] * 1e3:.1f}ms (best of 30 interleaved rounds): {r['loop'] / r['ours']:.0f}x faster;"
        f" per round: median {r['median_ratio']:.0f}x, best {r['max_ratio']:.0f}x"
    )
    print(f"  vmapped value_iteration (V*, certified 1e-10) {r['vi'] * 1e3:.2f}ms; compile {r['compile']:.2f}s")


if __name__ == "__main__":
    main()
