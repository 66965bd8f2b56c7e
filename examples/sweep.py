"""A grid of training runs (algorithms × seeds × hyper-parameters) split across processes.

    python examples/sweep.py --algos mappo,happo,hatrpo --seeds 5 --processes 2      # run, then report
    python examples/sweep.py --algos happo --seeds 3 --set actor_lr=3e-4,1e-3 --env simple_spread
    python examples/sweep.py --report --out sweep                                   # table + curves again

Each job of the grid trains one seed of one configuration (`make_train`, jitted) and appends its
curve — the mean episode return of each iteration — as one JSON line to
`<out>/results-<process>.jsonl`. The jobs are dealt round-robin: process `i` of `N` takes jobs
`i, i + N, …`. `--processes N` starts the N processes on this machine; on a cluster, start the
same command once per task with `--num-processes N --process-id i` (or nothing under SLURM's
`srun`, which sets SLURM_NTASKS and SLURM_PROCID). Jobs already in the results are skipped, so a
stopped sweep continues where it was. The jobs are independent: no process waits for another.

The report (`<out>/results.csv`, `<out>/summary.md`, `<out>/curves.png`) gives, per configuration,
the mean over seeds and the 95% confidence interval of the mean (Student's t with n − 1 degrees of
freedom: mean ± t₀.₉₇₅,ₙ₋₁ · s/√n), of the curve and of the final return (the mean of the last 10%
of iterations). Bad arguments are answered with one line and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any, NoReturn

import _cli as cli  # the scripts' shared command-line helpers, beside this script

TUNABLE: dict[str, Any] = {"truncation": str}
TUNABLE |= {"actor_lr": float, "critic_lr": float, "epsilon": float, "delta": float, "entropy_coef": float}
TUNABLE |= {"num_envs": int, "num_epochs": int, "gae_lambda": float, "gamma": float, "hidden_size": int}


def fail(message: str) -> NoReturn:
    cli.fail("sweep.py", message)


# ------------------------------------------------------------------------------------------------
# The grid and each process's share
# ------------------------------------------------------------------------------------------------


def parse_set(items: list[str]) -> dict[str, list[Any]]:
    """`["actor_lr=3e-4,1e-3", "num_envs=64"]` → `{"actor_lr": [3e-4, 1e-3], "num_envs": [64]}`."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not values:
            fail(f"--set takes NAME=V1,V2,… , got {item!r}")
        if name not in TUNABLE:
            fail(f"--set {name}: not a tunable field; choose from {', '.join(sorted(TUNABLE))}")
        try:
            grid[name] = [TUNABLE[name](v) for v in values.split(",")]
        except ValueError:
            fail(f"--set {name}: {values!r} are not {TUNABLE[name].__name__} values")
        if name == "truncation" and not set(grid[name]) <= {"bootstrap", "as_termination"}:
            fail(f"--set truncation: {values!r}; choose from bootstrap, as_termination")
    return grid


def jobs(algos: list[str], seeds: int, grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every (algorithm, hyper-parameters, seed), in a fixed order."""
    names = sorted(grid)
    out = []
    for algo in algos:
        for values in itertools.product(*(grid[n] for n in names)):
            for seed in range(seeds):
                out.append({"algo": algo, "params": dict(zip(names, values, strict=True)), "seed": seed})
    return out


def share(all_jobs: list[dict[str, Any]], process_id: int, num_processes: int) -> list[dict[str, Any]]:
    """Process `process_id`'s jobs: every `num_processes`-th, starting at its index."""
    return all_jobs[process_id::num_processes]


def job_key(job: dict[str, Any]) -> str:
    return json.dumps({"algo": job["algo"], "params": job["params"], "seed": job["seed"]}, sort_keys=True)


def config_label(algo: str, params: dict[str, Any]) -> str:
    extra = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items()))
    return f"{algo.upper()}" + (f" ({extra})" if extra else "")


# ------------------------------------------------------------------------------------------------
# Running a share
# ------------------------------------------------------------------------------------------------


