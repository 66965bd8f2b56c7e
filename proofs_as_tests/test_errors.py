"""Every bad input is refused before any computation, with a message naming the function, the
argument and the violated condition: eagerly, under `jit`, under `vmap` (one bad member of a
batch is enough) and under `grad` — see `refuses`."""

import re

import beartype.roar
import equinox as eqx
import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np
import pytest

import reference as rf


def good():
    P = jnp.full((3, 2, 3), 1.0 / 3)
    R = jnp.zeros((3, 2))
    return P, R, 0.9, jnp.full(3, 1.0 / 3)


MODES = ("eager", "jit", "vmap", "grad")


def _is_array(x) -> bool:
    return isinstance(x, jax.Array | np.ndarray)


def _traced(tree):
    """Python floats become 0-d arrays, so that `jit` and `vmap` trace them (ints stay static)."""
    return jax.tree.map(lambda x: jnp.asarray(x) if isinstance(x, float) else x, tree)


def _traced_pattern(pattern: str) -> str:
    """The part of an eager message a traced check also has: the condition, without the first bad
    entry's index and value (unknown inside a transformation)."""
    return re.split(r", but| at \\\(", pattern)[0]


def _raises_message(pattern: str, mode: str, call) -> None:
    """`call()` must raise, as a ValueError (a static check, at trace time) or as the runtime
    error of a traced check (equinox.error_if), with a message matching `pattern`."""
    try:
        out = call()
        jax.block_until_ready(out)
    except ValueError as e:
        assert re.search(pattern, str(e)), f"{mode}: {e}"
        return
    except Exception as e:  # the runtime error of a traced check: XLA's, carrying our message
        if isinstance(e, jaxtyping.TypeCheckError | beartype.roar.BeartypeCallHintParamViolation):
            raise
        assert re.search(pattern, str(e)), f"{mode}: {type(e).__name__}: {str(e)[:2000]}"
        return
    pytest.fail(f"{mode}: no error raised (the bad input was silently accepted)")


