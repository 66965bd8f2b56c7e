"""Throughput of one training run on 1 process vs 2 processes (`jax.distributed`), this machine.

HAPPO on MPE simple_spread (needs the `marl` extra), 128 environments × 25 steps per iteration,
one seed, float32. Three ways to run the same global batch:

- 1 process, 1 CPU device (the baseline of the ratios);
- 1 process, 2 CPU devices (`--xla_force_host_platform_device_count=2`): the batch sharded in two
  inside one process;
- 2 processes × 1 device (coordinator on 127.0.0.1, gloo collectives): the same sharding across
  processes, as on a cluster.

Each is timed after a warm-up run (compilation excluded): environment steps per second of
`trainer.run` over 10 iterations, the best of 3. On one 2-core machine the two processes share the
same two cores that one process already uses (XLA's CPU backend runs one device's work on several
threads), so no speed-up is expected here: the table measures the cost of the collectives, not
the gain from more hardware.

Run: `python -m benchmarks.distributed`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

ITERATIONS = 10


def worker(process_id: int, num_processes: int, port: int) -> None:
    import jax

    if num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=num_processes, process_id=process_id)
    from reference import training

    trainer = training.make_train(
        training.MARLConfig(algorithm="happo", total_steps=3200 * ITERATIONS), training.simple_spread_env()
    )
    state = jax.jit(trainer.init)(jax.random.key(0))
    run = jax.jit(lambda s: trainer.run(s, ITERATIONS))
    state, _ = jax.block_until_ready(run(state))  # compile and warm up
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        state, _ = jax.block_until_ready(run(state))
        best = min(best, time.perf_counter() - start)
    if process_id == 0:
        steps = ITERATIONS * trainer.config.steps_per_iteration / best
        print(json.dumps({"steps_per_second": steps, "devices": jax.device_count(), "shard": trainer.shard_envs}))


def measure(processes: int, devices_per_process: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if devices_per_process > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_per_process}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.distributed", "--worker", str(i), str(processes), str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for i in range(processes)
    ]
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {[p.returncode for p in procs]}")
    line = [ln for ln in outputs[0].splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


def main() -> None:
    from benchmarks._timing import machine

    print(f"# One run on 1 vs 2 processes, HAPPO on MPE simple_spread (128 envs × 25 steps), {machine()}")
    print("| processes × devices each | devices | env steps/s | ratio to 1 × 1 |")
    print("|---|---|---|---|")
    base = None
    for processes, devices in ((1, 1), (1, 2), (2, 1)):
        result = measure(processes, devices)
        base = base or result["steps_per_second"]
        print(
            f"| {processes} × {devices} | {result['devices']} | {result['steps_per_second']:,.0f} | "
            f"{result['steps_per_second'] / base:.2f}× |",
            flush=True,
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
