"""`reference.training`: multi-agent actor-critic training built on the library's equations.

The flat namespace `reference` holds one function per equation of the notes; this subpackage holds
what trains neural policies with them: the sequential update of heterogeneous agents
(`sequential_update`), the algorithms as one agent-update function each (`ALGORITHMS`), the
policies (`Categorical`, `DiagonalGaussian`), environments (`make_env`), and the trainer
(`make_train`) with its checkpoints. One module per job: `_envs` (the environment interface and
adapters), `_config`, `_algorithms`, `_networks`, `_state` (what the trainer carries and
records), `_trainer` (rollout and updates), `_checkpoints`, `_sharding` and `_chunks` (chunked
runs that stop on NaN).
"""

from .._heterogeneous_agent import (
    a2c_agent_update as a2c_agent_update,
    a2c_surrogate_loss as a2c_surrogate_loss,
    clipped_surrogate_loss as clipped_surrogate_loss,
    ppo_agent_update as ppo_agent_update,
    trpo_agent_update as trpo_agent_update,
)
from .._sequential import (
    AgentBatch as AgentBatch,
    AgentUpdate as AgentUpdate,
    Categorical as Categorical,
    DiagonalGaussian as DiagonalGaussian,
    Policy as Policy,
    minibatch_epochs as minibatch_epochs,
    sequential_update as sequential_update,
)
from ._algorithms import ALGORITHMS as ALGORITHMS, Algorithm as Algorithm
from ._checkpoints import CheckpointError as CheckpointError, checkpoint_header as checkpoint_header
from ._chunks import TrainingError as TrainingError, train_in_chunks as train_in_chunks
from ._config import MARLConfig as MARLConfig
from ._envs import (
    ENVIRONMENTS as ENVIRONMENTS,
    CooperativeGameEnv as CooperativeGameEnv,
    EnvStep as EnvStep,
    JaxMARLEnv as JaxMARLEnv,
    MultiAgentEnv as MultiAgentEnv,
    cooperative_game_env as cooperative_game_env,
    mabrax_env as mabrax_env,
    make_env as make_env,
    mujoco_warnings_to_console as mujoco_warnings_to_console,
    simple_spread_env as simple_spread_env,
    smax_env as smax_env,
)
from ._state import Metrics as Metrics, TrainState as TrainState, Transition as Transition
from ._trainer import Trainer as Trainer, make_train as make_train

__all__ = [
    "ALGORITHMS",
    "ENVIRONMENTS",
    "AgentBatch",
    "AgentUpdate",
    "Algorithm",
    "Categorical",
    "CheckpointError",
    "CooperativeGameEnv",
    "DiagonalGaussian",
    "EnvStep",
    "JaxMARLEnv",
    "MARLConfig",
    "Metrics",
    "MultiAgentEnv",
    "Policy",
    "TrainState",
    "Trainer",
    "TrainingError",
    "Transition",
    "a2c_agent_update",
    "a2c_surrogate_loss",
    "checkpoint_header",
    "clipped_surrogate_loss",
    "cooperative_game_env",
    "mabrax_env",
    "make_env",
    "make_train",
    "minibatch_epochs",
    "mujoco_warnings_to_console",
    "ppo_agent_update",
    "sequential_update",
    "simple_spread_env",
    "smax_env",
    "train_in_chunks",
    "trpo_agent_update",
]