def _stack(members):
    """Stack a list of argument pytrees along a new leading axis (array leaves only)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs) if _is_array(xs[0]) else xs[0], *members)


def refuses(pattern: str, fn, *args, good: tuple | None = None, modes=MODES, **kwargs):
    """The call is refused with a message matching `pattern`, in every mode:

    - eager: `ValueError` naming the first bad entry;
    - `jit` (`equinox.filter_jit`, Python floats traced): the same condition, raised when the
      compiled program runs (or at trace time for static arguments);
    - `vmap` over a batch: [good, bad, good] when `good` (valid positional arguments of the same
      structure) is given, so ONE bad member must be caught; else a batch of two bad calls;
    - `grad` with respect to the first float array argument, where the output is a float array.
    """
    with pytest.raises(ValueError, match=pattern):
        fn(*args, **kwargs)
    traced = _traced_pattern(pattern)
    targs, tkwargs = _traced(args), _traced(kwargs)
    try:  # a parameter annotated `float` (a static setting such as `tol`) stays a Python float
        eqx.filter_eval_shape(fn, *targs, **tkwargs)
    except (jaxtyping.TypeCheckError, beartype.roar.BeartypeCallHintParamViolation):
        targs, tkwargs = args, kwargs
    except Exception:
        pass
    if good is not None:
        good = _traced(good) if targs is not args else good
    if "jit" in modes:
        _raises_message(traced, "jit", lambda: eqx.filter_jit(fn)(*targs, **tkwargs))
    if "vmap" in modes:
        members = [targs, targs] if good is None else [good, targs, good]
        batched = _stack(members)
        _raises_message(traced, "vmap", lambda: eqx.filter_vmap(lambda *a: fn(*a, **tkwargs))(*batched))
    if "grad" in modes:
        position = next(
            (i for i, a in enumerate(targs) if _is_array(a) and jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating)),
            None,
        )
        if position is not None:

            def scalar(x):
                out = fn(*targs[:position], x, *targs[position + 1 :], **tkwargs)
                leaves = [
                    leaf for leaf in jax.tree.leaves(out) if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating)
                ]
                return sum(jnp.sum(leaf) for leaf in leaves)

            _raises_message(traced, "grad", lambda: jax.grad(scalar)(targs[position]))


def refuses_shape(parameter: str, fn, *args, **kwargs):
    """A shape that disagrees with the signature's jaxtyping annotation is refused by the runtime
    type check, whose message names the parameter and the expected shape."""
    errors = (jaxtyping.TypeCheckError, beartype.roar.BeartypeCallHintParamViolation)
    with pytest.raises(errors, match=rf"parameter '?{parameter}\b"):
        fn(*args, **kwargs)


def test_transition_rows_must_sum_to_one():
    P, R, g, rho0 = good()
    refuses(
        r"`P` must sum to 1 along its last axis at \(s, a\) = \(1, 0\)",
        rf.FiniteMDP,
        P.at[1, 0, 0].set(0.5),
        R,
        g,
        rho0,
    )


def test_transition_probabilities_must_be_non_negative():
    P, R, g, rho0 = good()
    bad = P.at[0, 1, 0].set(-0.1).at[0, 1, 1].set(1.1 - 1.0 / 3)
    refuses(r"`P` must be non-negative", rf.FiniteMDP, bad, R, g, rho0)


def test_probability_tolerances_are_pinned():
    """The row-sum tolerance is 1e-6 in float64 (a row off by 2e-6 is refused in every mode, one off
    by 5e-7 accepted) and no negative entry is tolerated (−1e-12 is refused): a loosened check
    would let a mis-normalised model through."""
    P, R, g, rho0 = good()
    refuses(
        r"`P` must sum to 1 along its last axis at \(s, a\) = \(2, 1\)",
        rf.FiniteMDP,
        P.at[2, 1, 0].add(2e-6),
        R,
        g,
        rho0,
    )
    rf.FiniteMDP(P.at[2, 1, 0].add(5e-7), R, g, rho0)
    tiny = P.at[0, 1, 0].set(-1e-12).at[0, 1, 1].add(1e-12)
    refuses(r"`P` must be non-negative", rf.FiniteMDP, tiny, R, g, rho0)
    mdp = rf.FiniteMDP(P, R, g, rho0)
    pi = jnp.full((3, 2), 0.5)
    refuses(r"`pi` must sum to 1", rf.policy_evaluation, mdp, pi.at[1, 0].add(2e-6))
    refuses(r"`pi` must be non-negative", rf.policy_evaluation, mdp, pi.at[1].set(jnp.asarray([-1e-12, 1 + 1e-12])))


@pytest.mark.parametrize("gamma", [1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_gamma_must_lie_in_unit_interval(gamma):
    P, R, _, rho0 = good()
    refuses(r"`gamma` must (lie in \[0, 1\)|be finite)", rf.FiniteMDP, P, R, gamma, rho0)


def test_gamma_must_be_scalar():
    P, R, _, rho0 = good()
    refuses(r"`gamma` must be a scalar", rf.FiniteMDP, P, R, jnp.asarray([0.9, 0.9]), rho0)


def test_transition_shape_must_be_S_A_S():
    _, R, g, rho0 = good()
    refuses(r"`P` must have shape \[S, A, S\]", rf.FiniteMDP, jnp.full((3, 2, 4), 0.25), R, g, rho0)
    refuses(r"`P` must have shape \[S, A, S\]", rf.FiniteMDP, jnp.full((3, 3), 1 / 3), R, g, rho0)


def test_reward_shape_must_agree_with_transitions():
    P, _, g, rho0 = good()
    refuses(
        r"`R` must have shape \[S, A\] or \[S\] = \(3, 2\)",
        rf.FiniteMDP,
        P,
        jnp.zeros((3, 3)),
        g,
        rho0,
    )
    refuses(
        r"`R` must have shape \[S\] \(a state reward\) = \(3,\)",
        rf.FiniteMDP,
        P,
        jnp.zeros(4),
        g,
        rho0,
    )


def test_initial_distribution_shape_must_agree():
    P, R, g, _ = good()
    refuses(r"`rho0` must have shape \[S\] = \(3,\)", rf.FiniteMDP, P, R, g, jnp.full(4, 0.25))


def test_initial_distribution_must_be_a_distribution():
    P, R, g, _ = good()
    refuses(r"`rho0` must sum to 1", rf.FiniteMDP, P, R, g, jnp.asarray([0.5, 0.4, 0.0]))
    refuses(r"`rho0` must be non-negative", rf.FiniteMDP, P, R, g, jnp.asarray([1.5, -0.5, 0.0]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_anywhere_is_refused(bad):
    P, R, g, rho0 = good()
    refuses(r"`P` must be finite", rf.FiniteMDP, P.at[0, 0, 0].set(bad), R, g, rho0)
    refuses(r"`R` must be finite, but R\[2, 1\]", rf.FiniteMDP, P, R.at[2, 1].set(bad), g, rho0)
    refuses(r"`rho0` must be finite", rf.FiniteMDP, P, R, g, rho0.at[0].set(bad))


def test_policy_rows_must_sum_to_one():
    mdp = rf.FiniteMDP(*good())
    pi = jnp.asarray([[0.5, 0.5], [0.2, 0.7], [1.0, 0.0]])
    refuses(
        r"policy_evaluation: `pi` must sum to 1 along its last axis at \(s\) = \(1,\)",
        rf.policy_evaluation,
        mdp,
        pi,
    )


def test_policy_must_be_non_negative():
    mdp = rf.FiniteMDP(*good())
    pi = jnp.asarray([[1.5, -0.5], [0.5, 0.5], [1.0, 0.0]])
    refuses(r"advantages: .*`pi` must be non-negative", rf.advantages, mdp, pi)


def test_policy_must_not_contain_nan():
    mdp = rf.FiniteMDP(*good())
    pi = jnp.asarray([[jnp.nan, 0.5], [0.5, 0.5], [1.0, 0.0]])
    refuses(r"`pi` must be finite", rf.expected_return, mdp, pi)


def test_policy_shape_must_match_mdp():
    mdp = rf.FiniteMDP(*good())
    refuses(
        r"`pi` must have shape \[S, A\] = \(3, 2\), but has shape \(3, 3\)",
        rf.discounted_visitation,
        mdp,
        jnp.full((3, 3), 1 / 3),
    )


def test_values_shape_must_match_mdp():
    mdp = rf.FiniteMDP(*good())
    refuses(r"`V` must have shape \[S\] = \(3,\)", rf.bellman_optimality_operator, mdp, jnp.zeros(4))


def test_one_hot_policy_actions_in_range():
    refuses(r"`actions` must lie in \[0, 2\)", rf.one_hot_policy, jnp.asarray([0, 2, 1]), 2)


@pytest.mark.parametrize("bad", [0, -3])
def test_random_mdp_sizes_must_be_positive(bad):
    refuses(r"`num_states` must be an integer >= 1", rf.random_mdp, jax.random.key(0), bad, 2, 0.9)
    refuses(r"`num_actions` must be an integer >= 1", rf.random_mdp, jax.random.key(0), 2, bad, 0.9)


def test_random_mdp_gamma_range():
    refuses(r"random_mdp: `gamma` must lie in \[0, 1\)", rf.random_mdp, jax.random.key(0), 2, 2, 1.0)


def test_value_iteration_arguments():
    mdp = rf.FiniteMDP(*good())
    refuses(r"`tol` must be > 0", rf.value_iteration, mdp, tol=0.0)
    refuses(r"`max_iters` must be an integer >= 1", rf.value_iteration, mdp, max_iters=0)
    refuses(r"`max_iters` must be an integer >= 1", rf.policy_iteration, mdp, max_iters=0)
    refuses(r"`warm_start_sweeps` must be an integer >= 0", rf.policy_iteration, mdp, warm_start_sweeps=-1)


def test_sample_trajectory_horizon():
    mdp = rf.FiniteMDP(*good())
    refuses(
        r"`horizon` must be an integer >= 1",
        rf.sample_trajectory,
        jax.random.key(0),
        mdp,
        jnp.full((3, 2), 0.5),
        0,
    )


def test_discounted_return_gamma_range():
    refuses(r"`gamma` must lie in \[0, 1\]", rf.discounted_return, jnp.ones(3), 1.5)


def test_messages_are_value_errors_not_nan():
    """A bad MDP never reaches the solver: no NaN result."""
    P, R, g, rho0 = good()
    with pytest.raises(ValueError):
        rf.policy_evaluation(rf.FiniteMDP(P * 2, R, g, rho0), jnp.full((3, 2), 0.5))
    assert np.isfinite(np.asarray(rf.policy_evaluation(rf.FiniteMDP(P, R, g, rho0), jnp.full((3, 2), 0.5)))).all()


def test_gridworld_slip_range():
    # gridworld_4x3 is built with numpy from Python numbers: not traceable, so eager only
    refuses(r"gridworld_4x3: `slip` must lie in \[0, 0.5\]", rf.gridworld_4x3, slip=0.7, modes=())


# §3 -------------------------------------------------------------------------------------------


def test_kl_of_missing_support_is_documented_inf_not_nan():
    p = jnp.asarray([[0.5, 0.5]])
    q = jnp.asarray([[1.0, 0.0]])
    out = rf.kl_divergence(p, q)
    assert bool(jnp.isinf(out[0])) and not bool(jnp.isnan(out[0]))
    assert float(rf.max_kl(p, q)) == float("inf")


def test_kl_arguments_must_agree_and_be_distributions():
    refuses_shape("q", rf.kl_divergence, jnp.full((2, 3), 1 / 3), jnp.full((2, 2), 0.5))
    refuses(r"kl_divergence: `q` must sum to 1", rf.kl_divergence, jnp.full((2, 2), 0.5), jnp.full((2, 2), 0.4))
    refuses(
        r"max_total_variation: `pi_bar` must be non-negative",
        rf.max_total_variation,
        jnp.full((1, 2), 0.5),
        jnp.asarray([[1.5, -0.5]]),
    )


def test_trust_region_policies_are_checked():
    mdp = rf.FiniteMDP(*good())
    pi = jnp.full((3, 2), 0.5)
    refuses_shape("pi_bar", rf.surrogate_objective, mdp, pi, jnp.full((3, 3), 1 / 3))
    refuses(r"trpo_lower_bound: `pi_bar` must sum to 1", rf.trpo_lower_bound, mdp, pi, jnp.full((3, 2), 0.3))
    refuses(r"mean_kl: `pi` must sum to 1", rf.mean_kl, mdp, jnp.full((3, 2), 0.3), pi)


def test_exact_step_requires_full_support_and_valid_inputs():
    p = jnp.asarray([[1.0, 0.0], [0.5, 0.5]])
    refuses(r"`pi_old` must have full support", rf.exact_trust_region_step, p, jnp.ones(2), jnp.zeros((2, 2)), 1.0)
    q = jnp.full((2, 2), 0.5)
    refuses(
        r"`weights` must be non-negative",
        rf.exact_trust_region_step,
        q,
        jnp.asarray([1.0, -1.0]),
        jnp.zeros((2, 2)),
        1.0,
    )
    refuses(r"`penalty` must be finite and >= 0", rf.exact_trust_region_step, q, jnp.ones(2), jnp.zeros((2, 2)), -1.0)
    refuses_shape("scores", rf.exact_trust_region_step, q, jnp.ones(2), jnp.zeros((2, 3)), 1.0)
    refuses(r"`scores` must be finite", rf.exact_trust_region_step, q, jnp.ones(2), jnp.full((2, 2), jnp.nan), 1.0)
    mdp = rf.FiniteMDP(*good())
    refuses(
        r"monotonic_policy_iteration: `pi0` must have full support",
        rf.monotonic_policy_iteration,
        mdp,
        jnp.asarray([[1.0, 0.0]] * 3),
        2,
    )
    refuses(r"`num_iters` must be an integer >= 0", rf.monotonic_policy_iteration, mdp, jnp.full((3, 2), 0.5), -1)


@pytest.mark.parametrize("delta", [0.0, -0.01, float("nan")])
def test_delta_must_be_positive(delta):
    g = jnp.ones(3)
    refuses(
        r"natural_gradient_step: `delta` \(the KL radius\) must be finite and > 0",
        rf.natural_gradient_step,
        g,
        lambda v: v,
        delta,
    )
    refuses(r"trpo_update: `delta`", rf.trpo_update, lambda p: jnp.sum(p), lambda p: jnp.sum(p**2), g, delta)
    refuses(
        r"backtracking_line_search: `delta`",
        rf.backtracking_line_search,
        lambda p: jnp.sum(p),
        lambda p: jnp.sum(p**2),
        g,
        g,
        delta,
        1.0,
    )
    refuses(
        r"simultaneous_update_counterexample: `delta` \(the KL radius\) must be finite and > 0",
        rf.simultaneous_update_counterexample,
        jnp.asarray([-0.25, 0.25]),
        delta,
    )


def test_line_search_and_fisher_arguments():
    g = jnp.ones(3)
    refuses(
        r"`backtrack_ratio` must lie in \(0, 1\)",
        rf.backtracking_line_search,
        jnp.sum,
        jnp.sum,
        g,
        g,
        0.1,
        1.0,
        backtrack_ratio=1.5,
    )
    refuses(
        r"`max_backtracks` must be an integer >= 1",
        rf.backtracking_line_search,
        jnp.sum,
        jnp.sum,
        g,
        g,
        0.1,
        1.0,
        max_backtracks=0,
    )

    # the product itself (a closure cannot leave `jit`): the check must reach the vector
    def fisher_times_g(params, damping):
        return rf.fisher_vector_product(lambda p: jnp.sum(p**2), params, damping)(params)

    refuses(r"`damping` must be finite and >= 0", fisher_times_g, g, -0.1, good=(g, 0.1))
    refuses(r"`cg_steps` must be an integer >= 1", rf.natural_gradient_step, g, lambda v: v, 0.1, cg_steps=0)


@pytest.mark.parametrize("epsilon", [0.0, -0.2, float("inf")])
def test_clip_epsilon_must_be_positive(epsilon):
    refuses(
        r"ppo_clip_objective: `epsilon` \(the clip width\) must be finite and > 0",
        rf.ppo_clip_objective,
        jnp.ones(3),
        jnp.ones(3),
        epsilon,
    )


def test_clip_and_ratio_shapes_must_agree():
    refuses_shape("advantage", rf.ppo_clip_objective, jnp.ones(3), jnp.ones(4), 0.2)
    refuses_shape("logp_old", rf.probability_ratio, jnp.ones(3), jnp.ones(2))


@pytest.mark.parametrize("lam", [-0.1, 1.5])
def test_gae_lambda_range(lam):
    refuses(
        r"generalized_advantage_estimate: `lam` must lie in \[0, 1\]",
        rf.generalized_advantage_estimate,
        jnp.ones(3),
        jnp.ones(4),
        jnp.zeros(3),
        0.9,
        lam,
    )


def test_gae_gamma_range():
    refuses(
        r"`gamma` must lie in \[0, 1\]",
        rf.generalized_advantage_estimate,
        jnp.ones(3),
        jnp.ones(4),
        jnp.zeros(3),
        1.2,
        0.9,
    )


def test_gae_shapes():
    refuses(
        r"`values` must have shape \[T \+ 1\] = \(4,\)",
        rf.generalized_advantage_estimate,
        jnp.ones(3),
        jnp.ones(3),
        jnp.zeros(3),
        0.9,
        0.9,
    )
    refuses(
        r"`dones` must have the shape of `rewards` \(3,\)",
        rf.generalized_advantage_estimate,
        jnp.ones(3),
        jnp.ones(4),
        jnp.zeros(2),
        0.9,
        0.9,
    )
    refuses(
        r"`values` must be finite",
        rf.generalized_advantage_estimate,
        jnp.ones(3),
        jnp.asarray([0.0, jnp.nan, 0.0, 0.0]),
        jnp.zeros(3),
        0.9,
        0.9,
    )


# §4 -------------------------------------------------------------------------------------------


def small_game():
    return rf.random_game(jax.random.key(0), 2, (2, 3), 0.9)


def uniform_policies(game):
    return tuple(jnp.full((game.num_states, a), 1.0 / a) for a in game.action_sizes)


def test_game_reward_shape_must_agree_with_transitions():
    P = jnp.full((2, 2, 3, 2), 0.5)
    refuses(
        r"CooperativeGame: `R` must have shape \[S, A1, …, An\] \(the transitions' joint actions\) = \(2, 2, 3\)",
        rf.CooperativeGame,
        P,
        jnp.zeros((2, 3, 2)),
        0.9,
    )
    refuses(
        r"CooperativeGame: `P` must have shape \[S, A1, …, An, S\]",
        rf.CooperativeGame,
        jnp.full((2, 2, 3), 1 / 3),
        jnp.zeros((2, 2)),
        0.9,
    )
    refuses(
        r"CooperativeGame: `P` must sum to 1",
        rf.CooperativeGame,
        jnp.full((2, 2, 3, 2), 0.4),
        jnp.zeros((2, 2, 3)),
        0.9,
    )
    refuses(r"CooperativeGame: `gamma` must lie in \[0, 1\)", rf.CooperativeGame, P, jnp.zeros((2, 2, 3)), 1.0)


def test_agent_subsets_must_be_distinct_and_in_range():
    game = small_game()
    pis = uniform_policies(game)
    refuses(
        r"marginal_action_values: `agents` = \(0, 0\) repeats an agent", rf.marginal_action_values, game, pis, (0, 0)
    )
    refuses(
        r"marginal_action_values: `agents` = \(2,\) has an agent index out of range \[0, 2\)",
        rf.marginal_action_values,
        game,
        pis,
        (2,),
    )
    refuses(r"`agents` = \(-1,\) has an agent index out of range", rf.multi_agent_advantage, game, pis, (), (-1,))


def test_prior_and_current_agents_must_not_overlap():
    game = small_game()
    refuses(
        r"multi_agent_advantage: `prior_agents` \(0,\) and `agents` \(0, 1\) must be disjoint",
        rf.multi_agent_advantage,
        game,
        uniform_policies(game),
        (0,),
        (0, 1),
    )


def test_policy_tuple_length_and_action_sizes():
    game = small_game()
    pis = uniform_policies(game)
    refuses(
        r"`policies` must hold one policy per agent \(2\), but holds 1", rf.marginal_action_values, game, pis[:1], ()
    )
    refuses(
        r"`policies\[1\]` must have shape \[S, A_1\] = \(2, 3\), but has shape \(2, 2\)",
        rf.nash_gap,
        game,
        (pis[0], pis[0]),
    )
    refuses(r"`new_policies\[0\]` must sum to 1", rf.multi_agent_surrogate, game, pis, (pis[0] * 2, pis[1]), (0,))
    refuses_shape("policies", rf.marginal_action_values, game, jnp.full((2, 2), 0.5), ())


def test_orderings_and_surrogate_agents():
    game = small_game()
    pis = uniform_policies(game)
    refuses(r"`order` must be a permutation of all 2 agents", rf.multi_agent_lower_bound, game, pis, pis, (1,))
    refuses(r"`agents` must name at least one agent", rf.multi_agent_surrogate, game, pis, pis, ())


def test_algorithm_1_needs_full_support():
    game = small_game()
    pis = uniform_policies(game)
    bad = (jnp.asarray([[1.0, 0.0], [0.5, 0.5]]), pis[1])
    refuses(
        r"multi_agent_policy_iteration: `policies\[0\]` must have full support",
        rf.multi_agent_policy_iteration,
        jax.random.key(0),
        game,
        bad,
        2,
    )


def test_parameter_sharing_game_needs_even_agents():
    refuses(r"parameter_sharing_game: `num_agents` must be even, but is 3", rf.parameter_sharing_game, 3)
    refuses(r"`num_agents` must be an integer >= 2", rf.parameter_sharing_game, 0)


def test_random_game_arguments():
    refuses(
        r"random_game: `action_sizes\[1\]` must be an integer >= 1", rf.random_game, jax.random.key(0), 2, (2, 0), 0.9
    )
    refuses(r"random_game: `action_sizes` must name at least one agent", rf.random_game, jax.random.key(0), 2, (), 0.9)


def test_multi_agent_objectives_arguments():
    refuses(r"mappo_objective: `epsilon`", rf.mappo_objective, jnp.ones((4, 3)), jnp.ones(4), 0.0)
    refuses_shape("advantage", rf.mappo_objective, jnp.ones((4, 3)), jnp.ones(3), 0.2)
    refuses_shape("advantage", rf.happo_factor, jnp.ones((4, 2)), jnp.ones(5))
    refuses(r"happo_objective: `epsilon`", rf.happo_objective, jnp.ones(3), jnp.ones(3), -0.1)


def test_gaussian_and_haa2c_arguments():
    """The diagonal-Gaussian functions refuse a non-finite mean, log-std or action and the HAA2C
    objective a negative ratio or a non-finite factor, in every mode (one bad member under vmap)."""
    mean, log_std, action = jnp.ones(2), jnp.zeros(2), jnp.ones(2)
    bad_std = jnp.asarray([0.0, jnp.nan])
    refuses(r"gaussian_log_prob: `log_std` must be finite", rf.gaussian_log_prob, mean, bad_std, action,
            good=(mean, log_std, action))  # fmt: skip
    refuses(r"gaussian_log_prob: `action` must be finite", rf.gaussian_log_prob, mean, log_std,
            jnp.asarray([jnp.inf, 0.0]), good=(mean, log_std, action))  # fmt: skip
    refuses(r"gaussian_entropy: `log_std` must be finite", rf.gaussian_entropy, bad_std, good=(log_std,))
    refuses(r"gaussian_kl: `mean_q` must be finite", rf.gaussian_kl, mean, log_std, jnp.asarray([1.0, jnp.nan]),
            log_std, good=(mean, log_std, mean, log_std))  # fmt: skip
    refuses(r"gaussian_kl: `log_std_p` must be finite", rf.gaussian_kl, mean, bad_std, mean, log_std,
            good=(mean, log_std, mean, log_std))  # fmt: skip
    refuses(r"haa2c_objective: `ratio` must be >= 0", rf.haa2c_objective, jnp.asarray([-1.0, 1.0]), jnp.ones(2),
            good=(jnp.ones(2), jnp.ones(2)))  # fmt: skip
    refuses(r"haa2c_objective: `factor` must be finite", rf.haa2c_objective, jnp.ones(2),
            jnp.asarray([jnp.nan, 1.0]), good=(jnp.ones(2), jnp.ones(2)))  # fmt: skip


def test_sequential_updates_check_their_batch():
    params = (jnp.zeros((2, 2)), jnp.zeros((2, 3)))
    fns = (lambda p, o: jax.nn.log_softmax(o @ p, -1),) * 2
    obs = (jnp.eye(2)[jnp.zeros(4, int)],) * 2
    acts = jnp.zeros((4, 2), int)
    old = jnp.zeros((4, 2))
    adv = jnp.ones(4)
    key = jax.random.key(0)
    refuses(
        r"hatrpo_update: `params`, `policy_fns` and `observations` must each hold one entry per agent",
        rf.hatrpo_update,
        key,
        params,
        fns[:1],
        obs,
        acts,
        old,
        adv,
    )
    refuses_shape("actions", rf.hatrpo_update, key, params, fns, obs, acts.astype(float), old, adv)
    refuses(
        r"hatrpo_update: `observations\[0\]` must have B = 4 rows",
        rf.hatrpo_update,
        key,
        params,
        fns,
        (obs[0][:3], obs[1]),
        acts,
        old,
        adv,
    )
    refuses(r"hatrpo_update: `delta`", rf.hatrpo_update, key, params, fns, obs, acts, old, adv, 0.0)
    import optax

    opt = optax.sgd(0.1)
    states = tuple(opt.init(p) for p in params)
    refuses(
        r"happo_update: `num_minibatches` \(3\) must divide the batch size B = 4",
        rf.happo_update,
        key,
        params,
        fns,
        obs,
        acts,
        old,
        adv,
        opt,
        states,
        num_minibatches=3,
    )
    refuses(
        r"happo_update: `opt_states` must hold one optimiser state per agent",
        rf.happo_update,
        key,
        params,
        fns,
        obs,
        acts,
        old,
        adv,
        opt,
        states[:1],
    )
    refuses(r"happo_update: `epsilon`", rf.happo_update, key, params, fns, obs, acts, old, adv, opt, states, 0.0)


# One bad member of a batch ------------------------------------------------------------------


def _one_bad_member_cases():
    P, R, g, rho0 = good()
    mdp = rf.FiniteMDP(P, R, g, rho0)
    pi = jnp.full((3, 2), 0.5)
    game = small_game()
    GP = game.P
    r, v, d = jnp.ones(4), jnp.zeros(5), jnp.zeros(4)
    return [
        # (pattern, fn, bad args, good args)
        (r"policy_evaluation: `pi` must sum to 1", rf.policy_evaluation, (mdp, pi * 1.4), (mdp, pi)),
        (r"policy_reward: `pi` must be finite", rf.policy_reward, (mdp, pi.at[1, 0].set(jnp.nan)), (mdp, pi)),
        (
            r"bellman_optimality_operator: `V` must be finite",
            rf.bellman_optimality_operator,
            (mdp, jnp.asarray([0.0, jnp.inf, 0.0])),
            (mdp, jnp.zeros(3)),
        ),
        (
            r"kl_divergence: `p` must sum to 1",
            rf.kl_divergence,
            (jnp.asarray([0.9, 0.9]), jnp.asarray([0.5, 0.5])),
            (jnp.asarray([0.5, 0.5]),) * 2,
        ),
        (
            r"ppo_clip_objective: `epsilon` \(the clip width\) must be finite and > 0",
            rf.ppo_clip_objective,
            (jnp.ones(3), jnp.ones(3), -0.2),
            (jnp.ones(3), jnp.ones(3), 0.2),
        ),
        (
            r"ppo_clip_objective: `ratio` must be finite",
            rf.ppo_clip_objective,
            (jnp.asarray([1.0, jnp.nan]), jnp.ones(2), 0.2),
            (jnp.ones(2), jnp.ones(2), 0.2),
        ),
        (
            r"generalized_advantage_estimate: `gamma` must lie in \[0, 1\]",
            rf.generalized_advantage_estimate,
            (r, v, d, 1.5, 0.95),
            (r, v, d, 0.99, 0.95),
        ),
        (
            r"generalized_advantage_estimate: `dones` must be 0 or 1",
            rf.generalized_advantage_estimate,
            (r, v, d.at[2].set(0.5), 0.9, 0.95),
            (r, v, d, 0.9, 0.95),
        ),
        (r"FiniteMDP: `P` must sum to 1", rf.FiniteMDP, (2 * P, R, g, rho0), (P, R, g, rho0)),
        (r"FiniteMDP: `gamma` must lie in \[0, 1\)", rf.FiniteMDP, (P, R, 1.0, rho0), (P, R, g, rho0)),
        (r"CooperativeGame: `P` must sum to 1", rf.CooperativeGame, (2 * GP, game.R, 0.9), (GP, game.R, 0.9)),
        (
            r"CooperativeGame: `R` must be finite",
            rf.CooperativeGame,
            (GP, game.R.at[0, 0, 0].set(jnp.nan), 0.9),
            (GP, game.R, 0.9),
        ),
        (
            r"one_hot_policy: `actions` must lie in \[0, 2\)",
            rf.one_hot_policy,
            (jnp.asarray([0, 2, 1]), 2),
            (jnp.asarray([0, 1, 1]), 2),
        ),
        (
            r"exact_trust_region_step: `pi_old` must have full support",
            rf.exact_trust_region_step,
            (jnp.asarray([[1.0, 0.0]]), jnp.ones(1), jnp.zeros((1, 2)), 1.0),
            (jnp.asarray([[0.5, 0.5]]), jnp.ones(1), jnp.zeros((1, 2)), 1.0),
        ),
        (
            r"happo_factor: `previous_ratios` must be >= 0",
            rf.happo_factor,
            (jnp.asarray([[1.0, -1.0]]), jnp.ones(1)),
            (jnp.ones((1, 2)), jnp.ones(1)),
        ),
        (
            r"discounted_return: `gamma` must lie in \[0, 1\]",
            rf.discounted_return,
            (jnp.ones(3), 1.5),
            (jnp.ones(3), 0.5),
        ),
        (
            r"mean_kl: `pi_bar` must be non-negative",
            rf.mean_kl,
            (mdp, pi, pi.at[0].set(jnp.asarray([1.5, -0.5]))),
            (mdp, pi, pi),
        ),
        (r"joint_policy: `policies\[1\]` must sum to 1", rf.joint_policy, ((pi, 2 * pi),), ((pi, pi),)),
    ]


@pytest.mark.parametrize("case", range(len(_one_bad_member_cases())))
def test_one_bad_member_of_a_vmapped_batch_is_caught(case):
    """The examples a user would hit inside `jit`/`vmap`: each silently returned numbers before the
    checks were traced. Here the batch is [good, bad, good] and the check must still fire, with the
    eager message's condition; the good arguments alone pass in every mode."""
    pattern, fn, bad, ok = _one_bad_member_cases()[case]
    refuses(pattern, fn, *bad, good=ok)
    jax.block_until_ready(fn(*ok))
    jax.block_until_ready(eqx.filter_jit(fn)(*_traced(ok)))
    jax.block_until_ready(eqx.filter_vmap(fn)(*_stack([_traced(ok)] * 3)))
