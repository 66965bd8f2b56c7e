"""Training throughput of MAPPO, HAPPO, HATRPO and HAA2C (needs the `marl` extra; MABrax the `mabrax` one).

For each algorithm: environment steps per second of the jitted training loop (rollout of 128
environments × 25 steps + GAE + critic and actor updates; float32; one seed, and 4 seeds by
`vmap`), against the in-run baseline: a plain Python loop over one environment with the same
networks (a jitted action sample and a jitted environment step per step, no learning at all, so
the baseline is favoured). The authors' code does about 220 steps/s on this machine (HAPPO, 8 rollout threads, measured once).

Also: the cost of agents that differ (`lax.switch`) under `vmap` over seeds, and (`--mabrax`) the
throughput on multi-agent MuJoCo's halfcheetah_6x1.

Run: `python -m benchmarks.marl` (simple_spread and the mixed agents), `python -m benchmarks.marl
--against DIR` (this checkout's trainer against another checkout's, e.g. a `git worktree` of an
earlier commit, timed in turn in one process), `python -m benchmarks.marl --mixed`, `python -m benchmarks.marl --mabrax`, `python -m benchmarks.marl --smax`, `python -m benchmarks.marl --cg` (HATRPO's step
quality and speed against its number of conjugate-gradient steps).
"""

import time

import jax

from benchmarks._timing import machine
from reference import training


def throughput(trainer: training.Trainer, seeds: int, iterations: int) -> float:
    keys = jax.random.split(jax.random.key(0), seeds)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    run = jax.jit(jax.vmap(lambda s: trainer.run(s, iterations)))
    # Compile and warm up twice: the state `init` returns and the one `run` returns differ in how
    # their arrays are placed, so the second call compiles again (timing it measured a compilation).
    for _ in range(2):
        state, _ = jax.block_until_ready(run(state))
    start = time.perf_counter()
    jax.block_until_ready(run(state))
    return seeds * iterations * trainer.config.steps_per_iteration / (time.perf_counter() - start)


def python_loop(trainer: training.Trainer, steps: int) -> float:
    env = trainer.env
    params = trainer.init(jax.random.key(0)).actor_params
    act = jax.jit(lambda o, k: trainer.actions(params, o[None], k)[0])
    step = jax.jit(env.step)
    key = jax.random.key(1)
    obs, state = jax.jit(env.reset)(key)
    for i in range(30):  # warm up
        out = step(jax.random.fold_in(key, i), state, act(obs, key))
        obs, state = out.obs, out.state
    start = time.perf_counter()
    for i in range(steps):
        k = jax.random.fold_in(key, i)
        out = step(k, state, act(obs, k))
        obs, state = out.obs, out.state
    jax.block_until_ready(obs)
    return steps / (time.perf_counter() - start)


def main() -> None:
    env = training.simple_spread_env()
    print(f"# MARL training throughput, MPE simple_spread (3 agents), {machine()}")
    print("| algorithm | 1 seed (steps/s) | 4 seeds by vmap (steps/s, total) | Python loop, 1 env (steps/s) | ratio |")
    print("|---|---|---|---|---|")
    for algo in training.ALGORITHMS:
        trainer = training.make_train(training.MARLConfig(algorithm=algo, total_steps=3200 * 10), env)
        one = throughput(trainer, 1, 10)
        four = throughput(trainer, 4, 10)
        base = python_loop(trainer, 500)
        print(f"| {algo.upper()} | {one:,.0f} | {four:,.0f} | {base:,.0f} | {max(one, four) / base:,.0f}× |")
    print("ratio: the better of the two training columns over the Python loop (which does no learning).")


