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
    r"""An actor update of the multi-agent trainer.

    - `name`: how configurations, checkpoints and command lines call it.
    - `agent_update`: one agent's improvement step, `agent_update(key, policy, params, opt_state,
      batch, factor, *, hyper-parameters) -> (params, opt_state)` (an `AgentUpdate`). Its
      keyword-only hyper-parameters are taken from the `MARLConfig` fields of the same name; a
      keyword-only `optimizer` receives the actors' optax optimiser (Adam with the config's
      `actor_lr`, gradients clipped to `max_grad_norm`), and only then do the actors keep
      optimiser states.
    - `shared_actor`: `False` (heterogeneous agents): one actor per agent, updated one after
      another by `sequential_update` on the factor $M$. `True` (parameter sharing, MAPPO): one
      actor for all agents, updated once by `agent_update` on the agents' samples pooled into one
      batch, with the factor $\hat A$ for every sample.

    Adding an algorithm is writing its `agent_update` and passing `Algorithm(name, agent_update)`
    as `MARLConfig(algorithm=...)` (or adding it to a copy of `ALGORITHMS` for a command line).
    """

    name: str
    agent_update: AgentUpdate
    shared_actor: bool = False

    def bind(self, config: Any, optimizer: optax.GradientTransformation) -> tuple[AgentUpdate, bool]:
        """`agent_update` with its hyper-parameters bound from `config`; whether it takes an optimiser."""
        kwargs: dict[str, Any] = {}
        for name, parameter in inspect.signature(self.agent_update).parameters.items():
            if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
                continue
            if name == "optimizer":
                kwargs[name] = optimizer
            elif hasattr(config, name):
                kwargs[name] = getattr(config, name)
            elif parameter.default is inspect.Parameter.empty:
                raise ValueError(
                    f"algorithm {self.name!r}: its agent update needs the hyper-parameter `{name}`, "
                    "which MARLConfig does not have (give it a default)."
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
"""The algorithms `make_train` knows by name: `"mappo"`, `"happo"`, `"hatrpo"`, `"haa2c"`."""
