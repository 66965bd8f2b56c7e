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
from ._ppo import (
    generalized_advantage_estimate as generalized_advantage_estimate,
    ppo_clip_objective as ppo_clip_objective,
    probability_ratio as probability_ratio,
)
from ._trpo import (
    backtracking_line_search as backtracking_line_search,
    fisher_vector_product as fisher_vector_product,
    natural_gradient_step as natural_gradient_step,
    trpo_update as trpo_update,
)
from ._trust_region import (
    TrustRegionStep as TrustRegionStep,
    exact_trust_region_step as exact_trust_region_step,
    kl_divergence as kl_divergence,
    max_kl as max_kl,
    max_total_variation as max_total_variation,
    mean_kl as mean_kl,
    monotonic_policy_iteration as monotonic_policy_iteration,
    penalty_coefficient as penalty_coefficient,
    performance_difference as performance_difference,
    surrogate_objective as surrogate_objective,
    trpo_lower_bound as trpo_lower_bound,
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
    "TrustRegionStep",
    "ValueIterationResult",
    "action_values",
    "advantages",
    "backtracking_line_search",
    "bellman_expectation_operator",
    "bellman_optimality_operator",
    "discounted_return",
    "discounted_visitation",
    "exact_trust_region_step",
    "expected_return",
    "fisher_vector_product",
    "generalized_advantage_estimate",
    "greedy_policy",
    "gridworld_4x3",
    "kl_divergence",
    "max_kl",
    "max_total_variation",
    "mean_kl",
    "monotonic_policy_iteration",
    "natural_gradient_step",
    "one_hot_policy",
    "one_step_lookahead",
    "penalty_coefficient",
    "performance_difference",
    "policy_evaluation",
    "policy_iteration",
    "policy_reward",
    "policy_transition_matrix",
    "ppo_clip_objective",
    "probability_ratio",
    "random_mdp",
    "sample_trajectory",
    "state_values",
    "surrogate_objective",
    "trpo_lower_bound",
    "trpo_update",
    "value_iteration",
    "value_iteration_with_bound",
]

__version__ = "0.1.0"
