"""Train MAPPO, HAPPO, HATRPO or HAA2C (notes §4) on MPE, multi-agent MuJoCo, SMAX or Proposition 1's game.

    python examples/train_marl.py --algo happo --env simple_spread --total-steps 10_000_000 --seeds 4
    python examples/train_marl.py --algo all --env parameter_sharing --n-agents 4 --total-steps 200_000
    python examples/train_marl.py --algo all --env halfcheetah_6x1 --total-steps 320000 --seeds 3 --num-envs 64
    python examples/train_marl.py --algo all --env smax_2s3z --total-steps 480000 --seeds 3 --num-envs 64
    python examples/train_marl.py --resume --algo happo --env simple_spread   # continue a stopped run
    python examples/train_marl.py --plot --env simple_spread          # the learning curves, from saved runs
    python examples/train_marl.py --evaluate runs/simple_spread_happo.eqx   # play a checkpoint
    python examples/train_marl.py --algorithms my_algorithms.py --algo mine   # an Algorithm you wrote

On several processes (`jax.distributed`; one host or many, see docs/distributed.md):

    python examples/train_marl.py --algo happo --coordinator 127.0.0.1:7777 --num-processes 2 --process-id 0 &
    python examples/train_marl.py --algo happo --coordinator 127.0.0.1:7777 --num-processes 2 --process-id 1
    srun python examples/train_marl.py --algo happo --distributed   # SLURM: everything auto-detected

Each process steps its share of the environments; process 0 prints, writes the checkpoint, the
curves and the plot; a process that loses a peer exits with one line within --peer-timeout seconds.

Needs the `marl` extra for simple_spread and SMAX (`pip install -e ".[marl,examples]"`), the `mabrax`
extra for multi-agent MuJoCo (halfcheetah_6x1, ant_4x2, hopper_3x1, walker2d_2x3). Every seed trains in
one jitted call (`jax.vmap` over seeds) in chunks of `--chunk` iterations; after each chunk the
progress is printed and the state saved, atomically, to `<out>/<env>_<algo>.eqx` (a checkpoint that
carries its own configuration: `--evaluate` and `--resume` need no other flag), the curves to
`<out>/<env>_<algo>.npz`. One iteration is `--num-envs` × 25 environment steps (100 for MuJoCo, 50
for SMAX, 8 for the game), so
`--total-steps` must be at least that. A NaN or infinity stops training with the iteration and the
last good checkpoint named. Bad arguments are answered with one line and exit status 2.

`--algorithms FILE.py` (or a dotted module name) adds every `training.Algorithm` the module defines
at its top level to the built-in ones, under its `name`: `--algo` trains it, and `--evaluate` and
`--resume` read its checkpoints (pass the same `--algorithms`).
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time
from typing import Any, NoReturn

import _cli as cli  # the scripts' shared command-line helpers, beside this script
import jax
import jax.numpy as jnp
import numpy as np

from reference import training

ENVS = training.ENVIRONMENTS  # the names `training.make_env` knows
MABRAX = tuple(e for e in ENVS if cli.is_mabrax(e))
SMAX = tuple(e for e in ENVS if e.startswith("smax_"))


def fail(message: str) -> NoReturn:
    cli.fail("train_marl.py", message)


def rollout_length(env: str) -> int:
    return cli.rollout_length(env)


def steps_per_iteration(env: str, num_envs: int) -> int:
    return num_envs * rollout_length(env)


def make_env(env: str, n_agents: int) -> training.MultiAgentEnv:
    return cli.make_env("train_marl.py", env, n_agents)


def make_config(
    env: str, algo: str, total_steps: int, num_envs: int, algorithms: dict[str, training.Algorithm]
) -> training.MARLConfig:
    # Proposition 1's one-shot game: γ irrelevant (every episode is one step), short rollouts.
    num_steps = rollout_length(env)
    algorithm = algo if algo in training.ALGORITHMS else algorithms[algo]
    return training.MARLConfig(algorithm=algorithm, total_steps=total_steps, num_envs=num_envs, num_steps=num_steps)


def load_algorithms(source: str | None) -> dict[str, training.Algorithm]:
    """The built-in algorithms, and those `--algorithms` (a .py file or a dotted module name) defines."""
    if source is None:
        return dict(training.ALGORITHMS)
    import importlib
    import importlib.util

    if source.endswith(".py") and not pathlib.Path(source).is_file():
        fail(f"--algorithms {source!r}: no such file.")
    try:
        if source.endswith(".py"):
            spec = importlib.util.spec_from_file_location(pathlib.Path(source).stem, source)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(source)
    except Exception as err:
        fail(f"--algorithms {source!r} could not be imported: {type(err).__name__}: {err}")
    found = {a.name: a for a in vars(module).values() if isinstance(a, training.Algorithm)}
    if not found:
        fail(f"--algorithms {source!r} defines no training.Algorithm at its top level.")
    clash = sorted(name for name in found if name in training.ALGORITHMS and found[name] != training.ALGORITHMS[name])
    if clash:
        fail(f"--algorithms {source!r} redefines the built-in {', '.join(clash)}: give yours another name.")
    return {**training.ALGORITHMS, **found}


def save_curves(path: pathlib.Path, steps: list, returns: list, seconds: float, seeds: int) -> None:
    """Write the curves atomically (temporary file, then rename), as the checkpoint is written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    np.savez(tmp, steps=np.concatenate(steps), returns=np.concatenate(returns, axis=1), seconds=seconds, seeds=seeds)
    os.replace(tmp, path)


