"""Train MAPPO, HAPPO or HATRPO (notes §4) on MPE cooperative navigation or Proposition 1's game.

    python examples/train_marl.py --algo happo --env simple_spread --total-steps 10_000_000 --seeds 4
    python examples/train_marl.py --algo all --env parameter_sharing --n-agents 4 --total-steps 200_000
    python examples/train_marl.py --plot --env simple_spread          # the learning curves, from saved runs
    python examples/train_marl.py --evaluate runs/simple_spread_happo.eqx --algo happo --seeds 4

Needs the `marl` extra for simple_spread (`pip install -e ".[marl,examples]"`). Every seed trains in
one jitted call (`jax.vmap` over seeds) in chunks of `--chunk` iterations; after each chunk the
progress is printed and the state saved (equinox serialisation) to `<out>/<env>_<algo>.eqx`, the
curves to `<out>/<env>_<algo>.npz`.
"""

import argparse
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import reference as rf


def make_env(args: argparse.Namespace) -> rf.MultiAgentEnv:
    if args.env == "simple_spread":
        return rf.simple_spread_env(args.n_agents, 25)
    return rf.cooperative_game_env(rf.parameter_sharing_game(args.n_agents), episode_length=1)


def make_config(args: argparse.Namespace, algo: str) -> rf.MARLConfig:
    if args.env == "simple_spread":
        return rf.MARLConfig(algorithm=algo, total_steps=args.total_steps, num_envs=args.num_envs, num_steps=25)
    # Proposition 1's one-shot game: γ irrelevant (every episode is one step), short rollouts.
    return rf.MARLConfig(algorithm=algo, total_steps=args.total_steps, num_envs=args.num_envs, num_steps=8)


def train(args: argparse.Namespace, algo: str) -> None:
    env, cfg = make_env(args), make_config(args, algo)
    trainer = rf.make_train(cfg, env)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{args.env}_{algo}"
    keys = jax.random.split(jax.random.key(args.seed), args.seeds)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    chunks: dict[int, Any] = {}
    steps, returns = [], []
    done, total = 0, cfg.num_iterations
    print(f"{algo} on {args.env}: {args.seeds} seeds × {total} iterations × {cfg.steps_per_iteration} steps")
    start = time.perf_counter()
    while done < total:
        k = min(args.chunk, total - done)
        if k not in chunks:
            chunks[k] = jax.jit(jax.vmap(lambda s, k=k: trainer.run(s, k)))
        state, metrics = chunks[k](state)
        jax.block_until_ready(metrics)
        done += k
        steps.append(np.asarray(metrics.steps[0]))
        returns.append(np.asarray(metrics.episode_return))
        trainer.save(f"{stem}.eqx", state)
        elapsed = time.perf_counter() - start
        last = np.asarray(metrics.episode_return)[:, -1]
        print(
            f"  steps {int(steps[-1][-1]):>11,d}  {args.seeds * int(steps[-1][-1]) / elapsed:>9,.0f} steps/s  "
            f"return {np.nanmean(last):8.2f} ± {np.nanstd(last):.2f} (mean ± std over seeds)",
            flush=True,
        )
    np.savez(
        f"{stem}.npz",
        steps=np.concatenate(steps),
        returns=np.concatenate(returns, axis=1),
        seconds=time.perf_counter() - start,
        seeds=args.seeds,
    )
    print(f"  saved {stem}.eqx and {stem}.npz")


def evaluate(args: argparse.Namespace) -> None:
    """Reload a checkpoint and report the mean return of fresh episodes played by its actors."""
    env, cfg = make_env(args), make_config(args, args.algo)
    trainer = rf.make_train(cfg, env)
    state = trainer.load(args.evaluate, num_seeds=args.seeds)
    keys = jax.random.split(jax.random.key(args.seed + 1), args.seeds)
    returns = jax.jit(jax.vmap(lambda s, k: trainer.evaluate(s.actor_params, k)))(state, keys)
    print(f"{args.evaluate}: return {float(jnp.mean(returns)):.2f} ± {float(jnp.std(returns)):.2f} over seeds")


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = pathlib.Path(args.out)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for algo, colour in zip(rf.ALGORITHMS, ("tab:blue", "tab:orange", "tab:green"), strict=True):
        path = out / f"{args.env}_{algo}.npz"
        if not path.exists():
            continue
        data = np.load(path)
        steps, returns = data["steps"], data["returns"]
        mean, std = np.nanmean(returns, 0), np.nanstd(returns, 0)
        label = f"{algo.upper()} ({int(data['seeds'])} seeds)"
        ax.plot(steps, mean, color=colour, label=label)
        ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.2)
    if args.env == "simple_spread":
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=[*rf.ALGORITHMS, "all"], default="happo")
    parser.add_argument("--env", choices=["simple_spread", "parameter_sharing"], default="simple_spread")
    parser.add_argument("--n-agents", type=int, default=None, help="3 for simple_spread, 4 for the game")
    parser.add_argument("--total-steps", type=int, default=10_000_000, help="environment steps per seed")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="the key the seeds are split from")
    parser.add_argument("--num-envs", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=50, help="iterations per jitted call between reports")
    parser.add_argument("--out", default="runs")
    parser.add_argument("--plot", action="store_true", help="only draw the learning curves of saved runs")
    parser.add_argument("--evaluate", metavar="CHECKPOINT", help="reload a checkpoint and play it")
    args = parser.parse_args()
    if args.n_agents is None:
        args.n_agents = 3 if args.env == "simple_spread" else 4
    if args.plot:
        plot(args)
    elif args.evaluate:
        evaluate(args)
    else:
        for algo in rf.ALGORITHMS if args.algo == "all" else (args.algo,):
            train(args, algo)
        plot(args)


if __name__ == "__main__":
    main()
