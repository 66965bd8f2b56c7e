"""What the example scripts share on the command line: one-line errors, never a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


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


def mujoco_log_off_disk() -> None:
    """MuJoCo (under MABrax) appends its warnings to `MUJOCO_LOG.TXT` in the working directory;
    send them to the console only. A no-op where MuJoCo is not installed."""
    try:
        import mujoco
    except ImportError:
        return
    config = mujoco.MjLogConfig.get()  # pyright: ignore[reportAttributeAccessIssue]  (not in its stubs)
    config.logto_file = False
    config.set()
