"""Mutation check: does every proof go red when the math it proves is broken?

A curated catalogue of semantic mutants of `reference/` — each a small change a real bug would
make (a sign flipped, a term dropped, γ for γ², the KL's direction swapped, the normalised for the
unnormalised visitation, `min` for `max`, an off-by-one, a constant off by a factor, the agents'
order or their new policies ignored, a check's tolerance loosened) — each naming the tests that
claim to prove that code. One mutant at a time is applied to a temporary copy of the repository;
its tests run (the `mutation` hypothesis profile: the quick profile's examples with fixed seeds,
so a run is reproducible); a mutant that survives them is run against the whole suite. The table
(mutant, killed or survived, by which test) and the score go to stdout and, with `--write`, to
`docs/mutation.md` (each mutant's latest result is kept in `tools/mutation_results.json`, so a run
of some mutants updates their rows).

A curated catalogue rather than mutmut or cosmic-ray: those generate thousands of syntactic
mutants (most of them in argument checks and docstrings), and each costs a JAX start-up and
compilation (5–60 s) here; a catalogue of the bugs that matter, each aimed at its proofs, runs in
well under an hour on two cores.

Usage (from the repository root, with the test extra installed):

    python tools/mutation.py                 # every mutant, 2 at a time; prints the table
    python tools/mutation.py --write         # ... and writes docs/mutation.md
    python tools/mutation.py --only kl-direction --only gae-no-cut
    python tools/mutation.py --list          # the catalogue, without running it
    python tools/mutation.py --check         # every mutant applies to the current source

Exit status: 0 when the score (killed / non-equivalent mutants) is at least `--target`
(default 0.95), 1 otherwise, 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
T = "proofs_as_tests/"


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # under reference/
    old: str  # must occur exactly once in the file
    new: str
    bug: str  # the bug it models
    tests: tuple[str, ...]  # the proofs that claim this code (pytest node ids under proofs_as_tests/)
    equivalent: str = ""  # non-empty: the mutant changes no output, and why


def m(name: str, file: str, old: str, new: str, bug: str, *tests: str, equivalent: str = "") -> Mutant:
    return Mutant(name, file, old, new, bug, tuple(T + t for t in tests), equivalent)


CATALOGUE: tuple[Mutant, ...] = (
    # ---- _mdp.py: the model, returns, sampling, the CS229 grid world
    m(
        "return-discount-off-by-one",
        "_mdp.py",
        "discounts = g ** jnp.arange(r.shape[-1], dtype=r.dtype)",
        "discounts = g ** (jnp.arange(r.shape[-1], dtype=r.dtype) + 1)",
        "discounted return starts at γ¹ instead of γ⁰",
        "test_values.py::test_discounted_return_is_horner_recursion",
        "test_values.py::test_expected_return_matches_monte_carlo",
    ),
    m(
        "sample-reward-of-next-state",
        "_mdp.py",
        "return s_next, (s, a, mdp.R[s, a])",
        "return s_next, (s, a, mdp.R[s_next, a])",
        "a trajectory records the reward of the next state",
        "test_values.py::test_expected_return_matches_monte_carlo",
    ),
    m(
        "gridworld-slips-one-side",
        "_mdp.py",
        "(sides[name][1], slip),",
        "(sides[name][0], slip),",
        "the grid world slips twice to the same side",
        "test_bellman.py::test_cs229_gridworld_optimal_values",
    ),
    m(
        "gridworld-both-exits-positive",
        "_mdp.py",
        "terminals = {(4, 3): 1.0, (4, 2): -1.0}",
        "terminals = {(4, 3): 1.0, (4, 2): 1.0}",
        "the grid world's −1 exit pays +1",
        "test_bellman.py::test_cs229_gridworld_optimal_values",
    ),
    m(
        "one-hot-range-off-by-one",
        "_mdp.py",
        "lambda xp, a: (a < 0) | (a >= num_actions),",
        "lambda xp, a: (a < 0) | (a > num_actions),",
        "the action-range check lets `num_actions` itself through",
        "test_errors.py::test_one_hot_policy_actions_in_range",
    ),
    # ---- _checks.py: the argument checks
    m(
        "row-sum-tolerance-loosened",
        "_checks.py",
        "return 1e-6 if jnp.finfo(dtype).bits >= 64 else 1e-4",
        "return 1e-2 if jnp.finfo(dtype).bits >= 64 else 1e-4",
        "a probability row summing to 1.001 is accepted in float64",
        "test_errors.py::test_transition_rows_must_sum_to_one",
        "test_errors.py::test_policy_rows_must_sum_to_one",
        "test_errors.py::test_probability_tolerances_are_pinned",
    ),
    m(
        "negative-probability-tolerated",
        "_checks.py",
        '(lambda xp, a: a < 0, f"{where}: `{name}` must be non-negative (probabilities)", _entry(name)),',
        '(lambda xp, a: a < -1e-3, f"{where}: `{name}` must be non-negative (probabilities)", _entry(name)),',
        "a slightly negative probability is accepted",
        "test_errors.py::test_transition_probabilities_must_be_non_negative",
        "test_errors.py::test_policy_must_be_non_negative",
        "test_errors.py::test_probability_tolerances_are_pinned",
    ),
    m(
        "gamma-one-accepted",
        "_checks.py",
        "return check_interval(gamma, name, where, 0.0, 1.0, closed_hi=False)",
        "return check_interval(gamma, name, where, 0.0, 1.0, closed_hi=True)",
        "γ = 1 accepted (the Bellman system is then singular)",
        "test_errors.py::test_gamma_must_lie_in_unit_interval",
    ),
    m(
        "full-support-allows-zero",
        "_checks.py",
        "return check_where(pi, pi, lambda xp, x: x <= 0, message, name)",
        "return check_where(pi, pi, lambda xp, x: x < 0, message, name)",
        "a policy with a zero entry passes the full-support check (its KL ball is degenerate)",
        "test_errors.py::test_exact_step_requires_full_support_and_valid_inputs",
        "test_errors.py::test_algorithm_1_needs_full_support",
    ),
    # ---- _bellman.py: operators, evaluation, value and policy iteration
    m(
        "lookahead-sign",
        "_bellman.py",
        'return mdp.R + mdp.gamma * jnp.einsum("sat,t->sa", mdp.P, V)',
        'return mdp.R - mdp.gamma * jnp.einsum("sat,t->sa", mdp.P, V)',
        "R − γPV in the one-step lookahead",
        "test_bellman.py::test_policy_evaluation_is_fixed_point_of_expectation_operator",
        "test_values.py::test_action_values_satisfy_bellman",
    ),
    m(
        "lookahead-transposed-P",
        "_bellman.py",
        'return mdp.R + mdp.gamma * jnp.einsum("sat,t->sa", mdp.P, V)',
        'return mdp.R + mdp.gamma * jnp.einsum("tas,t->sa", mdp.P, V)',
        "P indexed as P[s', a, s] in the lookahead",
        "test_bellman.py::test_policy_evaluation_is_fixed_point_of_expectation_operator",
        "test_values.py::test_action_values_satisfy_bellman",
    ),
    m(
        "bellman-system-gamma-squared",
        "_bellman.py",
        "return jnp.eye(mdp.num_states, dtype=P_pi.dtype) - mdp.gamma * P_pi",
        "return jnp.eye(mdp.num_states, dtype=P_pi.dtype) - mdp.gamma**2 * P_pi",
        "γ² for γ in the Bellman system (I − γP_π)",
        "test_bellman.py::test_policy_evaluation_is_fixed_point_of_expectation_operator",
    ),
    m(
        "action-average-drops-an-action",
        "_bellman.py",
        "return sum(terms[1:], terms[0])",
        "return sum(terms[2:], terms[0])",
        "the policy average skips action 1 (an off-by-one in a loop over actions)",
        "test_bellman.py::test_policy_evaluation_is_fixed_point_of_expectation_operator",
        "test_values.py::test_action_values_satisfy_bellman",
        "test_values.py::test_zero_expected_advantage",
    ),
    m(
        "optimality-operator-mean",
        "_bellman.py",
        'return jnp.max(lookahead(mdp, _check_values(V, mdp, "bellman_optimality_operator")), axis=-1)',
        'return jnp.mean(lookahead(mdp, _check_values(V, mdp, "bellman_optimality_operator")), axis=-1)',
        "`mean` for `max` in T*",
        "test_bellman.py::test_bellman_operators_are_gamma_contractions",
        "test_bellman.py::test_value_iteration_equals_enumeration_and_policy_iteration",
    ),
    m(
        "value-iteration-min",
        "_bellman.py",
        "return jnp.max(lookahead(mdp, V), axis=-1)",
        "return jnp.min(lookahead(mdp, V), axis=-1)",
        "`min` for `max` in value iteration's sweep",
        "test_bellman.py::test_value_iteration_equals_enumeration_and_policy_iteration",
    ),
    m(
        "vi-bound-constant",
        "_bellman.py",
        "c = mdp.gamma / (1.0 - mdp.gamma)",
        "c = 1.0 / (1.0 - mdp.gamma)",
        "1/(1−γ) for γ/(1−γ) in the span bound and its midpoint",
        "test_bellman.py::test_value_iteration_bound_is_certified",
        "test_bellman.py::test_value_iteration_bound_is_the_closed_form",
    ),
    m(
        "vi-bound-halved",
        "_bellman.py",
        "return k + 1, TV, lo, hi, c * (hi - lo) / 2, bound",
        "return k + 1, TV, lo, hi, c * (hi - lo) / 4, bound",
        "the certified bound reported half as large (no longer certified)",
        "test_bellman.py::test_value_iteration_bound_is_certified",
        "test_bellman.py::test_value_iteration_bound_is_the_closed_form",
    ),
    m(
        "vi-midpoint-dropped",
        "_bellman.py",
        "return ValueIterationResult(V + c * (hi + lo) / 2, bound, k.astype(jnp.int32))",
        "return ValueIterationResult(V, bound, k.astype(jnp.int32))",
        "the span midpoint correction dropped (the bound then does not hold)",
        "test_bellman.py::test_value_iteration_bound_is_certified",
        "test_bellman.py::test_value_iteration_bound_is_the_closed_form",
    ),
    m(
        "greedy-argmin",
        "_bellman.py",
        'return jnp.argmax(lookahead(mdp, _check_values(V, mdp, "greedy_policy")), axis=-1)',
        'return jnp.argmin(lookahead(mdp, _check_values(V, mdp, "greedy_policy")), axis=-1)',
        "`argmin` for `argmax` in the greedy policy",
        "test_bellman.py::test_greedy_policy_of_optimal_values_is_optimal",
    ),
    m(
        "policy-iteration-stops-early",
        "_bellman.py",
        "return jnp.where(better, best, actions), V, jnp.any(better)",
        "return jnp.where(better, best, actions), V, jnp.all(better)",
        "policy iteration stops unless every state improves (`all` for `any`)",
        "test_bellman.py::test_value_iteration_equals_enumeration_and_policy_iteration",
        "test_bellman.py::test_policy_iteration_needs_at_most_A_to_the_S_iterations",
    ),
    # ---- _values.py: V, Q, J, A, ρ
    m(
        "advantage-uniform-baseline",
        "_values.py",
        "return lookahead(mdp, V) - V[:, None]",
        "return lookahead(mdp, V) - jnp.mean(lookahead(mdp, V), axis=-1, keepdims=True)",
        "the advantage's baseline averaged uniformly over actions instead of under π",
        "test_values.py::test_zero_expected_advantage",
    ),
    m(
        "expected-return-uniform-start",
        "_values.py",
        "return jnp.dot(mdp.rho0, policy_evaluation(mdp, pi))",
        "return jnp.mean(policy_evaluation(mdp, pi))",
        "J averaged over states uniformly instead of under ρ0",
        "test_values.py::test_expected_return_is_initial_average_of_values",
        "test_values.py::test_expected_return_matches_monte_carlo",
    ),
    m(
        "visitation-transpose-dropped",
        "_values.py",
        "return solve_square(bellman_system(mdp, pi).T, mdp.rho0)",
        "return solve_square(bellman_system(mdp, pi), mdp.rho0)",
        "ρ solved with (I − γP_π) instead of its transpose",
        "test_values.py::test_discounted_visitation_is_truncated_series",
    ),
    m(
        "action-values-optimal",
        "_values.py",
        "return lookahead(mdp, policy_evaluation(mdp, pi))",
        "return lookahead(mdp, policy_evaluation(mdp, jnp.full_like(pi, 1.0 / pi.shape[-1])))",
        "Q computed for the uniform policy instead of π",
        "test_values.py::test_action_values_satisfy_bellman",
    ),
    # ---- _linalg.py: the linear solves
    m(
        "gauss-jordan-no-pivot-division",
        "_linalg.py",
        "pivot_row = block[k, 1:] / block[k, 0]",
        "pivot_row = block[k, 1:]",
        "Gauss–Jordan forgets to divide by the pivot",
        "test_linalg.py::test_bellman_solves_match_lapack_on_every_path",
    ),
    m(
        "lu-transpose-permutation-inverted",
        "_linalg.py",
        "return jnp.zeros_like(z).at[permutation].set(z)",
        "return z[permutation]",
        "the transposed LU solve applies the permutation instead of its inverse",
        "test_linalg.py::test_bellman_solves_match_lapack_on_every_path",
    ),
    m(
        "refinement-tolerance-loosened",
        "_linalg.py",
        "tolerance = jnp.sqrt(n) * jnp.finfo(A.dtype).eps * jnp.max(jnp.sum(jnp.abs(A), axis=1))",
        "tolerance = 1e8 * jnp.sqrt(n) * jnp.finfo(A.dtype).eps * jnp.max(jnp.sum(jnp.abs(A), axis=1))",
        "iterative refinement stops at float32 accuracy (a check's tolerance loosened)",
        "test_linalg.py::test_bellman_solves_match_lapack_on_every_path",
    ),
    m(
        "refinement-sign",
        "_linalg.py",
        "x = x + _lu_solve(state.lu, state.permutation, r, not state.transpose).astype(A.dtype)",
        "x = x - _lu_solve(state.lu, state.permutation, r, not state.transpose).astype(A.dtype)",
        "refinement subtracts the correction",
        "test_linalg.py::test_bellman_solves_match_lapack_on_every_path",
        "test_linalg.py::test_refinement_falls_back_to_float64_when_float32_cannot_converge",
        equivalent="the result is unchanged: refinement then diverges and the float64 fallback solves "
        "the system exactly; only speed changes (benchmarks/linalg.py would show it)",
    ),
    # ---- _ppo.py: ratio, clipped objective, GAE
    m(
        "ratio-inverted",
        "_ppo.py",
        "return jnp.exp(new - old)",
        "return jnp.exp(old - new)",
        "the probability ratio inverted (old/new)",
        "test_ppo.py::test_ppo_clip_closed_form",
    ),
    m(
        "clip-max-for-min",
        "_ppo.py",
        "return jnp.minimum(r * A, jnp.clip(r, 1.0 - eps, 1.0 + eps) * A)",
        "return jnp.maximum(r * A, jnp.clip(r, 1.0 - eps, 1.0 + eps) * A)",
        "`max` for `min` in PPO-clip (an optimistic bound)",
        "test_ppo.py::test_ppo_clip_closed_form",
        "test_ppo.py::test_ppo_clip_gradient_regions",
    ),
    m(
        "clip-upper-width-doubled",
        "_ppo.py",
        "return jnp.minimum(r * A, jnp.clip(r, 1.0 - eps, 1.0 + eps) * A)",
        "return jnp.minimum(r * A, jnp.clip(r, 1.0 - eps, 1.0 + 2 * eps) * A)",
        "the clip's upper edge at 1 + 2ε",
        "test_ppo.py::test_ppo_clip_closed_form",
        "test_ppo.py::test_ppo_clip_gradient_regions",
    ),
    m(
        "clip-unclipped-term-dropped",
        "_ppo.py",
        "return jnp.minimum(r * A, jnp.clip(r, 1.0 - eps, 1.0 + eps) * A)",
        "return jnp.clip(r, 1.0 - eps, 1.0 + eps) * A",
        "only the clipped term (no pessimistic minimum)",
        "test_ppo.py::test_ppo_clip_closed_form",
        "test_ppo.py::test_ppo_clip_gradient_regions",
    ),
    m(
        "gae-bootstraps-through-episode-end",
        "_ppo.py",
        "deltas = r + gamma * not_done * v[1:] - v[:-1]",
        "deltas = r + gamma * v[1:] - v[:-1]",
        "the TD error bootstraps from the next episode's first state (missing 1 − done)",
        "test_ppo.py::test_gae_matches_explicit_sums_with_episode_ends",
    ),
    m(
        "gae-trace-not-cut",
        "_ppo.py",
        "decay = gamma * lam * not_done",
        "decay = gamma * lam",
        "the λ-trace runs across an episode end",
        "test_ppo.py::test_gae_matches_explicit_sums_with_episode_ends",
    ),
    m(
        "gae-trace-without-gamma",
        "_ppo.py",
        "decay = gamma * lam * not_done",
        "decay = lam * not_done",
        "λ for γλ in the trace",
        "test_ppo.py::test_gae_matches_explicit_sums_with_episode_ends",
        "test_ppo.py::test_gae_with_exact_values_is_unbiased",
    ),
    m(
        "gae-lambda-for-gamma",
        "_ppo.py",
        "deltas = r + gamma * not_done * v[1:] - v[:-1]",
        "deltas = r + lam * not_done * v[1:] - v[:-1]",
        "λ and γ swapped in the TD error",
        "test_ppo.py::test_gae_matches_explicit_sums_with_episode_ends",
        "test_ppo.py::test_gae_with_exact_values_is_unbiased",
    ),
    m(
        "ratio-check-loosened",
        "_ppo.py",
        'return check_where(r, r, lambda xp, x: x < 0, f"{where}: `{name}` must be >= 0 (a ratio of probabilities)", name)',
        'return check_where(r, r, lambda xp, x: x < -1.0, f"{where}: `{name}` must be >= 0 (a ratio of probabilities)", name)',
        "a negative ratio is accepted",
        "test_errors.py::test_clip_and_ratio_shapes_must_agree",
        "test_errors.py::test_multi_agent_objectives_arguments",
        "test_errors.py::test_one_bad_member_of_a_vmapped_batch_is_caught",
    ),
    m(
        "gae-dones-check-loosened",
        "_ppo.py",
        "bad_dones = jnp.any((df != 0) & (df != 1)) if check_dones else jnp.asarray(False)",
        "bad_dones = jnp.any((df < 0) | (df > 1)) if check_dones else jnp.asarray(False)",
        "under jit, a `dones` of 0.5 is accepted",
        "test_errors.py::test_gae_shapes",
        "test_errors.py::test_one_bad_member_of_a_vmapped_batch_is_caught",
    ),
    # ---- _trust_region.py: KL, TV, surrogate, Theorem 1, the exact step
    m(
        "gaussian-kl-half-dropped",
        "_trust_region.py",
        "jnp.sum(0.5 * (jnp.exp(2 * log_ratio) + t - 1.0) - log_ratio, axis=-1)",
        "jnp.sum((jnp.exp(2 * log_ratio) + t - 1.0) - log_ratio, axis=-1)",
        "the Gaussian KL loses the ½ of its variance and mean terms",
        "test_trust_region.py::test_gaussian_kl_is_the_integral",
        "test_trust_region.py::test_gaussian_fisher_is_the_closed_form",
    ),
    m(
        "gaussian-kl-std-for-variance",
        "_trust_region.py",
        "0.5 * (jnp.exp(2 * log_ratio) + t - 1.0)",
        "0.5 * (jnp.exp(log_ratio) + t - 1.0)",
        "the Gaussian KL takes the ratio of standard deviations where the ratio of variances belongs",
        "test_trust_region.py::test_gaussian_kl_is_the_integral",
        "test_trust_region.py::test_gaussian_fisher_is_the_closed_form",
    ),
    m(
        "gaussian-log-prob-normaliser-dropped",
        "_trust_region.py",
        "-jnp.sum(0.5 * z**2 + ls + 0.5 * jnp.log(2 * jnp.pi), axis=-1)",
        "-jnp.sum(0.5 * z**2 + ls, axis=-1)",
        "the Gaussian log-density drops its ½ log 2π per dimension",
        "test_trust_region.py::test_gaussian_log_prob_and_entropy_are_scipys",
        "test_heterogeneous_agent.py::test_haa2c_with_one_agent_is_a2c",
    ),
    m(
        "gaussian-entropy-e-dropped",
        "_trust_region.py",
        "jnp.sum(ls + 0.5 * jnp.log(2 * jnp.pi * jnp.e), axis=-1)",
        "jnp.sum(ls + 0.5 * jnp.log(2 * jnp.pi), axis=-1)",
        "the Gaussian entropy loses the ½ of log e per dimension",
        "test_trust_region.py::test_gaussian_log_prob_and_entropy_are_scipys",
    ),
    m(
        "kl-direction-swapped",
        "_trust_region.py",
        "return jnp.sum(xlogy(p_arr, p_arr) - xlogy(p_arr, q_arr), axis=-1)",
        "return jnp.sum(xlogy(q_arr, q_arr) - xlogy(q_arr, p_arr), axis=-1)",
        "D_KL(q‖p) for D_KL(p‖q)",
        "test_trust_region.py::test_kl_is_nonnegative_and_zero_iff_equal",
        "test_markov_game.py::test_kl_of_product_policies_is_sum",
    ),
    m(
        "max-kl-mean",
        "_trust_region.py",
        "return jnp.max(kl_divergence(pi, pi_bar))",
        "return jnp.mean(kl_divergence(pi, pi_bar))",
        "`mean` for `max` over states in D_KL^max",
        "test_trust_region.py::test_trpo_lower_bound_holds",
        "test_trust_region.py::test_lower_bound_and_penalty_are_the_closed_form",
        "test_tightness.py::test_theorem_1_kl_form_at_its_worst_instance",
        "test_tightness.py::test_theorem_1_tv_form_at_its_worst_instance",
    ),
    m(
        "tv-without-half",
        "_trust_region.py",
        "return jnp.max(0.5 * jnp.sum(jnp.abs(p - q), axis=-1))",
        "return jnp.max(jnp.sum(jnp.abs(p - q), axis=-1))",
        "the total variation without its ½ (the L1 distance)",
        "test_trust_region.py::test_surrogate_error_bound_is_the_closed_form",
        "test_tightness.py::test_theorem_1_tv_form_at_its_worst_instance",
    ),
    m(
        "mean-kl-unnormalised",
        "_trust_region.py",
        "weights = (1.0 - mdp.gamma) * discounted_visitation(mdp, pi_arr)",
        "weights = discounted_visitation(mdp, pi_arr)",
        "the mean KL weighted by the unnormalised ρ (its weights sum to 1/(1−γ))",
        "test_trust_region.py::test_mean_kl_uses_normalised_visitation",
    ),
    m(
        "surrogate-normalised-visitation",
        "_trust_region.py",
        "rho = discounted_visitation(mdp, pi_arr)\n    gain",
        "rho = (1.0 - mdp.gamma) * discounted_visitation(mdp, pi_arr)\n    gain",
        "the surrogate's gain weighted by the normalised (1−γ)ρ_π",
        "test_trust_region.py::test_surrogate_matches_objective_to_first_order",
        "test_trust_region.py::test_trpo_lower_bound_holds",
        "test_tightness.py::test_kakade_langford_bound_at_its_worst_instance",
    ),
    m(
        "performance-difference-old-visitation",
        "_trust_region.py",
        "rho_bar = discounted_visitation(mdp, pi_bar_arr)",
        "rho_bar = discounted_visitation(mdp, pi_arr)",
        "the performance difference weighted by the OLD policy's visitation",
        "test_trust_region.py::test_performance_difference_lemma",
    ),
    m(
        "penalty-factor-2",
        "_trust_region.py",
        "return 4.0 * gamma * jnp.max(jnp.abs(A)) / (1.0 - gamma) ** 2",
        "return 2.0 * gamma * jnp.max(jnp.abs(A)) / (1.0 - gamma) ** 2",
        "C with 2 for 4 (the mixture bound's constant)",
        "test_trust_region.py::test_trpo_lower_bound_holds",
        "test_trust_region.py::test_lower_bound_and_penalty_are_the_closed_form",
        "test_tightness.py::test_theorem_1_kl_form_at_its_worst_instance",
        "test_tightness.py::test_theorem_1_tv_form_at_its_worst_instance",
    ),
    m(
        "penalty-mean-advantage",
        "_trust_region.py",
        "return 4.0 * gamma * jnp.max(jnp.abs(A)) / (1.0 - gamma) ** 2",
        "return 4.0 * gamma * jnp.mean(jnp.abs(A)) / (1.0 - gamma) ** 2",
        "`mean` for `max` of |A_π| in C",
        "test_trust_region.py::test_trpo_lower_bound_holds",
        "test_trust_region.py::test_lower_bound_and_penalty_are_the_closed_form",
        "test_tightness.py::test_theorem_1_kl_form_at_its_worst_instance",
        "test_tightness.py::test_theorem_1_tv_form_at_its_worst_instance",
    ),
    m(
        "penalty-one-minus-gamma-once",
        "_trust_region.py",
        "return 4.0 * gamma * jnp.max(jnp.abs(A)) / (1.0 - gamma) ** 2",
        "return 4.0 * gamma * jnp.max(jnp.abs(A)) / (1.0 - gamma)",
        "(1−γ) for (1−γ)² in C",
        "test_trust_region.py::test_trpo_lower_bound_holds",
        "test_trust_region.py::test_lower_bound_and_penalty_are_the_closed_form",
        "test_tightness.py::test_theorem_1_kl_form_at_its_worst_instance",
        "test_tightness.py::test_theorem_1_tv_form_at_its_worst_instance",
    ),
    m(
        "lower-bound-kl-reversed",
        "_trust_region.py",
        "D = max_kl(pi_arr, pi_bar_arr)",
        "D = max_kl(pi_bar_arr, pi_arr)",
        "Theorem 1's penalty with D_KL(π̄‖π) instead of D_KL(π‖π̄)",
        "test_trust_region.py::test_trpo_lower_bound_holds",
        "test_trust_region.py::test_lower_bound_and_penalty_are_the_closed_form",
        "test_tightness.py::test_theorem_1_kl_form_at_its_worst_instance",
        "test_tightness.py::test_theorem_1_tv_form_at_its_worst_instance",
    ),
    m(
        "error-bound-denominator",
        "_trust_region.py",
        "return 4.0 * alpha**2 * g * eps / ((1.0 - g) * (1.0 - g * (1.0 - alpha)))",
        "return 4.0 * alpha**2 * g * eps / ((1.0 - g) * (1.0 - g))",
        "(1−γ)² for (1−γ)(1−γ(1−α)) in the two-sided bound",
        "test_trust_region.py::test_surrogate_error_bound_is_the_closed_form",
        "test_tightness.py::test_two_sided_error_bound_at_its_worst_instance",
    ),
    m(
        "exact-step-multiplier",
        "_trust_region.py",
        "lam = jnp.exp(x - log_Er)",
        "lam = jnp.exp(x + log_Er)",
        "the per-state KL multiplier λ_s = e^x / E[r] computed as e^x·E[r]",
        "test_trust_region.py::test_exact_step_is_the_maximiser",
        "test_trust_region.py::test_exact_step_single_state_matches_direct_optimisation",
    ),
    m(
        "exact-step-kl-sign",
        "_trust_region.py",
        "kl = jnp.sum(p * jnp.log1p(z), axis=-1) + log_Er",
        "kl = jnp.sum(p * jnp.log1p(z), axis=-1) - log_Er",
        "a sign error in the per-state KL of the tilted policy",
        "test_trust_region.py::test_exact_step_is_the_maximiser",
        "test_trust_region.py::test_exact_step_single_state_matches_direct_optimisation",
    ),
    m(
        "exact-step-zero-penalty-not-greedy",
        "_trust_region.py",
        "q = jnp.where(C > 0, q, greedy)",
        "q = jnp.where(C > 0, q, p)",
        "with no penalty (C = 0) the step stays put instead of going greedy",
        "test_trust_region.py::test_exact_step_is_the_maximiser",
        "test_trust_region.py::test_exact_step_single_state_matches_direct_optimisation",
        "test_heterogeneous_agent.py::test_algorithm_1_steps_maximise_their_terms_and_j_gains_at_least_their_sum",
    ),
    m(
        "mm-normalised-weights",
        "_trust_region.py",
        "new = exact_step_unchecked(pi, discounted_visitation(mdp, pi), A, C).policy",
        "new = exact_step_unchecked(pi, (1.0 - mdp.gamma) * discounted_visitation(mdp, pi), A, C).policy",
        "the MM step maximises the surrogate with the normalised ρ (not Theorem 1's bound)",
        "test_trust_region.py::test_monotonic_policy_iteration_never_decreases_J",
        "test_trust_region.py::test_monotonic_policy_iteration_steps_maximise_the_bound",
    ),
    m(
        "mm-half-penalty",
        "_trust_region.py",
        "C = penalty_from_advantages(mdp.gamma, A)\n        new",
        "C = 0.5 * penalty_from_advantages(mdp.gamma, A)\n        new",
        "the MM iteration maximises with half the penalty (no longer a minorant)",
        "test_trust_region.py::test_monotonic_policy_iteration_never_decreases_J",
        "test_trust_region.py::test_monotonic_policy_iteration_steps_maximise_the_bound",
    ),
    # ---- _trpo.py: Fisher-vector product, natural gradient, line search
    m(
        "fvp-damping-dropped",
        "_trpo.py",
        "return _tree_axpy(d, v, hvp(v))",
        "return hvp(v)",
        "the Fisher-vector product ignores its damping",
        "test_trpo.py::test_tabular_softmax_fisher_matches_closed_form",
    ),
    m(
        "step-scale-without-2",
        "_trpo.py",
        "scale = jnp.where(positive, jnp.sqrt(2.0 * delta / jnp.where(positive, sHs, 1.0)), 0.0)",
        "scale = jnp.where(positive, jnp.sqrt(delta / jnp.where(positive, sHs, 1.0)), 0.0)",
        "the natural step scaled by √(δ/sᵀHs) instead of √(2δ/sᵀHs)",
        "test_trpo.py::test_natural_gradient_step_is_optimal_on_the_ellipsoid",
        "test_trpo.py::test_tabular_natural_gradient_is_the_weighted_advantage",
    ),
    m(
        "step-scale-delta-not-sqrt",
        "_trpo.py",
        "scale = jnp.where(positive, jnp.sqrt(2.0 * delta / jnp.where(positive, sHs, 1.0)), 0.0)",
        "scale = jnp.where(positive, 2.0 * delta / jnp.where(positive, sHs, 1.0), 0.0)",
        "the step scaled by δ instead of √δ",
        "test_trpo.py::test_natural_gradient_step_is_optimal_on_the_ellipsoid",
        "test_trpo.py::test_tabular_natural_gradient_is_the_weighted_advantage",
    ),
    m(
        "line-search-kl-doubled",
        "_trpo.py",
        "ok = (kl_fn(new) <= delta) & (gain > 0) & (gain >= accept_ratio * frac * expected)",
        "ok = (kl_fn(new) <= 2.0 * delta) & (gain > 0) & (gain >= accept_ratio * frac * expected)",
        "the line search accepts a KL up to 2δ",
        "test_trpo.py::test_trpo_update_improves_within_the_trust_region",
        "test_heterogeneous_agent.py::test_hatrpo_update_respects_the_kl_threshold",
        "test_trpo.py::test_line_search_closed_form_cases",
    ),
    m(
        "line-search-accepts-any-gain",
        "_trpo.py",
        "ok = (kl_fn(new) <= delta) & (gain > 0) & (gain >= accept_ratio * frac * expected)",
        "ok = (kl_fn(new) <= delta)",
        "the line search accepts a step that lowers the surrogate",
        "test_trpo.py::test_trpo_update_improves_within_the_trust_region",
        "test_trpo.py::test_line_search_closed_form_cases",
    ),
    m(
        "trpo-gradient-descent",
        "_trpo.py",
        "g = jax.grad(surrogate_fn)(params)\n    d = jnp.asarray(damping)",
        "g = jax.tree_util.tree_map(jnp.negative, jax.grad(surrogate_fn)(params))\n    d = jnp.asarray(damping)",
        "TRPO steps down the surrogate's gradient",
        "test_trpo.py::test_trpo_update_improves_within_the_trust_region",
    ),
    # ---- _markov_game.py: joint policies, marginals, Lemmas 1–2, Nash gap, Fig. 1
    m(
        "joint-policy-axes-reversed",
        "_markov_game.py",
        'spec = ",".join(f"s{c}" for c in letters) + "->s" + letters\n',
        'spec = ",".join(f"s{c}" for c in letters) + "->s" + letters[::-1]\n',
        "the joint policy's agent axes in reverse order",
        "test_markov_game.py::test_marginal_values_match_enumeration",
    ),
    m(
        "marginal-axes-sorted",
        "_markov_game.py",
        'out = "s" + "".join(letters[i] for i in keep)',
        'out = "s" + "".join(letters[i] for i in sorted(keep))',
        "the marginal's axes follow the sorted agents, not the given order",
        "test_markov_game.py::test_marginal_values_match_enumeration",
    ),
    m(
        "multi-agent-advantage-no-baseline",
        "_markov_game.py",
        "return both - base.reshape(base.shape + (1,) * len(keep))",
        "return both - jnp.mean(both)",
        "A^{i_{1:m}} with a global instead of a per-state, per-prior-action baseline",
        "test_markov_game.py::test_advantage_decomposition",
        "test_markov_game.py::test_zero_expected_local_advantage",
    ),
    m(
        "local-advantage-ignores-new-policies",
        "_markov_game.py",
        "weights = {i: new.get(i, old[i]) for i in range(len(old))}",
        "weights = {i: old[i] for i in range(len(old))}",
        "the earlier agents' NEW policies ignored (a simultaneous update)",
        "test_markov_game.py::test_surrogate_splits_across_agents",
        "test_heterogeneous_agent.py::test_algorithm_1_steps_maximise_their_terms_and_j_gains_at_least_their_sum",
    ),
    m(
        "lemma2-mean-kl",
        "_markov_game.py",
        "D_m = jnp.max(kl_divergence(pis[agent], new[agent]))",
        "D_m = jnp.mean(kl_divergence(pis[agent], new[agent]))",
        "`mean` for `max` in Lemma 2's per-agent KL",
        "test_markov_game.py::test_multi_agent_lower_bound_holds",
        "test_markov_game.py::test_multi_agent_lower_bound_is_the_closed_form",
        "test_tightness.py::test_lemma_2_at_its_worst_instance",
    ),
    m(
        "lemma2-penalty-halved",
        "_markov_game.py",
        "total = total + L_m - jnp.where(C > 0, C * D_m, 0.0)",
        "total = total + L_m - jnp.where(C > 0, 0.5 * C * D_m, 0.0)",
        "Lemma 2's penalty with C/2",
        "test_markov_game.py::test_multi_agent_lower_bound_holds",
        "test_markov_game.py::test_multi_agent_lower_bound_is_the_closed_form",
        "test_tightness.py::test_lemma_2_at_its_worst_instance",
    ),
    m(
        "multi-agent-surrogate-normalised",
        "_markov_game.py",
        "return jnp.dot(rho, jnp.sum(new[order[-1]] * a_bar, axis=-1))",
        "return (1.0 - game.gamma) * jnp.dot(rho, jnp.sum(new[order[-1]] * a_bar, axis=-1))",
        "the multi-agent surrogate with the normalised visitation",
        "test_markov_game.py::test_surrogate_splits_across_agents",
    ),
    m(
        "nash-gap-min-over-agents",
        "_markov_game.py",
        "return jnp.maximum(jnp.max(jnp.stack(gains)), 0.0)",
        "return jnp.maximum(jnp.min(jnp.stack(gains)), 0.0)",
        "the Nash gap takes the smallest agent's gain",
        "test_heterogeneous_agent.py::test_nash_gap_is_the_best_unilateral_gain_by_enumeration",
    ),
    m(
        "nash-gap-start-uniform",
        "_markov_game.py",
        "gains.append(jnp.dot(game.rho0, V) - J)",
        "gains.append(jnp.mean(V) - J)",
        "the best response's return averaged uniformly over states instead of under ρ0",
        "test_heterogeneous_agent.py::test_nash_gap_is_the_best_unilateral_gain_by_enumeration",
    ),
    m(
        "fig1-sequential-uses-old",
        "_markov_game.py",
        "sequential = jnp.stack([first, mu[1] + jnp.sign(first) * radius])",
        "sequential = jnp.stack([first, mu[1] + jnp.sign(mu[0]) * radius])",
        "the second agent steps against the first agent's OLD mean",
        "test_heterogeneous_agent.py::test_simultaneous_updates_can_lower_the_return",
    ),
    # ---- _heterogeneous_agent.py: Algorithm 1, MAPPO/HAPPO objectives, HATRPO/HAPPO updates
    m(
        "algorithm-1-simultaneous",
        "_heterogeneous_agent.py",
        "weights = {i: jnp.where(done[i], new[i], old[i]) for i in range(n) if i != agent}",
        "weights = {i: old[i] for i in range(n) if i != agent}",
        "Algorithm 1 with every agent against the others' OLD policies (simultaneous)",
        "test_heterogeneous_agent.py::test_algorithm_1_improves_monotonically",
        "test_heterogeneous_agent.py::test_simultaneous_steps_lower_j_where_algorithm_1_raises_it",
        "test_heterogeneous_agent.py::test_algorithm_1_steps_maximise_their_terms_and_j_gains_at_least_their_sum",
    ),
    m(
        "algorithm-1-half-penalty",
        "_heterogeneous_agent.py",
        "C = penalty_from_advantages(game.gamma, A)",
        "C = 0.5 * penalty_from_advantages(game.gamma, A)",
        "Algorithm 1's penalty halved (no longer Lemma 2's minorant)",
        "test_heterogeneous_agent.py::test_algorithm_1_improves_monotonically",
        "test_heterogeneous_agent.py::test_algorithm_1_steps_maximise_their_terms_and_j_gains_at_least_their_sum",
    ),
    m(
        "algorithm-1-local-baseline-dropped",
        "_heterogeneous_agent.py",
        "a_bar = q - jnp.sum(old[agent] * q, axis=-1, keepdims=True)",
        "a_bar = q",
        "the local advantage without its per-state baseline",
        "test_heterogeneous_agent.py::test_algorithm_1_improves_monotonically",
        "test_heterogeneous_agent.py::test_algorithm_1_steps_maximise_their_terms_and_j_gains_at_least_their_sum",
        equivalent="the exact step maximises Σ_s w_s⟨q_s, a_s⟩ − C·max_s KL over the simplex, and "
        "⟨q_s, a_s + c_s⟩ = ⟨q_s, a_s⟩ + c_s: a per-state constant changes no maximiser",
    ),
    m(
        "mappo-mean-over-agents",
        "_heterogeneous_agent.py",
        "return jnp.sum(ppo_clip_objective(r, jnp.broadcast_to(A[..., None], r.shape), eps), axis=-1)",
        "return jnp.mean(ppo_clip_objective(r, jnp.broadcast_to(A[..., None], r.shape), eps), axis=-1)",
        "MAPPO's objective averages instead of sums the agents' terms",
        "test_heterogeneous_agent.py::test_mappo_objective_at_old_policy",
    ),
    m(
        "happo-factor-sum",
        "_heterogeneous_agent.py",
        "return jnp.prod(r, axis=-1) * A",
        "return jnp.sum(r, axis=-1) * A",
        "the HAPPO factor sums instead of multiplies the earlier ratios",
        "test_heterogeneous_agent.py::test_happo_factor_is_importance_weight",
        "test_heterogeneous_agent.py::test_happo_factor_by_importance_sampling",
        "test_heterogeneous_agent.py::test_happo_value_and_gradient_at_the_old_policy",
    ),
    m(
        "happo-objective-epsilon-doubled",
        "_heterogeneous_agent.py",
        "return ppo_clip_objective(r, M, eps)",
        "return ppo_clip_objective(r, M, 2.0 * eps)",
        "HAPPO clips at 1 ± 2ε",
        "test_heterogeneous_agent.py::test_happo_objective_properties",
    ),
    m(
        "sequential-factor-not-updated",
        "_sequential.py",
        "return p, s, M * jnp.exp(new_logp - batch.old_log_probs)",
        "return p, s, M",
        "the sequential update never multiplies M by the updated agent's ratio (HATRPO, HAPPO, HAA2C)",
        "test_heterogeneous_agent.py::test_hatrpo_update_is_sequential_with_the_product_factor",
        "test_heterogeneous_agent.py::test_happo_update_is_sequential_with_the_product_factor",
        "test_training.py::test_sequential_update_is_the_hand_written_loop",
    ),
    m(
        "happo-ratio-inverted",
        "_heterogeneous_agent.py",
        "ratio = jnp.exp(policy.family.log_prob(out, batch.actions) - batch.old_log_probs)\n    return -(",
        "ratio = jnp.exp(batch.old_log_probs - policy.family.log_prob(out, batch.actions))\n    return -(",
        "HAPPO's (and HAA2C's) agent ratio inverted",
        "test_heterogeneous_agent.py::test_happo_with_one_agent_is_ppo",
        "test_heterogeneous_agent.py::test_happo_update_is_sequential_with_the_product_factor",
    ),
    m(
        "hatrpo-kl-reversed",
        "_sequential.py",
        "return jnp.sum(jnp.exp(p) * (p - q), axis=-1)",
        "return jnp.sum(jnp.exp(q) * (q - p), axis=-1)",
        "HATRPO's constraint with D_KL(new‖old)",
        "test_heterogeneous_agent.py::test_hatrpo_constraint_is_the_kl_from_the_old_policy",
        "test_heterogeneous_agent.py::test_hatrpo_update_respects_the_kl_threshold",
        "test_heterogeneous_agent.py::test_hatrpo_update_is_sequential_with_the_product_factor",
    ),
    m(
        "sequential-agent-order-fixed-reversed",
        "_sequential.py",
        "order = jax.random.permutation(key_order, n)",
        "order = jnp.arange(n)[::-1]",
        "the sequential update ignores its key and always updates the agents in reverse order",
        "test_heterogeneous_agent.py::test_hatrpo_update_is_sequential_with_the_product_factor",
        "test_heterogeneous_agent.py::test_happo_update_is_sequential_with_the_product_factor",
        "test_training.py::test_sequential_update_is_the_hand_written_loop",
    ),
    m(
        "happo-entropy-sign",
        "_heterogeneous_agent.py",
        "factor)) + entropy_coef * jnp.mean(policy.family.entropy(out)))",
        "factor)) - entropy_coef * jnp.mean(policy.family.entropy(out)))",
        "HAPPO's (and HAA2C's) entropy bonus becomes a penalty",
        "test_training_plumbing.py::test_one_agent_happo_is_the_ppo_iteration_written_here",
        "test_heterogeneous_agent.py::test_happo_update_is_sequential_with_the_product_factor",
        "test_heterogeneous_agent.py::test_happo_with_one_agent_is_ppo",
    ),
    m(
        "haa2c-factor-sign-lost",
        "_heterogeneous_agent.py",
        "    return r * M\n",
        "    return r * jnp.abs(M)\n",
        "HAA2C multiplies the ratio by |M|: a negative advantage pushes the wrong way",
        "test_heterogeneous_agent.py::test_haa2c_with_one_agent_is_a2c",
    ),
    m(
        "sequential-agent-keys-shared",
        "_sequential.py",
        "p, s = agent_update(jax.random.fold_in(key_agents, agent), policy, p, s, batch, M)",
        "p, s = agent_update(key_agents, policy, p, s, batch, M)",
        "every agent's update draws the same random numbers (its minibatches)",
        "test_training.py::test_sequential_update_is_the_hand_written_loop",
    ),
    m(
        "haa2c-loss-clipped",
        "_heterogeneous_agent.py",
        "return _surrogate_loss(policy, params, batch, factor, haa2c_objective, entropy_coef)",
        "return _surrogate_loss(policy, params, batch, factor, partial(happo_objective, epsilon=0.2), entropy_coef)",
        "HAA2C's loss is clipped like HAPPO's",
        "test_training.py::test_haa2c_with_one_agent_is_a2c_step_for_step",
    ),
    m(
        "gaussian-policy-log-std-doubled",
        "_sequential.py",
        "return unchecked_gaussian_log_prob(mean, log_std, actions)",
        "return unchecked_gaussian_log_prob(mean, 2 * log_std, actions)",
        "the Gaussian actors' density uses σ² where σ belongs",
        "test_training.py::test_gaussian_happo_with_one_agent_is_ppo",
    ),
    m(
        "mappo-pooled-advantages-misaligned",
        "training/_trainer.py",
        "factor = jnp.tile(advantages, n)",
        "factor = jnp.repeat(advantages, n)",
        "MAPPO's pooled samples get other samples' advantages",
        "test_training.py::test_trainer_mappo_update_is_adam_on_mappo_objective",
    ),
    m(
        "algorithm-1-fixed-order",
        "_heterogeneous_agent.py",
        "order = jax.random.permutation(k, n)",
        "order = jnp.arange(n)",
        "Algorithm 1 ignores its key and always updates agent 0 first",
        "test_heterogeneous_agent.py::test_algorithm_1_steps_maximise_their_terms_and_j_gains_at_least_their_sum",
        "test_heterogeneous_agent.py::test_simultaneous_steps_lower_j_where_algorithm_1_raises_it",
    ),
    m(
        "algorithm-1-old-visitation-weights-squared",
        "_heterogeneous_agent.py",
        "step = exact_step_unchecked(old[agent], rho, a_bar, C).policy",
        "step = exact_step_unchecked(old[agent], rho * rho, a_bar, C).policy",
        "Algorithm 1 weights each state's local advantage by ρ² instead of ρ",
        "test_heterogeneous_agent.py::test_algorithm_1_steps_maximise_their_terms_and_j_gains_at_least_their_sum",
    ),
    m(
        "happo-factor-first-ratio-dropped",
        "_heterogeneous_agent.py",
        "return jnp.prod(r, axis=-1) * A",
        "return jnp.prod(r[..., 1:], axis=-1) * A",
        "the HAPPO factor forgets the first agent's ratio (an off-by-one)",
        "test_heterogeneous_agent.py::test_happo_factor_is_importance_weight",
        "test_heterogeneous_agent.py::test_happo_factor_by_importance_sampling",
        "test_heterogeneous_agent.py::test_happo_value_and_gradient_at_the_old_policy",
    ),
    # ---- training/_trainer.py: the trainer
    m(
        "trainer-gae-gamma-lambda-swapped",
        "training/_trainer.py",
        "advantages = gae(rewards, all_values, ends, cfg.gamma, cfg.gae_lambda)",
        "advantages = gae(rewards, all_values, ends, cfg.gae_lambda, cfg.gamma)",
        "the trainer passes λ as γ and γ as λ",
        "test_marl_training.py::test_trainer_advantages_and_critic_targets",
        "test_marl_training.py::test_heterogeneous_agents_solve_the_parameter_sharing_game",
        "test_marl_training.py::test_simple_spread_short_run_beats_random",
    ),
    m(
        "trainer-critic-targets-without-values",
        "training/_trainer.py",
        "return advantages, advantages + values",
        "return advantages, advantages",
        "the critic regresses on the advantages instead of the λ-returns",
        "test_marl_training.py::test_trainer_advantages_and_critic_targets",
        "test_marl_training.py::test_heterogeneous_agents_solve_the_parameter_sharing_game",
        "test_marl_training.py::test_simple_spread_short_run_beats_random",
    ),
    m(
        "trainer-discrete-action-wrong-column",
        "training/_trainer.py",
        "return acts[:, agent, 0].astype(jnp.int32)",
        "return acts[:, agent, 1].astype(jnp.int32)",
        "beside continuous agents, a discrete agent's action is read from the wrong column of the stored floats",
        "test_training.py::test_a_discrete_and_a_continuous_agent_learn_in_one_run",
    ),
    m(
        "trainer-truncation-bootstrap-without-gamma",
        "training/_trainer.py",
        "rewards = rewards + cfg.gamma * jnp.where(truncated, final_values, 0.0)",
        "rewards = rewards + jnp.where(truncated, final_values, 0.0)",
        "a truncated step bootstraps from V(final state) undiscounted",
        "test_marl_training.py::test_trainer_advantages_and_critic_targets",
    ),
    m(
        "trainer-truncation-ignored",
        "training/_trainer.py",
        "ends = terminated | truncated",
        "ends = terminated",
        "a truncation does not stop GAE's recursion (the next episode's values leak in)",
        "test_marl_training.py::test_trainer_advantages_and_critic_targets",
    ),
    m(
        "trainer-final-value-of-the-reset-observation",
        "training/_trainer.py",
        "self.value_fn(state.critic_params, out.final_obs)",
        "self.value_fn(state.critic_params, out.obs)",
        "a truncated step bootstraps from V of the next episode's first observation",
        "test_training_plumbing.py::test_rollout_stores_each_observation_with_the_action_taken_in_it",
    ),
    m(
        "trainer-stores-the-next-observation",
        "training/_trainer.py",
        "state.obs, acts, lp, value, out.reward, out.terminated, out.truncated, final_value, finished",
        "out.obs, acts, lp, value, out.reward, out.terminated, out.truncated, final_value, finished",
        "a transition stores the observation after the step, not the one its actions were taken in",
        "test_training_plumbing.py::test_rollout_stores_each_observation_with_the_action_taken_in_it",
    ),
    m(
        "trainer-same-agent-order-every-iteration",
        "training/_trainer.py",
        "k_critic, k_actor = jax.random.split(k_update)",
        "k_critic, k_actor = jax.random.split(jax.random.key(0))",
        "the actors' update gets the same key every iteration (so the same agents' order)",
        "test_training_plumbing.py::test_the_agents_order_is_drawn_anew_every_iteration",
    ),
    m(
        "trainer-advantages-not-centred",
        "training/_trainer.py",
        "advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)",
        "advantages = advantages / (advantages.std() + 1e-8)",
        "the advantages are scaled but not centred",
        "test_training_plumbing.py::test_the_first_agent_is_handed_the_standardised_advantages",
    ),
    m(
        "trainer-advantages-sample-std",
        "training/_trainer.py",
        "advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)",
        "advantages = (advantages - advantages.mean()) / (advantages.std(ddof=1) + 1e-8)",
        "the advantages are standardised with the sample std, not the population std the docs state",
        "test_training_plumbing.py::test_the_first_agent_is_handed_the_standardised_advantages",
        "test_training_plumbing.py::test_one_agent_happo_is_the_ppo_iteration_written_here",
    ),
    m(
        "jaxmarl-smax-end-of-battle-as-truncation",
        "training/_envs.py",
        "return ~jnp.any(alive[:allies]) | ~jnp.any(alive[allies:])",
        "return jnp.zeros_like(done)",
        "SMAX's end of battle is taken for a time limit (bootstrapped)",
        "test_training.py::test_jaxmarl_ends_are_terminations_or_truncations",
    ),
    m(
        "jaxmarl-brax-fall-as-truncation",
        "training/_envs.py",
        'return done & ~state.info["truncation"].astype(bool)',
        "return jnp.zeros_like(done)",
        "a fallen MABrax robot is taken for a time limit (bootstrapped)",
        "test_training.py::test_jaxmarl_ends_are_terminations_or_truncations",
    ),
    m(
        "gauss-newton-fisher-without-output-hessian",
        "_trpo.py",
        "(jt,) = vjp_fn(output_hvp(jvp_fn(v)))",
        "(jt,) = vjp_fn(jvp_fn(v))",
        "HATRPO's Fisher product as JᵀJ, without the KL's Hessian in the distribution's parameters",
        "test_training.py::test_trpo_agent_update_is_trpo_update_on_its_surrogate",
    ),
    m(
        "gauss-newton-fisher-damping-doubled",
        "_trpo.py",
        "return _tree_axpy(d, v, jt)",
        "return _tree_axpy(2 * d, v, jt)",
        "HATRPO's Fisher product damped twice as much as the damping given",
        "test_training.py::test_trpo_agent_update_is_trpo_update_on_its_surrogate",
    ),
    m(
        "cg-not-scaled-by-damping",
        "_trpo.py",
        "step = _natural_gradient_step(g, fvp, delta, cg_steps, 1e-10, jnp.where(d > 0, d, 1.0))",
        "step = _natural_gradient_step(g, fvp, delta, cg_steps, 1e-10, 1.0)",
        "TRPO's CG solves with the unscaled damped Fisher (lineax's breakdown test fires in float32)",
        "test_trpo.py::test_trpo_update_in_float32_solves_a_fisher_small_beside_its_damping",
    ),
    m(
        "cg-breakdown-returns-nan",
        "_trpo.py",
        "s = jax.tree_util.tree_map(lambda x, y: jnp.where(finite, x, y), s, g)",
        "s = s",
        "a CG breakdown's NaN direction is returned (the step is NaN, the line search rejects it)",
        "test_trpo.py::test_natural_gradient_step_falls_back_to_g_when_cg_breaks_down",
    ),
    m(
        "fallback-curvature-from-galerkin",
        "_trpo.py",
        "lambda: _tree_dot(s, g), lambda: _tree_dot(s, fisher_vector_product(s))",
        "lambda: _tree_dot(s, g), lambda: _tree_dot(s, g)",
        "after CG's fallback to g the step is scaled by gᵀg instead of gᵀHg (Galerkin's sᵀg used where it fails)",
        "test_trpo.py::test_natural_gradient_step_falls_back_to_g_when_cg_breaks_down",
    ),
    m(
        "cg-one-step-more",
        "_trpo.py",
        "max_steps=cg_steps,",
        "max_steps=cg_steps + 1,",
        "CG runs one step more than `cg_steps`",
        "test_trpo.py::test_truncated_cg_step_is_the_krylov_step_on_the_ellipsoid",
    ),
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is answered with one line (no usage block) and status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def apply(source: str, mutant: Mutant) -> str:
    count = source.count(mutant.old)
    if count != 1:
        raise ValueError(f"mutant {mutant.name}: the original text occurs {count} times in reference/{mutant.file}")
    return source.replace(mutant.old, mutant.new)


def copy_repository(dest: Path) -> None:
    # .git is kept: test_catalogue.py lists the repository's files with `git ls-files`
    ignore = shutil.ignore_patterns(".venv", "site", "__pycache__", ".hypothesis", "runs", "*.egg-info")
    shutil.copytree(ROOT, dest, ignore=ignore, dirs_exist_ok=True)


def run_pytest(copy: Path, args: list[str], timeout: float) -> tuple[int, str]:
    env = dict(os.environ, HYPOTHESIS_PROFILE="mutation", PYTHONDONTWRITEBYTECODE="1", JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider", "--no-header", *args]
    try:
        done = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    return done.returncode, done.stdout + done.stderr


FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


def first_failure(output: str) -> str:
    found = FAILED.search(output)
    return found.group(1).removeprefix(T) if found else "?"


@dataclasses.dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | equivalent | error
    by: str
    seconds: float


def check_one(mutant: Mutant, copy: Path, whole_suite: bool, timeout: float) -> Outcome:
    path = copy / "reference" / mutant.file
    original = path.read_text()
    start = time.monotonic()
    try:
        path.write_text(apply(original, mutant))
        code, out = run_pytest(copy, list(mutant.tests), timeout)
        if code == 1:
            return Outcome(mutant, "killed", first_failure(out), time.monotonic() - start)
        if code != 0:
            return Outcome(mutant, "error", f"pytest exit {code}: {out.strip().splitlines()[-1:]}", 0.0)
        if whole_suite and not mutant.equivalent:
            code, out = run_pytest(copy, ["proofs_as_tests"], 4 * timeout)
            if code == 1:
                return Outcome(mutant, "killed", first_failure(out) + " (whole suite)", time.monotonic() - start)
            if code != 0:
                return Outcome(
                    mutant, "error", f"whole suite: pytest exit {code}: {out.strip().splitlines()[-1:]}", 0.0
                )
        status = "equivalent" if mutant.equivalent else "survived"
        return Outcome(mutant, status, "", time.monotonic() - start)
    finally:
        path.write_text(original)


def table(outcomes: list[Outcome]) -> str:
    lines = ["| mutant | module | the bug it models | result | first failing test |", "|---|---|---|---|---|"]
    for o in outcomes:
        result = o.status + (f" ({o.mutant.equivalent})" if o.status == "equivalent" else "")
        lines.append(
            f"| `{o.mutant.name}` | `{o.mutant.file}` | {o.mutant.bug} | {result} | {f'`{o.by}`' if o.status == 'killed' else o.by} |"
        )
    return "\n".join(lines)


def score(outcomes: list[Outcome]) -> tuple[int, int]:
    relevant = [o for o in outcomes if o.status not in ("equivalent", "not run")]
    return sum(o.status == "killed" for o in relevant), len(relevant)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(
        prog="mutation.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this mutant (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants checked at once, each in its own copy")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run")
    parser.add_argument("--no-whole-suite", action="store_true", help="do not rerun the whole suite on a survivor")
    parser.add_argument("--target", type=float, default=0.95, help="the score below which the exit status is 1")
    parser.add_argument("--write", action="store_true", help="write the table and score to docs/mutation.md")
    parser.add_argument("--list", action="store_true", help="print the catalogue and exit")
    parser.add_argument("--check", action="store_true", help="check that every mutant applies, and exit")
    parser.add_argument("--report", action="store_true", help="rewrite docs/mutation.md from the stored results")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"argument --jobs: must be >= 1, but is {args.jobs}")
    if not 0.0 <= args.target <= 1.0:
        parser.error(f"argument --target: must lie in [0, 1], but is {args.target}")
    names = {mu.name for mu in CATALOGUE}
    if len(names) != len(CATALOGUE):
        parser.error("the catalogue repeats a mutant name")
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        parser.error(f"argument --only: no mutant named {', '.join(unknown)} (see --list)")
    chosen = [mu for mu in CATALOGUE if not args.only or mu.name in args.only]
    for mu in chosen:
        try:
            apply((ROOT / "reference" / mu.file).read_text(), mu)
        except ValueError as err:
            print(f"mutation.py: error: {err}", file=sys.stderr)
            return 2
    if args.report:
        merged = record([])
        killed, relevant = score(merged)
        write_docs(
            merged,
            f"{killed} of {relevant} non-equivalent mutants killed ({killed / max(relevant, 1):.1%}); "
            f"{sum(o.status == 'equivalent' for o in merged)} equivalent; {len(merged)} mutants",
        )
        return 0 if killed >= args.target * relevant else 1
    if args.list or args.check:
        for mu in chosen:
            print(f"{mu.name:42s} reference/{mu.file:24s} {mu.bug}")
        print(f"{len(chosen)} mutants over {len({mu.file for mu in chosen})} modules; all apply.")
        return 0

    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        copies = [Path(tmp) / f"copy{j}" for j in range(min(args.jobs, len(chosen)))]
        for copy in copies:
            copy_repository(copy)
        tests = sorted({t for mu in chosen for t in mu.tests})
        code, out = run_pytest(copies[0], tests, 4 * args.timeout)
        if code != 0:
            last = out.strip().splitlines()[-1:] or ["no output"]
            print(f"mutation.py: error: the unmutated code fails its tests (exit {code}: {last[0]})", file=sys.stderr)
            return 2
        free = list(copies)
        outcomes: dict[str, Outcome] = {}
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(len(copies)) as pool:
            pending = {}
            queue = list(chosen)
            while queue or pending:
                while queue and free:
                    mu, copy = queue.pop(0), free.pop()
                    pending[pool.submit(check_one, mu, copy, not args.no_whole_suite, args.timeout)] = copy
                done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in done:
                    free.append(pending.pop(fut))
                    o = fut.result()
                    outcomes[o.mutant.name] = o
                    print(f"{o.status:10s} {o.mutant.name:42s} {o.seconds:6.0f} s  {o.by}", flush=True)
                    if args.write:
                        record([o])  # kept as it comes: an interrupted run keeps what it found
        # a test that fails only in the whole suite must also pass on the unmutated code
        suspects = sorted({o.by.removesuffix(" (whole suite)") for o in outcomes.values() if "(whole suite)" in o.by})
        for test in suspects:
            code, _ = run_pytest(copies[0], [T + test], args.timeout)
            if code != 0:
                for o in outcomes.values():
                    if o.by == f"{test} (whole suite)":
                        o.status, o.by = "error", f"{test} also fails without the mutant"
        ordered = [outcomes[mu.name] for mu in chosen]
        killed, relevant = score(ordered)
        minutes = (time.monotonic() - start) / 60
    summary = (
        f"{killed} of {relevant} non-equivalent mutants killed ({killed / max(relevant, 1):.1%}); "
        f"{len(ordered) - relevant} equivalent; {len(ordered)} mutants in {minutes:.0f} min"
    )
    print()
    print(table(ordered))
    print()
    print(summary)
    if args.write:
        merged = record(ordered)
        killed_all, relevant_all = score(merged)
        summary_all = (
            f"{killed_all} of {relevant_all} non-equivalent mutants killed "
            f"({killed_all / max(relevant_all, 1):.1%}); {len(merged) - relevant_all} equivalent; "
            f"{len(merged)} mutants"
        )
        write_docs(merged, summary_all)
    return 0 if killed >= args.target * relevant else 1


RESULTS = ROOT / "tools" / "mutation_results.json"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def record(outcomes: list[Outcome]) -> list[Outcome]:
    """Store this run's outcomes in tools/mutation_results.json (beside earlier runs' outcomes for
    the mutants not rerun) and return the latest outcome of every catalogued mutant."""
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    here = commit()
    for o in outcomes:
        stored[o.mutant.name] = {"status": o.status, "by": o.by, "seconds": round(o.seconds), "commit": here}
    by_name = {mu.name: mu for mu in CATALOGUE}
    stored = {k: v for k, v in stored.items() if k in by_name}
    RESULTS.write_text(json.dumps(stored, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    merged = []
    for mu in CATALOGUE:
        entry = stored.get(mu.name)
        if entry is None:
            merged.append(Outcome(mu, "not run", "", 0.0))
        else:
            merged.append(Outcome(mu, entry["status"], entry["by"], float(entry["seconds"])))
    return merged


def write_docs(outcomes: list[Outcome], summary: str) -> None:
    survivors = [o for o in outcomes if o.status in ("survived", "error", "not run")]
    text = [
        "# Mutation check",
        "",
        "Does every proof go red when the math it proves is broken? `tools/mutation.py` applies one",
        "deliberate bug at a time to a copy of `reference/` — a sign flipped, a term dropped, γ for γ²,",
        "the KL's direction swapped, `mean` for `max`, an off-by-one, a constant off by a factor, the",
        "agents' new policies ignored, a check's tolerance loosened — and runs the tests that claim to",
        "prove that code (then the whole suite, for a mutant they miss). Rerun it from a clone:",
        "",
        "```bash",
        "python tools/mutation.py --write   # under an hour on 2 cores",
        "```",
        "",
        f"**Latest result of every mutant: {summary}.**",
        "",
        "A mutant marked *equivalent* changes no output of the library; the reason is given beside it.",
        "Each mutant's latest result is kept in `tools/mutation_results.json` (with the commit it ran",
        "at), so a rerun of some mutants (`--only NAME --write`) updates their rows.",
        "",
    ]
    if survivors:
        text += ["Survivors, and why:", ""]
        why = {
            "survived": "no test noticed it",
            "error": "the run failed",
            "not run": "the last run was stopped before it",
        }
        text += [f"- `{o.mutant.name}` ({o.status}): {o.by or why[o.status]}" for o in survivors]
        text.append("")
    text += [table(outcomes), ""]
    (ROOT / "docs" / "mutation.md").write_text("\n".join(text))


if __name__ == "__main__":
    raise SystemExit(main())
