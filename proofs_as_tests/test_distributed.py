"""Training on several processes (`jax.distributed`) computes what one process computes.

Each run is `examples/train_marl.py` in subprocesses, in float64 (`JAX_ENABLE_X64=1`), on
Proposition 1's game with 2 agents, 32 environments × 8 steps, HAPPO, one seed (the runs share
a persistent compilation cache, so that a program is compiled once):

- one process, one CPU device;
- one process, two CPU devices (`--xla_force_host_platform_device_count=2`): the environment
  batch sharded in two;
- two processes (coordinator on 127.0.0.1, gloo collectives), one device each: the same mesh of
  two devices, spanning the processes.

**What must be equal, and why.** The two 2-device runs run the same XLA program on the same
shards; the only cross-device operation is the all-reduce of two partial results, and a sum of two
floating-point numbers does not depend on its order: they are compared bit for bit. The 1-device
run adds the n = 256 per-sample terms of each batch mean in another order. Any two orders of a sum
differ by at most 2γ_{n−1}·Σ|x_i|, γ_k = k·u/(1 − k·u), u = 2⁻⁵³ (Higham, *Accuracy and Stability
of Numerical Algorithms*, 2002, §4.2): 5.7e-14 · Σ|x_i| here. Adam's step m̂/(√v̂ + ε) moves by at
most 1/(4ε) per unit of gradient change (the derivative of g/(|g| + ε) peaks at |g| = ε), so one
step of rate `lr` moves a parameter by at most lr·2γ_{n−1}·G/(4ε) more, with G ≥ Σ|x_i|/n the
per-sample gradient scale (≤ 1 here); over S Adam steps, S times that. The test computes this
bound (≈ 1e-7 for this run) and allows 10× it; a run whose processes disagree on the data or
on the update (a per-process seed, a missing all-reduce) moves parameters by O(lr) = 5e-4 per step.
The episode returns are means of the same rewards (the sampled actions agree unless a uniform
draw falls within ~1e-15 of a probability boundary): compared at rtol 1e-12.

The fault test kills one of the two processes mid-run: the other must exit within the peer
timeout (plus a margin for the start-up) with one line that names the last checkpoint; both
resumed with `--resume` must finish the run, and the result must equal the uninterrupted
2-device run bit for bit (a resumed run continues exactly, `train_in_chunks`).
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import reference as rf
from reference import training

pytestmark = [
    pytest.mark.slow,  # subprocesses: in the thorough profile (CI), not the quick one
    pytest.mark.skipif(sys.platform != "linux", reason="local multi-process runs are tested on Linux"),
]

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_marl.py"
ITERATIONS = 12
NUM_ENVS, NUM_STEPS = 32, 8
ARGS = [
    "--env",
    "parameter_sharing",
    "--algo",
    "happo",
    "--n-agents",
    "2",
    "--seeds",
    "1",
    "--num-envs",
    str(NUM_ENVS),
    "--chunk",
    "1",
    "--total-steps",
    str(ITERATIONS * NUM_ENVS * NUM_STEPS),
]
PEER_TIMEOUT = 10


CACHE = {"dir": ""}  # the module's persistent compilation cache, set by the `cache` fixture


def _env(devices: int = 1) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env |= {"JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    env |= {"JAX_COMPILATION_CACHE_DIR": CACHE["dir"], "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_process(out: pathlib.Path, devices: int) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *ARGS, "--out", str(out)],
        env=_env(devices),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _start_two(out: pathlib.Path, *extra: str) -> list[subprocess.Popen[str]]:
    port = _free_port()
    common = ["--out", str(out), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    common += ["--peer-timeout", str(PEER_TIMEOUT), *extra]
    return [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), *ARGS, *common, "--process-id", str(i)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: killing it kills its child too
        )
        for i in range(2)
    ]


def _wait_all(procs: list[subprocess.Popen[str]], timeout: float) -> list[tuple[int, str, str]]:
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


def _state(out: pathlib.Path) -> tuple[list[np.ndarray], np.ndarray, int]:
    """The checkpoint's arrays, the curves' returns and the steps, read in THIS process (one device)."""
    path = out / "parameter_sharing_happo.eqx"
    header = training.checkpoint_header(path)
    trainer = training.make_train(
        training.MARLConfig.from_dict(header["config"]),
        training.cooperative_game_env(rf.parameter_sharing_game(2), episode_length=1),
    )
    with jax.enable_x64(True):
        state = trainer.load(path)
        leaves = [
            np.asarray(x) for x in jax.tree.leaves(state) if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        ]
    curves = np.load(out / "parameter_sharing_happo.npz")["returns"]
    return leaves, curves, header["steps"]


def _adam_bound(config: training.MARLConfig, num_agents: int) -> float:
    """S · lr · 2γ_{n−1} · G / (4ε): the worst case derived in the module docstring (G = 1, ε = 1e-8)."""
    n = config.num_envs * config.num_steps
    u = 2.0**-53
    gamma = (n - 1) * u / (1 - (n - 1) * u)
    per_iteration = (
        config.critic_epochs * config.num_minibatches + config.num_epochs * config.num_minibatches * num_agents
    )
    steps = ITERATIONS * per_iteration
    lr = max(config.actor_lr, config.critic_lr)
    return steps * lr * 2 * gamma * 1.0 / (4 * 1e-8)


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    CACHE["dir"] = str(tmp_path_factory.mktemp("jax_cache"))


@pytest.fixture(scope="module")
def two_device_run(tmp_path_factory: pytest.TempPathFactory, cache: None) -> pathlib.Path:
    out = tmp_path_factory.mktemp("two_devices")
    _one_process(out, devices=2)
    return out


def test_two_processes_equal_one_process_with_two_devices_and_with_one(tmp_path, two_device_run):
    one_device = tmp_path / "one_device"
    _one_process(one_device, devices=1)
    two_processes = tmp_path / "two_processes"
    results = _wait_all(_start_two(two_processes), timeout=600)
    for code, _, err in results:
        assert code == 0, err[-2000:]
    assert "on 2 processes (2 devices)" in results[0][1]  # process 0 reports; process 1 does not
    assert "steps/s" in results[0][1] and "steps/s" not in results[1][1]

    ref, ref_curves, ref_steps = _state(two_device_run)
    got, got_curves, got_steps = _state(two_processes)
    assert got_steps == ref_steps == ITERATIONS * NUM_ENVS * NUM_STEPS
    for a, b in zip(got, ref, strict=True):  # bit for bit: an all-reduce of two terms has one order
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got_curves, ref_curves)

    single, single_curves, single_steps = _state(one_device)
    header = training.checkpoint_header(two_device_run / "parameter_sharing_happo.eqx")
    bound = _adam_bound(training.MARLConfig.from_dict(header["config"]), num_agents=2)
    assert 1e-9 < bound < 1e-5  # the derivation's number for this configuration
    assert single_steps == ref_steps
    np.testing.assert_allclose(single_curves, ref_curves, rtol=1e-12, atol=0)
    worst = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(single, ref, strict=True))
    assert worst <= 10 * bound, f"1 device vs 2: parameters differ by {worst:.3g} > 10 × {bound:.3g}"


def test_a_killed_process_stops_the_other_with_one_line_and_the_run_resumes(tmp_path, two_device_run):
    out = tmp_path / "killed"
    procs = _start_two(out)
    checkpoint = out / "parameter_sharing_happo.eqx"
    deadline = time.monotonic() + 300
    while not checkpoint.exists():  # the first chunk (and its compilation) is done
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
        time.sleep(0.05)
    os.killpg(procs[1].pid, signal.SIGKILL)
    killed_at = time.monotonic()
    code, _, err = _wait_all(procs[:1], timeout=PEER_TIMEOUT + 60)[0]
    waited = time.monotonic() - killed_at
    procs[1].communicate()
    assert code == 2, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-2000:]
    assert str(checkpoint) in lines[0] and "--resume" in lines[0]
    assert waited < PEER_TIMEOUT + 60
    stopped_at = training.checkpoint_header(checkpoint)["steps"]
    assert 0 < stopped_at < ITERATIONS * NUM_ENVS * NUM_STEPS, "the run ended before the kill"

    results = _wait_all(_start_two(out, "--resume"), timeout=600)
    for code, _, err in results:
        assert code == 0, err[-2000:]
    assert f"resuming at iteration {stopped_at // (NUM_ENVS * NUM_STEPS)}" in results[0][1]
    got, got_curves, got_steps = _state(out)
    ref, ref_curves, ref_steps = _state(two_device_run)
    assert got_steps == ref_steps
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got_curves, ref_curves)
