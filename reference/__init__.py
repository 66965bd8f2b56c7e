r"""`reference`: the mathematics of RL, from finite MDPs to multi-agent trust regions, in JAX.

Every public function computes one equation of the study notes; its docstring gives the
equation, its source, the notes' item (A-number) and the test that proves it.
"""

from ._bellman import (
    ValueIterationResult as ValueIterationResult,
    bellman_expectation_operator as bellman_expectation_operator,
    bellman_optimality_operator as bellman_optimality_operator,
    greedy_policy as greedy_policy,
    one_step_lookahead as one_step_lookahead,
    policy_evaluation as policy_evaluation,
    policy_iteration as policy_iteration,
    policy_reward as policy_reward,
    policy_transition_matrix as policy_transition_matrix,
    value_iteration as value_iteration,
    value_iteration_with_bound as value_iteration_with_bound,
)
from ._mdp import (
    GRIDWORLD_ACTIONS as GRIDWORLD_ACTIONS,
    GRIDWORLD_CELLS as GRIDWORLD_CELLS,
    FiniteMDP as FiniteMDP,
    discounted_return as discounted_return,
    gridworld_4x3 as gridworld_4x3,
    one_hot_policy as one_hot_policy,
    random_mdp as random_mdp,
    sample_trajectory as sample_trajectory,
)
from ._values import (
    action_values as action_values,
    advantages as advantages,
    discounted_visitation as discounted_visitation,
    expected_return as expected_return,
    state_values as state_values,
)

__all__ = [
    "GRIDWORLD_ACTIONS",
    "GRIDWORLD_CELLS",
    "FiniteMDP",
    "ValueIterationResult",
    "action_values",
    "advantages",
    "bellman_expectation_operator",
    "bellman_optimality_operator",
    "discounted_return",
    "discounted_visitation",
    "expected_return",
    "greedy_policy",
    "gridworld_4x3",
    "one_hot_policy",
    "one_step_lookahead",
    "policy_evaluation",
    "policy_iteration",
    "policy_reward",
    "policy_transition_matrix",
    "random_mdp",
    "sample_trajectory",
    "state_values",
    "value_iteration",
    "value_iteration_with_bound",
]

__version__ = "0.1.0"