def run_share(args: argparse.Namespace, process_id: int, num_processes: int) -> None:
    import jax
    import numpy as np

    from reference import training

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mine = share(jobs(args.algos, args.seeds, args.grid), process_id, num_processes)
    done = {job_key(r) for r in read_results(out) if r["env"] == args.env}
    path = out / f"results-{process_id}.jsonl"
    env = cli.make_env("sweep.py", args.env, 3 if args.env == "simple_spread" else 4)
    num_steps = cli.rollout_length(args.env)
    compiled: dict[str, Any] = {}  # one jitted trainer per configuration: its seeds share the compilation
    for job in mine:
        if job_key(job) in done:
            continue
        params = {"num_envs": args.num_envs, **job["params"]}
        cfg = training.MARLConfig(algorithm=job["algo"], total_steps=args.total_steps, num_steps=num_steps, **params)
        name = repr(cfg)
        if name not in compiled:
            compiled[name] = jax.jit(training.make_train(cfg, env))
        start = time.perf_counter()
        _, metrics = jax.block_until_ready(compiled[name](jax.random.key(job["seed"])))
        seconds = time.perf_counter() - start
        row = {**job, "env": args.env, "steps": np.asarray(metrics.steps).tolist()}
        row |= {"returns": [None if not np.isfinite(x) else float(x) for x in np.asarray(metrics.episode_return)]}
        row |= {"seconds": seconds, "process": process_id}
        with open(path, "a") as f:  # one line per job: a stopped sweep keeps every finished job
            f.write(json.dumps(row) + "\n")
        print(
            f"[process {process_id}] {config_label(job['algo'], job['params'])} seed {job['seed']}: {seconds:.1f} s",
            flush=True,
        )