def is_main() -> bool:
    """Process 0 prints and writes files; with one process, always."""
    return jax.process_index() == 0


def say(*args: Any, **kwargs: Any) -> None:
    if is_main():
        print(*args, **kwargs)


WORKER = "REFERENCE_TRAIN_MARL_WORKER"


def supervise(args: argparse.Namespace) -> NoReturn:
    """Run this same command as a child process and turn its death into one line.

    When a process of a `jax.distributed` run dies, JAX's coordination service notices the missing
    heartbeats (after --peer-timeout seconds) and aborts every other process from a C++ thread,
    with a stack trace no Python code can catch. So each process trains in a child whose stderr
    goes to `<out>/process-<id>.log`; this parent waits for it and reports how it ended.
    """
    import subprocess

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"process-{args.process_id if args.process_id is not None else 'auto'}.log"
    env = {**os.environ, WORKER: "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as err:
        code = subprocess.call([sys.executable, __file__, *sys.argv[1:]], stderr=err, env=env)
    if code == 0:
        raise SystemExit(0)
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("train_marl.py: error:")]
    if ours:  # the child already said what went wrong in one line
        sys.stderr.write(ours[-1] + "\n")
        raise SystemExit(2)
    if any("RegisterTask" in line for line in lines):  # never joined: the coordinator was not there
        fail(
            f"could not join the run at {args.coordinator or 'the detected coordinator'} within "
            f"{args.peer_timeout} s (is process 0 running, with the same --coordinator?); details in {log}."
        )
    peer = any("heartbeat" in line or "another task died" in line for line in lines)
    why = (
        f"another process of the run stopped or lost contact (no heartbeat for {args.peer_timeout} s)"
        if peer
        else f"the process ended with status {code}"
    )
    algos = args.table if args.algo == "all" else (args.algo,)
    kept = ", ".join(str(out / f"{args.env}_{a}.eqx") for a in algos if (out / f"{args.env}_{a}.eqx").exists())
    if kept:
        fail(f"{why}; details in {log}; the last checkpoint, {kept}, is complete: --resume continues from it.")
    fail(f"{why}; details in {log}; no checkpoint had been written yet: start the run again.")


def start_distributed(args: argparse.Namespace) -> None:
    """Join the `jax.distributed` run the flags describe (before any other JAX call)."""
    explicit = (args.coordinator, args.num_processes, args.process_id)
    if not args.distributed and all(x is None for x in explicit):
        return
    if not args.distributed and any(x is None for x in explicit):
        fail("--coordinator, --num-processes and --process-id go together (or --distributed alone).")
    if args.num_processes is not None and not 0 <= args.process_id < args.num_processes:
        fail(f"--process-id must be in [0, {args.num_processes}), got {args.process_id}.")
    if not os.environ.get(WORKER):
        supervise(args)
    # CPU collectives across processes go through gloo (accelerators use their own).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
            initialization_timeout=args.peer_timeout,
            heartbeat_timeout_seconds=args.peer_timeout,
        )
    except Exception as err:  # no coordinator, a wrong address, a peer that never came
        fail(f"jax.distributed could not start: {cli.first_line(err)}")


