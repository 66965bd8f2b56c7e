"""The registry of on-policy multi-agent algorithms `make_train` runs: one entry, one agent update each."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

import optax

from .._heterogeneous_agent import a2c_agent_update, ppo_agent_update, trpo_agent_update
from .._sequential import AgentUpdate


@dataclasses.dataclass(frozen=True)
class Algorithm:
    r"""An actor update of the multi-agent trainer, with its own hyper-parameters.

    - `name`: how configurations, checkpoints and command lines call it.
    - `agent_update`: one agent's improvement step, `agent_update(key, policy, params, opt_state,
      batch, factor, *, hyper-parameters) -> (params, opt_state)` (an `AgentUpdate`). A
      keyword-only `optimizer` receives the actors' optax optimiser (Adam with the config's
      `actor_lr`, gradients clipped to `max_grad_norm`), and only then do the actors keep
      optimiser states.
    - `shared_actor`: `False` (heterogeneous agents): one actor per agent, updated one after
      another by `sequential_update` on the factor $M$. `True` (parameter sharing, MAPPO): one
      actor for all agents, updated once by `agent_update` on the agents' samples pooled into one
      batch, with the factor $\hat A$ for every sample.
    - `hyperparameters`: values of the update's keyword-only hyper-parameters (JSON-able: a
      checkpoint records them). Each keyword-only parameter is taken, in this order, from the
      `MARLConfig` field of the same name (the shared ones: `epsilon`, `entropy_coef`,
      `num_epochs`, `delta`, …), from `hyperparameters`, or from the function's own
      default; a name in `hyperparameters` that is also a `MARLConfig` field is refused (it
      would be ignored).

    Adding an algorithm is writing its `agent_update` and passing `Algorithm(name, agent_update)`
    as `MARLConfig(algorithm=...)`; its own hyper-parameters live here, not in `MARLConfig`. To
    read its checkpoints back, give it to `MARLConfig.from_dict(header["config"],
    algorithms={**ALGORITHMS, name: algorithm})`.

    **Examples:**

    ```pycon
    >>> from reference import training
    >>> def my_update(key, policy, params, opt_state, batch, factor, *, optimizer, step_scale=1.0):
    ...     return params, opt_state  # (a do-nothing update)
    >>> mine = training.Algorithm("mine", my_update, hyperparameters={"step_scale": 0.5})
    >>> config = training.MARLConfig(algorithm=mine, num_envs=8, total_steps=8 * 25)
    >>> config.as_dict()["algorithm"], config.as_dict()["algorithm_hyperparameters"]
    ('mine', {'step_scale': 0.5})

    ```
    """

    name: str
    agent_update: AgentUpdate
    shared_actor: bool = False
    hyperparameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"Algorithm {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Algorithm: `name` must be a non-empty string, but is {self.name!r}.")
        if not callable(self.agent_update):
            raise TypeError(f"{where}: `agent_update` must be callable, but is {type(self.agent_update).__name__}.")
        keywords = {
            name
            for name, p in inspect.signature(self.agent_update).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "optimizer"
        }
        unknown = sorted(set(self.hyperparameters) - keywords)
        if unknown:
            raise ValueError(
                f"{where}: `hyperparameters` {unknown} are not keyword-only parameters of its agent update "
                f"({sorted(keywords)})."
            )
        object.__setattr__(self, "hyperparameters", MappingProxyType(dict(self.hyperparameters)))

    def __hash__(self) -> int:  # the hyper-parameters' mapping is unhashable; equality still compares it
        return hash((self.name, self.agent_update, self.shared_actor))

    def bind(self, config: Any, optimizer: optax.GradientTransformation) -> tuple[AgentUpdate, bool]:
        """`agent_update` with its hyper-parameters bound; whether it takes an optimiser."""
        shadowed = sorted(name for name in self.hyperparameters if hasattr(config, name))
        if shadowed:
            raise ValueError(
                f"algorithm {self.name!r}: `hyperparameters` {shadowed} are MARLConfig fields; set them there."
            )
        kwargs: dict[str, Any] = {}
        for name, parameter in inspect.signature(self.agent_update).parameters.items():
            if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
                continue
            if name == "optimizer":
                kwargs[name] = optimizer
            elif hasattr(config, name):
                kwargs[name] = getattr(config, name)
            elif name in self.hyperparameters:
                kwargs[name] = self.hyperparameters[name]
            elif parameter.default is inspect.Parameter.empty:
                raise ValueError(
                    f"algorithm {self.name!r}: its agent update needs the hyper-parameter `{name}`, which neither "
                    "MARLConfig nor the Algorithm's `hyperparameters` give (give it there, or a default)."
                )
        return partial(self.agent_update, **kwargs), "optimizer" in kwargs


ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType(
    {
        # Yu et al. (2021): one actor shared by all agents, PPO's clipped loss on the pooled batch (A36).
        "mappo": Algorithm("mappo", ppo_agent_update, shared_actor=True),
        # Kuba et al. (2022): per-agent actors, sequential updates on the factor M.
        "happo": Algorithm("happo", ppo_agent_update),  # clipped surrogate, Adam epochs (A51)
        "hatrpo": Algorithm("hatrpo", trpo_agent_update),  # natural gradient in the KL ball (A45–A50)
        "haa2c": Algorithm("haa2c", a2c_agent_update),  # unclipped surrogate, Adam epochs (A51a)
    }
)
"""The algorithms `make_train` knows by name: `"mappo"`, `"happo"`, `"hatrpo"`, `"haa2c"`.

**Examples:**

```pycon
>>> from reference import training
>>> sorted(training.ALGORITHMS), training.ALGORITHMS["mappo"].shared_actor
(['haa2c', 'happo', 'hatrpo', 'mappo'], True)

```
"""