def against(other: str, rounds: int = 12) -> None:
    """This checkout's training throughput against the checkout in `other`, in one process.

    `other`'s `reference` package is copied under the name `reference_other` and imported beside
    this one; each algorithm's jitted `run` of 5 iterations (simple_spread, 1 seed) is timed for
    the two in turn, `rounds` times, so both meet the same state of the machine. Printed: the
    ratio of the median times and of the best times (above 1: this checkout is faster).
    """
    import importlib
    import pathlib
    import shutil
    import statistics
    import sys
    import tempfile

    there = pathlib.Path(other).resolve()
    if not (there / "reference" / "__init__.py").exists():
        raise SystemExit(f"marl.py: error: --against {other}: no reference/ package there")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(there / "reference", pathlib.Path(tmp) / "reference_other")
        sys.path.insert(0, tmp)
        theirs = importlib.import_module("reference_other.training")
        print(f"# Training throughput, this checkout against {there} (simple_spread, 1 seed, one process; {machine()})")
        print(
            "| algorithm | this checkout (steps/s, median) | the other (steps/s, median) | this / other, median | best |"
        )
        print("|---|---|---|---|---|")
        for algo in ("mappo", "happo", "hatrpo", "haa2c"):
            runs = {}
            for name, module in (("this", training), ("other", theirs)):
                trainer = module.make_train(
                    module.MARLConfig(algorithm=algo, total_steps=3200 * 5), module.simple_spread_env()
                )
                state = jax.jit(trainer.init)(jax.random.key(0))
                run = jax.jit(lambda s, trainer=trainer: trainer.run(s, 5))
                for _ in range(2):  # compile; the state `run` returns is placed differently from `init`'s
                    state, _ = jax.block_until_ready(run(state))
                runs[name] = (run, state)
            times: dict[str, list[float]] = {"this": [], "other": []}
            for _ in range(rounds):
                for name in ("other", "this"):
                    run, state = runs[name]
                    start = time.perf_counter()
                    jax.block_until_ready(run(state))
                    times[name].append(time.perf_counter() - start)
            steps = 5 * 3200
            mine, their = statistics.median(times["this"]), statistics.median(times["other"])
            best = min(times["other"]) / min(times["this"])
            print(f"| {algo.upper()} | {steps / mine:,.0f} | {steps / their:,.0f} | {their / mine:.3f} | {best:.3f} |")


def mixed_agents(seeds: int = 4) -> None:
    """The cost of agents that differ: `lax.switch` under `vmap` runs every agent's branch."""
    import reference as rf

    print()
    print(f"# Alike vs differing agents under vmap over seeds (HAPPO, a random 3-agent game, {machine()})")
    print("| agents | sequential update | 1 seed (steps/s) | 4 seeds by vmap (steps/s, total) | 4 seeds / 1 seed |")
    print("|---|---|---|---|---|")
    for label, sizes, path in (("alike, 5 actions each", (5, 5, 5), "gathered by index"),
                               ("differing, 3/5/7 actions", (3, 5, 7), "lax.switch")):  # fmt: skip
        game = rf.random_game(jax.random.key(0), 4, sizes, 0.9)
        env = training.cooperative_game_env(game, episode_length=25)
        trainer = training.make_train(training.MARLConfig(algorithm="happo", total_steps=3200 * 10), env)
        one = throughput(trainer, 1, 10)
        many = throughput(trainer, seeds, 10)
        print(f"| {label} | {path} | {one:,.0f} | {many:,.0f} | {many / one:.2f} |")
    print("With a batched agent order, `lax.switch` becomes a select that runs all n branches.")


def env_table(title: str, env: training.MultiAgentEnv, num_steps: int, iterations: int, note: str) -> None:
    """Each algorithm's throughput on `env` (64 environments × `num_steps`), 1 seed and 3 seeds by vmap."""
    print()
    print(f"# MARL training throughput, {title}, {machine()}")
    print(f"| algorithm | 1 seed, 64 envs × {num_steps} steps (steps/s) | 3 seeds by vmap (steps/s, total) |")
    print("|---|---|---|")
    for algo in training.ALGORITHMS:
        config = training.MARLConfig(
            algorithm=algo, total_steps=64 * num_steps * iterations, num_envs=64, num_steps=num_steps
        )
        trainer = training.make_train(config, env)
        one, three = throughput(trainer, 1, iterations), throughput(trainer, 3, iterations)
        print(f"| {algo.upper()} | {one:,.0f} | {three:,.0f} |")
    print(note)


def mabrax(scenario: str = "halfcheetah_6x1") -> None:
    """Throughput on JaxMARL's multi-agent MuJoCo (needs the `mabrax` extra)."""
    training.mujoco_warnings_to_console()
    env = training.mabrax_env(scenario, 1000)
    title = f"MABrax {scenario} ({env.num_agents} agents, continuous)"
    env_table(title, env, 100, 2, "The authors do not report throughput for multi-agent MuJoCo.")