def train(args: argparse.Namespace, algo: str) -> None:
    out = pathlib.Path(args.out)
    stem = out / f"{args.env}_{algo}"
    meta = {"env": args.env, "n_agents": args.n_agents}
    steps: list = []
    returns: list = []
    seconds = 0.0
    if args.resume:
        header = checkpoint_or_fail(f"{stem}.eqx")
        cfg = config_or_fail(header, f"{stem}.eqx", args.table)
        if header["metadata"] != meta:
            fail(f"{stem}.eqx was trained on {header['metadata']}, not {meta}.")
        trainer = training.make_train(cfg, make_env(args.env, args.n_agents))
        state = load_or_fail(trainer, f"{stem}.eqx")
        seeds = header["num_seeds"]
        done = header["steps"] // cfg.steps_per_iteration
        if pathlib.Path(f"{stem}.npz").exists():
            data = np.load(f"{stem}.npz")
            keep = data["steps"] <= header["steps"]  # curves saved after the checkpoint are dropped
            steps, returns = [data["steps"][keep]], [data["returns"][:, keep]]
            seconds = float(data["seconds"])
    else:
        cfg = make_config(args.env, algo, args.total_steps, args.num_envs, args.table)
        trainer = training.make_train(cfg, make_env(args.env, args.n_agents))
        seeds = args.seeds
        state = jax.jit(jax.vmap(trainer.init))(jax.random.split(jax.random.key(args.seed), seeds))
        done = 0
    out.mkdir(parents=True, exist_ok=True)
    total = cfg.num_iterations
    verb = f"resuming at iteration {done} of" if args.resume else "training"
    where = f" on {jax.process_count()} processes ({jax.device_count()} devices)" if jax.process_count() > 1 else ""
    say(f"{algo} on {args.env}{where}: {verb} {seeds} seeds × {total} iterations × {cfg.steps_per_iteration} steps")
    start = time.perf_counter() - seconds

    def report(state: Any, metrics: Any) -> None:
        # np.asarray first: the metrics are replicated, so this reads this process's copy with no
        # collective (indexing the global array would be one, and fail if a peer has died)
        steps.append(np.asarray(metrics.steps)[0])
        returns.append(np.asarray(metrics.episode_return))
        elapsed = time.perf_counter() - start
        if is_main():
            save_curves(pathlib.Path(f"{stem}.npz"), steps, returns, elapsed, seeds)
        last = np.asarray(metrics.episode_return)[:, -1]
        say(
            f"  steps {int(steps[-1][-1]):>11,d}  {seeds * int(steps[-1][-1]) / elapsed:>9,.0f} steps/s  "
            f"return {np.nanmean(last):8.2f} ± {np.nanstd(last):.2f} (mean ± std over seeds)",
            flush=True,
        )

    try:
        training.train_in_chunks(
            trainer,
            state,
            num_iterations=total - done,
            chunk=args.chunk,
            checkpoint=f"{stem}.eqx",
            metadata=meta,
            on_chunk=report,
        )
    except training.TrainingError as err:
        fail(str(err))
    except Exception as err:
        if jax.process_count() == 1:
            raise
        # a peer process died or the network failed: JAX's collectives raise (or the heartbeat
        # of the coordination service gives up); the last checkpoint is complete.
        fail(
            f"process {jax.process_index()} lost its peers ({cli.first_line(err)}); "
            f"the last checkpoint, {stem}.eqx, is complete: --resume continues from it."
        )
    say(f"  saved {stem}.eqx and {stem}.npz")


def config_or_fail(header: dict, path: str, algorithms: dict[str, training.Algorithm]) -> training.MARLConfig:
    try:
        return training.MARLConfig.from_dict(header["config"], algorithms=algorithms)
    except ValueError as err:
        name = header["config"].get("algorithm")
        if name not in algorithms:
            fail(f"{path} was trained with the algorithm {name!r}: pass the module that defines it with --algorithms.")
        fail(f"{path}: {err}")


