r"""`reference`: the mathematics of RL, from finite MDPs to multi-agent trust regions, in JAX.

Every public function computes one equation of the study notes; its docstring gives the
equation, its source, the notes' item (A-number, catalogued in `docs/notes.md`) and the test
that proves it.
"""

__version__ = "0.2.0"

try:  # the equations need JAX; `reference.testing`'s numpy and PyTorch checks do not
    import jax as _jax  # noqa: F401
except ModuleNotFoundError as _missing:  # pragma: no cover - exercised in a subprocess by the proofs
    _JAX_MISSING: ModuleNotFoundError | None = _missing
else:
    _JAX_MISSING = None

if _JAX_MISSING is None:
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
    from ._heterogeneous_agent import (
        haa2c_objective as haa2c_objective,
        happo_factor as happo_factor,
        happo_objective as happo_objective,
        happo_update as happo_update,
        hatrpo_update as hatrpo_update,
        mappo_objective as mappo_objective,
        multi_agent_policy_iteration as multi_agent_policy_iteration,
    )
    from ._markov_game import (
        CooperativeGame as CooperativeGame,
        SimultaneousUpdateExample as SimultaneousUpdateExample,
        joint_action_mdp as joint_action_mdp,
        joint_policy as joint_policy,
        marginal_action_values as marginal_action_values,
        multi_agent_advantage as multi_agent_advantage,
        multi_agent_lower_bound as multi_agent_lower_bound,
        multi_agent_surrogate as multi_agent_surrogate,
        nash_gap as nash_gap,
        parameter_sharing_game as parameter_sharing_game,
        random_game as random_game,
        simultaneous_update_counterexample as simultaneous_update_counterexample,
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
        gaussian_entropy as gaussian_entropy,
        gaussian_kl as gaussian_kl,
        gaussian_log_prob as gaussian_log_prob,
        kl_divergence as kl_divergence,
        max_kl as max_kl,
        max_total_variation as max_total_variation,
        mean_kl as mean_kl,
        monotonic_policy_iteration as monotonic_policy_iteration,
        penalty_coefficient as penalty_coefficient,
        performance_difference as performance_difference,
        surrogate_error_bound as surrogate_error_bound,
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
    "CooperativeGame",
    "FiniteMDP",
    "SimultaneousUpdateExample",
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
    "gaussian_entropy",
    "gaussian_kl",
    "gaussian_log_prob",
    "generalized_advantage_estimate",
    "greedy_policy",
    "gridworld_4x3",
    "haa2c_objective",
    "happo_factor",
    "happo_objective",
    "happo_update",
    "hatrpo_update",
    "joint_action_mdp",
    "joint_policy",
    "kl_divergence",
    "mappo_objective",
    "marginal_action_values",
    "max_kl",
    "max_total_variation",
    "mean_kl",
    "monotonic_policy_iteration",
    "multi_agent_advantage",
    "multi_agent_lower_bound",
    "multi_agent_policy_iteration",
    "multi_agent_surrogate",
    "nash_gap",
    "natural_gradient_step",
    "one_hot_policy",
    "one_step_lookahead",
    "parameter_sharing_game",
    "penalty_coefficient",
    "performance_difference",
    "policy_evaluation",
    "policy_iteration",
    "policy_reward",
    "policy_transition_matrix",
    "ppo_clip_objective",
    "probability_ratio",
    "random_game",
    "random_mdp",
    "sample_trajectory",
    "simultaneous_update_counterexample",
    "state_values",
    "surrogate_error_bound",
    "surrogate_objective",
    "trpo_lower_bound",
    "trpo_update",
    "value_iteration",
    "value_iteration_with_bound",
]


if _JAX_MISSING is not None:  # pragma: no cover - exercised in a subprocess by the proofs

    def __getattr__(name: str) -> object:
        if name in __all__:
            raise ModuleNotFoundError(
                f"reference.{name} needs JAX, which is not installed: `pip install reference-rl` installs it "
                "(only reference.testing's numpy and PyTorch checks run without it)."
            ) from _JAX_MISSING
        raise AttributeError(f"module 'reference' has no attribute {name!r}")