def read_results(out: pathlib.Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(out.glob("results-*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                fail(f"{path}:{number} is not a JSON line (a run stopped while writing? delete that line)")
    return rows


# ------------------------------------------------------------------------------------------------
# The report: mean and 95% interval over seeds
# ------------------------------------------------------------------------------------------------


def mean_and_interval(values: Any) -> tuple[Any, Any]:
    """Mean over the first axis and the half-width of its 95% interval, t₀.₉₇₅,ₙ₋₁ · s/√n (NaN for n = 1)."""
    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=float)
    n = x.shape[0]
    mean = np.nanmean(x, axis=0)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    half = stats.t.ppf(0.975, n - 1) * np.nanstd(x, axis=0, ddof=1) / np.sqrt(n)
    return mean, half


def report(out: pathlib.Path, env: str) -> None:
    import numpy as np

    rows = [r for r in read_results(out) if r["env"] == env]
    if not rows:
        fail(f"no results for {env} in {out}/ (run the sweep first, or pass --env/--out)")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["algo"], json.dumps(r["params"], sort_keys=True)), []).append(r)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env", "algo", "params", "seed", "iteration", "steps", "return"])
        for r in rows:
            for i, (s, ret) in enumerate(zip(r["steps"], r["returns"], strict=True)):
                w.writerow([env, r["algo"], json.dumps(r["params"], sort_keys=True), r["seed"], i, s, ret])
    lines = [
        f"# Sweep on {env}",
        "",
        "Final return: the mean of the last 10% of iterations of each seed; then the mean over seeds ± the",
        "half-width of its 95% confidence interval (Student's t, n − 1 degrees of freedom).",
        "",
        "| configuration | seeds | final return (mean ± 95% CI) | wall time per seed (the first in each process compiles) |",
        "|---|---|---|---|",
    ]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (algo, params), group in sorted(groups.items()):
        group = sorted(group, key=lambda r: r["seed"])
        length = min(len(r["returns"]) for r in group)
        curves = np.array([[np.nan if x is None else x for x in r["returns"][:length]] for r in group])
        steps = np.asarray(group[0]["steps"][:length])
        tail = max(1, length // 10)
        final_mean, final_half = mean_and_interval(np.nanmean(curves[:, -tail:], axis=1))
        label = config_label(algo, json.loads(params))
        seconds = np.mean([r["seconds"] for r in group])
        lines.append(f"| {label} | {len(group)} | {final_mean:.3f} ± {final_half:.3f} | {seconds:.0f} s |")
        mean, half = mean_and_interval(curves)
        (line,) = ax.plot(steps, mean, label=f"{label}, {len(group)} seeds")
        if len(group) > 1:
            ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("environment steps (per seed)")
    ax.set_ylabel("mean episode return")
    ax.set_title(f"{env}: mean ± 95% CI over seeds")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[5:]))
    print(f"wrote {out}/results.csv, {out}/summary.md and {out}/curves.png")


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = cli.OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", default="mappo,happo,hatrpo", help="comma-separated (default all three)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default 3)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=V1,V2", help="a hyper-parameter's values")
    parser.add_argument("--env", default="parameter_sharing", help="a name in training.ENVIRONMENTS")
    parser.add_argument("--total-steps", type=int, default=200_000, help="environment steps per seed")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--out", default="sweep")
    parser.add_argument("--processes", type=int, help="start this many processes on this machine")
    parser.add_argument("--num-processes", type=int, help="how many processes share the grid (cluster use)")
    parser.add_argument("--process-id", type=int, help="this process's index, 0 … N − 1 (cluster use)")
    parser.add_argument("--report", action="store_true", help="only write the table and curves of saved results")
    args = parser.parse_args(argv)
    from reference import training

    args.algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    unknown = [a for a in args.algos if a not in training.ALGORITHMS]
    if unknown or not args.algos:
        parser.error(f"--algos: unknown {unknown or args.algos}; choose from {', '.join(training.ALGORITHMS)}")
    if args.env not in training.ENVIRONMENTS:
        parser.error(f"argument --env: invalid choice: {args.env!r} (choose from {', '.join(training.ENVIRONMENTS)})")
    for flag, value in (("--seeds", args.seeds), ("--num-envs", args.num_envs), ("--total-steps", args.total_steps)):
        if value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    args.grid = parse_set(args.set)
    out = pathlib.Path(args.out)
    if args.report:
        report(out, args.env)
        return
    num_steps = cli.rollout_length(args.env)
    if args.total_steps < args.num_envs * num_steps:
        parser.error(f"--total-steps must be at least --num-envs × {num_steps} = {args.num_envs * num_steps}")
    if args.processes is not None:
        if args.processes < 1:
            parser.error(f"--processes must be >= 1, got {args.processes}")
        if args.num_processes is not None or args.process_id is not None:
            parser.error("--processes starts the processes itself: drop --num-processes/--process-id")
        forward = list(argv if argv is not None else sys.argv[1:])
        i = forward.index("--processes") if "--processes" in forward else None
        if i is not None:
            del forward[i : i + 2]
        else:  # --processes=N
            forward = [a for a in forward if not a.startswith("--processes=")]
        children = [
            subprocess.Popen(
                [sys.executable, __file__, *forward, "--num-processes", str(args.processes), "--process-id", str(p)]
            )
            for p in range(args.processes)
        ]
        codes = [c.wait() for c in children]
        if any(codes):
            fail(
                f"process(es) {[i for i, c in enumerate(codes) if c]} failed; finished jobs are kept, run again to continue"
            )
        report(out, args.env)
        return
    if args.num_processes is None and args.process_id is None and "SLURM_NTASKS" in os.environ:
        args.num_processes, args.process_id = int(os.environ["SLURM_NTASKS"]), int(os.environ["SLURM_PROCID"])
    if (args.num_processes is None) != (args.process_id is None):
        parser.error("--num-processes and --process-id go together")
    n, i = 1, 0
    if args.num_processes is not None and args.process_id is not None:
        n, i = args.num_processes, args.process_id
    if n < 1 or not 0 <= i < n:
        parser.error(f"--process-id must be in [0, --num-processes), got {i} of {n}")
    run_share(args, i, n)
    if n == 1:
        report(out, args.env)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        fail("interrupted (finished jobs are kept in the results; run the same command to continue)")