def checkpoint_or_fail(path: str) -> dict:
    try:
        return training.checkpoint_header(path)
    except training.CheckpointError as err:
        fail(str(err))


def load_or_fail(trainer: training.Trainer, path: str) -> Any:
    try:
        return trainer.load(path)
    except training.CheckpointError as err:
        fail(str(err))


def evaluate(args: argparse.Namespace) -> None:
    """Reload a checkpoint (its own configuration) and report the mean return of fresh episodes."""
    header = checkpoint_or_fail(args.evaluate)
    cfg = config_or_fail(header, args.evaluate, args.table)
    meta = header["metadata"]
    given = {"--algo": (args.algo, cfg.algorithm_name), "--env": (args.env, meta.get("env"))}
    given |= {"--seeds": (args.seeds, header["num_seeds"]), "--n-agents": (args.n_agents, meta.get("n_agents"))}
    clash = [f"{flag} {want!r} (it has {have!r})" for flag, (want, have) in given.items() if want not in (None, have)]
    if clash:
        fail(f"{args.evaluate} does not match {', '.join(clash)}; drop those flags: the checkpoint carries them.")
    if meta.get("env") not in ENVS or not isinstance(meta.get("n_agents"), int):
        fail(f"{args.evaluate} does not say which environment it was trained on.")
    trainer = training.make_train(cfg, make_env(meta["env"], meta["n_agents"]))
    state = load_or_fail(trainer, args.evaluate)
    seeds = header["num_seeds"]
    keys = jax.random.split(jax.random.key(args.seed + 1), seeds)
    returns = jax.jit(jax.vmap(lambda s, k: trainer.evaluate(s.actor_params, k)))(state, keys)
    print(
        f"{args.evaluate}: {cfg.algorithm_name} on {meta['env']}, {seeds} seeds: "
        f"return {float(jnp.mean(returns)):.2f} ± {float(jnp.std(returns)):.2f} over seeds"
    )


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = pathlib.Path(args.out)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    found = 0
    for i, algo in enumerate(args.table):
        path = out / f"{args.env}_{algo}.npz"
        if not path.exists():
            continue
        found += 1
        colour = colours[i % len(colours)]
        data = np.load(path)
        steps, returns = data["steps"], data["returns"]
        ended = ~np.all(np.isnan(returns), 0)  # iterations in which an episode ended (long episodes: few)
        steps, returns = steps[ended], returns[:, ended]
        mean, std = np.nanmean(returns, 0), np.nanstd(returns, 0)
        label = f"{algo.upper()} ({int(data['seeds'])} seeds)"
        ax.plot(steps, mean, color=colour, label=label)
        ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.2)
    if not found:
        fail(f"no saved runs of {args.env} in {out}/ (train first, or pass --out).")
    if args.env in MABRAX:
        ax.set_ylabel("episode return (1,000 steps)")
        ax.set_title(f"MABrax {args.env}")
    elif args.env in SMAX:
        ax.set_ylabel("episode return (team reward)")
        ax.set_title(f"SMAX {args.env.removeprefix('smax_')} vs the heuristic enemy")
    elif args.env == "simple_spread":
        ax.axhline(-80, color="grey", ls=":", label="uniform random ≈ −80")
        ax.axhline(-58, color="black", ls="--", lw=0.8, label="MAPPO published ≈ −58")
        ax.set_ylabel("episode return, summed over agents (25 steps)")
        ax.set_title("MPE simple_spread (3 agents)")
    else:
        n = args.n_agents
        ax.axhline(2 / 2**n, color="grey", ls=":", label=f"best shared policy 2/2ⁿ = {2 / 2**n:g}")
        ax.axhline(1.0, color="black", ls="--", lw=0.8, label="optimum 1")
        ax.set_ylabel("return r(a)")
        ax.set_title(f"Proposition 1's game, n = {n}: shared parameters (MAPPO) vs HAPPO")
    ax.set_xlabel("environment steps (per seed)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = out / f"{args.env}_curves.png"
    fig.savefig(path, dpi=120)
    print(f"saved {path}")
    plt.close(fig)


def main() -> None:
    parser = cli.OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--algo",
        default=None,
        help=f"{', '.join(training.ALGORITHMS)}, all, or one --algorithms defines (default happo)",
    )
    parser.add_argument(
        "--algorithms", metavar="MODULE", help="a .py file or module whose training.Algorithm objects to add"
    )
    parser.add_argument("--env", choices=ENVS, default=None, help="default simple_spread")
    parser.add_argument("--n-agents", type=int, default=None, help="3 for simple_spread, 4 for the game")
    parser.add_argument("--total-steps", type=int, default=10_000_000, help="environment steps per seed")
    parser.add_argument("--seeds", type=int, default=None, help="default 4")
    parser.add_argument("--seed", type=int, default=0, help="the key the seeds are split from")
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=50, help="iterations per jitted call between reports")
    parser.add_argument("--out", default="runs")
    parser.add_argument("--plot", action="store_true", help="only draw the learning curves of saved runs")
    parser.add_argument("--evaluate", metavar="CHECKPOINT", help="reload a checkpoint and play it")
    parser.add_argument("--resume", action="store_true", help="continue <out>/<env>_<algo>.eqx to its total steps")
    group = parser.add_argument_group("several processes (jax.distributed)")
    group.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, the same for every process")
    group.add_argument("--num-processes", type=int, help="how many processes take part")
    group.add_argument("--process-id", type=int, help="this process's index, 0 … N − 1")
    group.add_argument("--distributed", action="store_true", help="auto-detect the above (SLURM, Open MPI, …)")
    group.add_argument(
        "--peer-timeout", type=int, default=60, help="seconds before a missing peer stops the run (default 60)"
    )
    args = parser.parse_args()
    if args.num_processes is not None and args.num_processes < 1:
        parser.error(f"--num-processes must be >= 1, got {args.num_processes}")
    if args.peer_timeout < 1:
        parser.error(f"--peer-timeout must be >= 1, got {args.peer_timeout}")
    distributed = args.distributed or any(
        x is not None for x in (args.coordinator, args.num_processes, args.process_id)
    )
    if distributed and (args.evaluate or args.plot):
        parser.error("--evaluate and --plot run on one process; drop the jax.distributed flags")
    args.table = load_algorithms(args.algorithms)
    if args.algo is not None and args.algo not in (*args.table, "all"):
        parser.error(f"argument --algo: invalid choice: {args.algo!r} (choose from {', '.join([*args.table, 'all'])})")
    if args.evaluate:
        evaluate(args)
        return
    args.algo = args.algo or "happo"
    args.env = args.env or "simple_spread"
    args.seeds = 4 if args.seeds is None else args.seeds
    if args.env in (*MABRAX, *SMAX) and args.n_agents is not None:
        parser.error(f"--n-agents does not apply to {args.env} (the scenario fixes the number of agents)")
    if args.n_agents is None:
        args.n_agents = 3 if args.env == "simple_spread" else 4
    minimum_agents = 1 if args.env != "parameter_sharing" else 2
    if args.n_agents < minimum_agents or (args.env == "parameter_sharing" and args.n_agents % 2):
        parser.error(
            f"--n-agents must be {'an even number >= 2' if minimum_agents == 2 else '>= 1'}, got {args.n_agents}"
        )
    for flag, value in (("--seeds", args.seeds), ("--num-envs", args.num_envs), ("--chunk", args.chunk)):
        if value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    one = steps_per_iteration(args.env, args.num_envs)
    if args.total_steps < one and not (args.plot or args.resume):
        parser.error(
            f"--total-steps must be at least one iteration, --num-envs × {one // args.num_envs} = {one:,}, got {args.total_steps:,}"
        )
    if args.plot:
        plot(args)
        return
    start_distributed(args)  # before any other JAX call
    for algo in args.table if args.algo == "all" else (args.algo,):
        train(args, algo)
    if is_main():
        plot(args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        fail("interrupted (the last checkpoint written is complete; --resume continues from it)")
