"""`examples/sweep.py`: the grid is dealt to processes without loss or overlap, the reported
interval is Student's t interval, and a sweep split over two processes runs and resumes."""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "sweep.py"
sys.path.insert(0, str(SCRIPT.parent))  # the script imports its sibling `_cli`
_spec = importlib.util.spec_from_file_location("sweep", SCRIPT)
assert _spec is not None and _spec.loader is not None
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)


@given(
    st.lists(st.sampled_from(["mappo", "happo", "hatrpo"]), min_size=1, max_size=3, unique=True),
    st.integers(1, 5),
    st.dictionaries(
        st.sampled_from(["actor_lr", "epsilon"]), st.lists(st.floats(0.01, 1), min_size=1, max_size=3, unique=True)
    ),
    st.integers(1, 7),
)
def test_the_grid_is_dealt_to_processes_without_loss_or_overlap(algos, seeds, grid, num_processes):
    every = sweep.jobs(algos, seeds, grid)
    assert len(every) == len(algos) * seeds * math.prod(len(v) for v in grid.values())
    keys = [sweep.job_key(j) for j in every]
    assert len(set(keys)) == len(keys)
    shares = [[sweep.job_key(j) for j in sweep.share(every, i, num_processes)] for i in range(num_processes)]
    assert sorted(k for s in shares for k in s) == sorted(keys)  # each job exactly once
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # balanced


def test_the_interval_is_students_t_interval():
    """t₀.₉₇₅ has closed forms for 1 and 2 degrees of freedom: tan(0.475π) and 0.95/√(2·0.975·0.025)."""
    rng = np.random.default_rng(0)
    for n, t in ((2, math.tan(0.475 * math.pi)), (3, 0.95 / math.sqrt(2 * 0.975 * 0.025))):
        x = rng.normal(size=(n, 4))
        mean, half = sweep.mean_and_interval(x)
        s = np.sqrt(np.sum((x - x.mean(0)) ** 2, axis=0) / (n - 1))
        np.testing.assert_allclose(mean, x.sum(0) / n, rtol=1e-14)
        np.testing.assert_allclose(half, t * s / math.sqrt(n), rtol=1e-10)
    mean, half = sweep.mean_and_interval(np.ones((1, 3)))
    assert np.all(np.isnan(half)) and np.all(mean == 1)


@pytest.mark.slow
def test_a_sweep_over_two_processes_runs_reports_and_resumes(tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, str(SCRIPT), "--algos", "happo", "--seeds", "3", "--processes", "2"]
    command += ["--total-steps", "512", "--num-envs", "32", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for p in sorted(out.glob("results-*.jsonl")) for line in p.read_text().splitlines()]
    assert sorted(r["seed"] for r in rows) == [0, 1, 2]
    assert {r["seed"]: r["process"] for r in rows} == {0: 0, 1: 1, 2: 0}  # round-robin
    assert all(len(r["returns"]) == 2 for r in rows)  # 512 steps = 2 iterations of 32 × 8
    for name in ("results.csv", "summary.md", "curves.png"):
        assert (out / name).stat().st_size > 0
    assert "| HAPPO | 3 |" in (out / "summary.md").read_text()
    before = sorted(p.read_text() for p in out.glob("results-*.jsonl"))
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert sorted(p.read_text() for p in out.glob("results-*.jsonl")) == before  # nothing re-run
