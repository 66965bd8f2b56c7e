"""What the traced input checks cost inside compiled code.

Every value check of `reference` also runs under `jax.jit`/`jax.vmap` (an `equinox.error_if`
attached to the checked array). Equinox's own switch, `EQX_ON_ERROR=off`, removes them from
compiled programs. Since that switch is read when equinox is imported, this script times the same
jitted calls in worker processes started alternately with `EQX_ON_ERROR=raise` (checks on, the
default) and `EQX_ON_ERROR=off`, several rounds each, and reports the ratio of the best times:

- policy evaluation (`jax.jit(policy_evaluation)`) at S = 200 and 1000 (A = 4, float64);
- one Bellman sweep (`jax.jit(bellman_expectation_operator)`) at S = 200 and 2000;
- GAE over 10⁶ steps (64 environments × 15,625 steps, `vmap`, float32), with boolean `dones`
  (as environments return them) and with numeric ones (which get a 0-or-1 check);
- one training iteration of HAPPO on MPE simple_spread (128 environments × 25 steps; needs the
  `marl` extra; else on Proposition 1's game).

Run: `python -m benchmarks.checks_overhead [--rounds N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def worker(part: str) -> None:
    import jax
    import jax.numpy as jnp

    if part == "tabular":
        jax.config.update("jax_enable_x64", True)
    import reference as rf
    from benchmarks._timing import best_time

    out: dict[str, float] = {}
    if part == "tabular":
        for S in (200, 1000):
            mdp = rf.random_mdp(jax.random.key(S), S, 4, 0.99)
            pi = jnp.full((S, 4), 0.25)
            f = jax.jit(rf.policy_evaluation)
            out[f"policy evaluation, S = {S} (float64)"] = best_time(lambda f=f, mdp=mdp, pi=pi: f(mdp, pi))
        for S in (200, 2000):
            mdp = rf.random_mdp(jax.random.key(S), S, 4, 0.99)
            pi, V = jnp.full((S, 4), 0.25), jnp.zeros(S)
            f = jax.jit(rf.bellman_expectation_operator)
            out[f"one Bellman sweep, S = {S} (float64)"] = best_time(lambda f=f, mdp=mdp, pi=pi, V=V: f(mdp, pi, V))
        print(json.dumps(out))
        return
    T, B = 15_625, 64
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    r = jax.random.normal(k1, (B, T), jnp.float32)
    v = jax.random.normal(k2, (B, T + 1), jnp.float32)
    d = (jax.random.uniform(k3, (B, T)) < 0.01).astype(jnp.float32)
    gae = jax.jit(jax.vmap(lambda r, v, d: rf.generalized_advantage_estimate(r, v, d, 0.99, 0.95)))
    out["GAE, 10^6 steps, boolean dones (float32)"] = best_time(lambda: gae(r, v, d > 0))
    out["GAE, 10^6 steps, numeric dones (float32)"] = best_time(lambda: gae(r, v, d))
    from reference import training

    try:
        env = training.simple_spread_env()
        label = "one HAPPO iteration, simple_spread"
    except ImportError:
        env = training.cooperative_game_env(rf.parameter_sharing_game(4))
        label = "one HAPPO iteration, Proposition 1's game"
    trainer = training.make_train(training.MARLConfig(algorithm="happo", total_steps=3200 * 10), env)
    state = jax.jit(trainer.init)(jax.random.key(0))
    step = jax.jit(trainer.step)
    out[label] = best_time(lambda: step(state), repeats=5, min_time=0.3)
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="worker processes per setting (default 3)")
    parser.add_argument("--worker", choices=("tabular", "float32"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    best: dict[str, dict[str, float]] = {"raise": {}, "off": {}}
    for _ in range(args.rounds):
        for part in ("tabular", "float32"):
            for mode in ("raise", "off"):
                env = {**os.environ, "EQX_ON_ERROR": mode}
                text = subprocess.run(
                    [sys.executable, "-m", "benchmarks.checks_overhead", "--worker", part],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                for name, t in json.loads(text.strip().splitlines()[-1]).items():
                    best[mode][name] = min(best[mode].get(name, float("inf")), t)
    from benchmarks._timing import machine

    print(f"# Traced input checks: time with checks / time without (EQX_ON_ERROR=off), {machine()}")
    print(f"best of {args.rounds} worker processes per setting, taken alternately")
    print("| task | checks on | checks off | overhead |")
    print("|---|---|---|---|")
    for name, on in best["raise"].items():
        off = best["off"][name]
        print(f"| {name} | {on * 1e3:.3f} ms | {off * 1e3:.3f} ms | {100 * (on / off - 1):+.1f}% |")


if __name__ == "__main__":
    main()
