"""What the example scripts share on the command line: one-line errors, never a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from reference.training import MultiAgentEnv


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is answered with one line (no usage block) and status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def fail(prog: str, message: str) -> NoReturn:
    """Refuse with one line `prog: error: message` and status 2 (as argparse does)."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    raise SystemExit(2)


def first_line(err: BaseException) -> str:
    """An exception's first line of text (its type's name if it has none)."""
    text = str(err).strip()
    return (text.splitlines() or [type(err).__name__])[0]


def is_mabrax(env: str) -> bool:
    """Whether `env` (a name in `training.ENVIRONMENTS`) is a multi-agent MuJoCo task (the `mabrax` extra)."""
    return env not in ("simple_spread", "parameter_sharing") and not env.startswith("smax_")


def rollout_length(env: str) -> int:
    """Steps per environment per iteration: a 25-step MPE episode, 100 of a 1,000-step MuJoCo one,
    50 in SMAX, 8 one-step games."""
    if is_mabrax(env):
        return 100
    return {"simple_spread": 25, "parameter_sharing": 8}.get(env, 50)


def make_env(prog: str, env: str, n_agents: int) -> MultiAgentEnv:
    """`reference.training.make_env(env, n_agents)`, a missing extra answered with one line."""
    from reference import training

    if is_mabrax(env):
        training.mujoco_warnings_to_console()
    try:
        return training.make_env(env, n_agents)
    except ImportError as err:
        fail(prog, str(err))
