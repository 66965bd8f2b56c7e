"""Training throughput of MAPPO, HAPPO and HATRPO on MPE simple_spread (needs the `marl` extra).

For each algorithm: environment steps per second of the jitted training loop (rollout of 128
environments × 25 steps + GAE + critic and actor updates; float32; one seed, and 4 seeds by
`vmap`), against the in-run baseline: a plain Python loop over one environment with the same
networks (a jitted action sample and a jitted environment step per step, no learning at all, so
the baseline is favoured). The authors' code does about 220 steps/s on this machine (HAPPO, 8 rollout threads, measured once).

Run: `python -m benchmarks.marl`.
"""

import time

import jax

import reference as rf
from benchmarks._timing import machine


def throughput(trainer: rf.Trainer, seeds: int, iterations: int) -> float:
    keys = jax.random.split(jax.random.key(0), seeds)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    run = jax.jit(jax.vmap(lambda s: trainer.run(s, iterations)))
    state, _ = jax.block_until_ready(run(state))  # compile and warm up
    start = time.perf_counter()
    jax.block_until_ready(run(state))
    return seeds * iterations * trainer.config.steps_per_iteration / (time.perf_counter() - start)


def python_loop(trainer: rf.Trainer, steps: int) -> float:
    env = trainer.env
    params = trainer.init(jax.random.key(0)).actor_params
    act = jax.jit(lambda o, k: trainer.actions(params, o[None], k)[0])
    step = jax.jit(env.step)
    key = jax.random.key(1)
    obs, state = jax.jit(env.reset)(key)
    for i in range(30):  # warm up
        obs, state, _, _ = step(jax.random.fold_in(key, i), state, act(obs, key))
    start = time.perf_counter()
    for i in range(steps):
        k = jax.random.fold_in(key, i)
        obs, state, _, _ = step(k, state, act(obs, k))
    jax.block_until_ready(obs)
    return steps / (time.perf_counter() - start)


def main() -> None:
    env = rf.simple_spread_env()
    print(f"# MARL training throughput, MPE simple_spread (3 agents), {machine()}")
    print("| algorithm | 1 seed (steps/s) | 4 seeds by vmap (steps/s, total) | Python loop, 1 env (steps/s) | ratio |")
    print("|---|---|---|---|---|")
    for algo in rf.ALGORITHMS:
        trainer = rf.make_train(rf.MARLConfig(algorithm=algo, total_steps=3200 * 10), env)
        one = throughput(trainer, 1, 10)
        four = throughput(trainer, 4, 10)
        base = python_loop(trainer, 500)
        print(f"| {algo.upper()} | {one:,.0f} | {four:,.0f} | {base:,.0f} | {max(one, four) / base:,.0f}× |")
    print("ratio: the better of the two training columns over the Python loop (which does no learning).")


if __name__ == "__main__":
    main()
