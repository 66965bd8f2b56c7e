"""Shared timing helpers: best-of-N wall time of a call, with JAX results blocked on."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import jax


def block(x: Any) -> Any:
    return jax.tree_util.tree_map(lambda y: y.block_until_ready() if hasattr(y, "block_until_ready") else y, x)


def _mean_call_time(fn: Callable[[], Any], min_time: float) -> float:
    """Mean wall time per call over consecutive calls lasting at least `min_time` (at least one)."""
    n, start = 0, time.perf_counter()
    while True:
        block(fn())
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / n


def best_time(fn: Callable[[], Any], repeats: int = 5, min_time: float = 0.05) -> float:
    """Best over `repeats` of the mean time per call, each repeat lasting at least `min_time`."""
    block(fn())  # warm up (and compile)
    return min(_mean_call_time(fn, min_time) for _ in range(repeats))


def interleaved_times(
    fns: dict[str, Callable[[], Any]], rounds: int = 30, min_time: float = 0.01
) -> dict[str, list[float]]:
    """Mean time per call of each function in each of `rounds` rounds, the functions taking turns
    within a round (each for at least `min_time`), so that a ratio taken round by round compares
    calls made under the same load of a shared machine."""
    for fn in fns.values():
        block(fn())  # warm up (and compile)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(_mean_call_time(fn, min_time))
    return times


def compile_time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    block(fn())
    return time.perf_counter() - start


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.system()} {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, jax {jax.__version__}"
    )