def smax(scenario: str = "2s3z") -> None:
    """Throughput on JaxMARL's SMAX against the heuristic enemy (needs the `marl` extra)."""
    env = training.smax_env(scenario)
    title = f"SMAX {scenario} ({env.num_agents} agents, discrete)"
    env_table(title, env, 50, 4, "The authors report no throughput for SMAC.")


def cg_quality(iterations: int = 20) -> None:
    """HATRPO's step against its number of CG steps: quality (gain, KL, direction) and the trainer's speed."""
    import jax.numpy as jnp

    env = training.simple_spread_env()
    config = training.MARLConfig(algorithm="hatrpo", total_steps=3200 * iterations)
    trainer = training.make_train(config, env)
    state, _ = jax.jit(trainer)(jax.random.key(0))  # a policy after `iterations` iterations of HATRPO

    @jax.jit
    def batch_of(state: training.TrainState) -> tuple[training.AgentBatch, jax.Array]:
        keys = jax.random.split(jax.random.key(1), config.num_steps)
        state, traj = jax.lax.scan(trainer.rollout_step, state, keys)
        last_value = trainer.value_fn(state.critic_params, state.obs)
        adv, _ = trainer.advantages_and_targets(
            traj.reward, traj.value, last_value, traj.terminated, traj.truncated, traj.final_value
        )
        flat = lambda x: x.reshape(config.steps_per_iteration, *x.shape[2:])
        adv = flat(adv)
        batch = training.AgentBatch(flat(traj.obs)[:, 0], flat(traj.actions)[:, 0], flat(traj.log_probs)[:, 0])
        return batch, (adv - adv.mean()) / (adv.std() + 1e-8)

    batch, adv = batch_of(state)
    policy, params = trainer.policy(0), state.actor_params[0]
    old_out = policy.apply(params, batch.observations)

    def measure(cg_steps: int) -> tuple[jax.Array, jax.Array, jax.Array]:
        new, _ = training.trpo_agent_update(
            jax.random.key(0), policy, params, None, batch, adv, delta=config.delta, cg_steps=cg_steps
        )
        ratio = jnp.exp(policy.log_prob(new, batch.observations, batch.actions) - batch.old_log_probs)
        step = jnp.concatenate(
            [jnp.ravel(n - o) for n, o in zip(jax.tree.leaves(new), jax.tree.leaves(params), strict=True)]
        )
        return jnp.mean((ratio - 1) * adv), jnp.mean(policy.kl(old_out, new, batch.observations)), step

    _, _, reference_step = jax.jit(lambda: measure(50))()
    print()
    print(f"# HATRPO's step against CG steps (simple_spread, agent 0 after {iterations} iterations, {machine()})")
    print("| CG steps | surrogate gain | mean KL (δ = 0.01) | cos(step, 50-step CG's) | trainer, 1 seed (steps/s) |")
    print("|---|---|---|---|---|")
    for cg in (1, 2, 5, 10, 20, 50):
        gain, kl, step = jax.jit(lambda cg=cg: measure(cg))()
        cos = jnp.dot(step, reference_step) / (jnp.linalg.norm(step) * jnp.linalg.norm(reference_step) + 1e-30)
        speed = throughput(training.make_train(training.MARLConfig(algorithm="hatrpo", cg_steps=cg,
                                                                   total_steps=3200 * 10), env), 1, 10)  # fmt: skip
        print(f"| {cg} | {float(gain):.5f} | {float(kl):.5f} | {float(cos):.3f} | {speed:,.0f} |")
    happo = throughput(training.make_train(training.MARLConfig(algorithm="happo", total_steps=3200 * 10), env), 1, 10)
    print(f"HAPPO in the same run: {happo:,.0f} steps/s (the authors' HATRPO default is 10 CG steps).")


if __name__ == "__main__":
    import sys

    with jax.numpy_dtype_promotion("standard"):

        def value_of(flag: str) -> str:
            i = sys.argv.index(flag) + 1
            if i >= len(sys.argv):
                raise SystemExit(f"marl.py: error: {flag} needs a value")
            return sys.argv[i]

        if "--against" in sys.argv:
            against(value_of("--against"), int(value_of("--rounds")) if "--rounds" in sys.argv else 12)
        elif "--mixed" in sys.argv:
            mixed_agents()
        elif "--mabrax" in sys.argv:
            mabrax()
        elif "--smax" in sys.argv:
            smax()
        elif "--cg" in sys.argv:
            cg_quality()
        else:
            main()
            mixed_agents()
