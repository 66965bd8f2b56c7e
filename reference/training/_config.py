"""`MARLConfig`: the hyper-parameters of `make_train`, validated on construction, as checkpoints record them."""

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from .._checks import check_positive_int
from ._algorithms import ALGORITHMS, Algorithm


@dataclasses.dataclass(frozen=True)
class MARLConfig:
    r"""Hyper-parameters of `make_train`.

    Defaults: the authors' code (Kuba et al. 2022 / HARL) and MAPPO's MPE settings: 128
    environments × 25 steps, γ = 0.99, λ = 0.95, Adam 5e-4, gradient
    clip 10, 5 epochs of 1 minibatch, clip ε = 0.2, entropy 0.01; HATRPO δ = 0.01, damping 0.1, 10
    CG steps, backtracking ×0.8 up to 10 times, accept ratio 0.5; a truncated episode (a time limit)
    bootstraps from the value of the state it reached. The names are the notes' symbols and the
    flat API's where they exist: `gamma` γ, `gae_lambda` λ, `epsilon` ε (the clip range of
    PPO/MAPPO/HAPPO, `happo_objective`'s `epsilon`), `delta` δ (HATRPO's KL threshold,
    `hatrpo_update`'s `delta`).

    - `algorithm`: a name in `ALGORITHMS` — `"mappo"` (one actor shared by all agents), `"happo"`,
      `"hatrpo"`, `"haa2c"` (one actor per agent, `sequential_update`) — or an `Algorithm`.
    - `total_steps`: environment steps per seed (counting one step of all agents as one);
      the number of iterations is `total_steps // (num_envs · num_steps)`.
    - `hidden_size`, `num_layers`: the actors' and the critic's MLPs (tanh).
    - `log_std_init`: the initial state-independent log-std of Gaussian actors (continuous actions).
    - `truncation`: what a truncated episode (`EnvStep.truncated`, e.g. MPE's 25-step limit) is to
      GAE and the critic's targets. `"bootstrap"` (default): the step's TD error is
      $r_t + \gamma V(s_{t+1}^{\text{final}}) - V(s_t)$ with the state the step reached, and the
      recursion stops there — the estimate of the notes' infinite-horizon discounted return, which
      a time limit does not end (HARL's `use_proper_time_limits`). `"as_termination"`: the
      truncation is treated as a terminal state, $\delta_t = r_t - V(s_t)$ (this library's
      behaviour before truncations were told apart; purejaxrl's and JaxMARL's baselines).

    **Examples:**

    ```pycon
    >>> from reference import training
    >>> config = training.MARLConfig(algorithm="hatrpo", total_steps=64 * 25 * 10, num_envs=64)
    >>> config.num_iterations, config.algorithm_name, config.truncation
    (10, 'hatrpo', 'bootstrap')
    >>> training.MARLConfig(gamma=1.5)
    Traceback (most recent call last):
    ...
    ValueError: MARLConfig: `gamma` must be in [0, 1], but is 1.5.

    ```
    """

    algorithm: str | Algorithm = "happo"
    total_steps: int = 10_000_000
    num_envs: int = 128
    num_steps: int = 25
    gamma: float = 0.99
    gae_lambda: float = 0.95
    hidden_size: int = 64
    num_layers: int = 2
    actor_lr: float = 5e-4
    critic_lr: float = 5e-4
    max_grad_norm: float = 10.0
    num_epochs: int = 5
    num_minibatches: int = 1
    critic_epochs: int = 5
    epsilon: float = 0.2
    entropy_coef: float = 0.01
    delta: float = 0.01
    damping: float = 0.1
    cg_steps: int = 10
    backtrack_ratio: float = 0.8
    max_backtracks: int = 10
    accept_ratio: float = 0.5
    normalise_advantages: bool = True
    log_std_init: float = -0.5
    truncation: Literal["bootstrap", "as_termination"] = "bootstrap"

    def __post_init__(self) -> None:
        where = "MARLConfig"
        if not isinstance(self.algorithm, Algorithm) and self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"{where}: `algorithm` must be one of {tuple(ALGORITHMS)} or an Algorithm, but is {self.algorithm!r}."
            )
        positive = ("num_envs", "num_steps", "hidden_size", "num_layers", "num_epochs", "num_minibatches")
        for name in (*positive, "critic_epochs", "cg_steps", "max_backtracks"):
            check_positive_int(getattr(self, name), name, where, 1)
        check_positive_int(self.total_steps, "total_steps", where, self.num_envs * self.num_steps)
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{where}: `{name}` must be in [0, 1], but is {getattr(self, name)}.")
        for name in ("actor_lr", "critic_lr", "max_grad_norm", "epsilon", "delta"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{where}: `{name}` must be > 0, but is {getattr(self, name)}.")
        for name in ("entropy_coef", "damping"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{where}: `{name}` must be ≥ 0, but is {getattr(self, name)}.")
        for name in ("backtrack_ratio", "accept_ratio"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{where}: `{name}` must be in (0, 1), but is {getattr(self, name)}.")
        if not np.isfinite(self.log_std_init):
            raise ValueError(f"{where}: `log_std_init` must be finite, but is {self.log_std_init}.")
        if self.truncation not in ("bootstrap", "as_termination"):
            raise ValueError(
                f"{where}: `truncation` must be 'bootstrap' or 'as_termination', but is {self.truncation!r}."
            )
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(
                f"{where}: `num_minibatches` ({self.num_minibatches}) must divide the batch "
                f"num_envs · num_steps = {self.num_envs * self.num_steps}."
            )

    @property
    def algorithm_spec(self) -> Algorithm:
        """The `Algorithm` named by `algorithm` (or `algorithm` itself)."""
        return self.algorithm if isinstance(self.algorithm, Algorithm) else ALGORITHMS[self.algorithm]

    @property
    def algorithm_name(self) -> str:
        """The algorithm's name."""
        return self.algorithm_spec.name

    @property
    def steps_per_iteration(self) -> int:
        """`num_envs · num_steps`: environment steps per iteration (one step of all agents counts once)."""
        return self.num_envs * self.num_steps

    @property
    def num_iterations(self) -> int:
        """`total_steps // steps_per_iteration`."""
        return self.total_steps // self.steps_per_iteration

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON-able values, as checkpoints record them.

        The algorithm is recorded by its name, with its own hyper-parameters (if it has any) under
        `"algorithm_hyperparameters"`; `MARLConfig.from_dict` reads the dict back.
        """
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        spec = self.algorithm_spec
        out = {**fields, "algorithm": spec.name}
        if spec.hyperparameters:
            out["algorithm_hyperparameters"] = dict(spec.hyperparameters)
        return out

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any], algorithms: Mapping[str, Algorithm] = ALGORITHMS) -> "MARLConfig":
        """The `MARLConfig` that `as_dict` (or a checkpoint's header) describes.

        `algorithms` maps names to `Algorithm`s (default `ALGORITHMS`); pass your own entries to
        read back a configuration of an algorithm you defined (`{**ALGORITHMS, "mine": mine}`).
        The recorded hyper-parameters of the algorithm replace its defaults. An older record is
        upgraded (`upgrade`): `clip_epsilon`, `kl_threshold` and `normalize_advantages` are read as
        `epsilon`, `delta` and `normalise_advantages`,
        and a record without `truncation` (written before truncations were told apart) trained
        with `"as_termination"`, and is read so.

        **Examples:**

        ```pycon
        >>> from reference import training
        >>> config = training.MARLConfig(algorithm="haa2c", num_envs=8, total_steps=8 * 25)
        >>> training.MARLConfig.from_dict(config.as_dict()) == config
        True

        ```
        """
        where = "MARLConfig.from_dict"
        values = upgrade(fields)
        hyper = values.pop("algorithm_hyperparameters", None) or {}
        name = values.get("algorithm", "happo")
        if isinstance(name, str):
            if name not in algorithms:
                raise ValueError(
                    f"{where}: the algorithm {name!r} is not in `algorithms` {tuple(algorithms)}: pass the "
                    "Algorithm it was trained with, e.g. `algorithms={**ALGORITHMS, name: algorithm}`."
                )
            spec = algorithms[name]
            if hyper:
                spec = dataclasses.replace(spec, hyperparameters={**spec.hyperparameters, **hyper})
            values["algorithm"] = name if ALGORITHMS.get(name) == spec else spec
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown fields {unknown} (MARLConfig has {sorted(known)}).")
        return cls(**values)


RENAMED = {"clip_epsilon": "epsilon", "kl_threshold": "delta", "normalize_advantages": "normalise_advantages"}
"""Fields of `MARLConfig` renamed since checkpoints began recording it: old name → new name."""


def upgrade(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded configuration in today's names: renamed fields renamed, `truncation` supplied.

    A record without `truncation` was written when every episode end was a termination, so it
    gets `"as_termination"`.
    """
    values = {RENAMED.get(name, name): value for name, value in fields.items()}
    return {"truncation": "as_termination", **values}
