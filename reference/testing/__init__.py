r"""`reference.testing`: point the project's property sweep at your own RL code.

Two parts:

- **Strategies** (hypothesis): the random finite MDPs, policies (near the simplex's edges too),
  cooperative games, trajectories with episode ends and truncations, and agent orders that the
  project's own proofs draw from.
- **Conformance checks**: `check_gae`, `check_discounted_returns`, `check_ppo_clip`,
  `check_categorical_kl`, `check_gaussian_kl`, `check_sampled_kl`, `check_trpo_step`, `check_happo_factor`,
  `check_happo_objective`, `check_sequential_factors`. Each takes your callable (numpy, JAX or
  PyTorch) and a `Conventions` declaring how it is called; it passes, or raises
  `ConformanceError` with the equation violated, both values and the shrunk counterexample. A
  check that cannot use what it was given (a function whose signature does not take the check's
  call, a result of the wrong shape, a bad `Conventions` value) raises `UsageError` instead,
  showing the offending input: that is not a finding about the equation.

In a test file of your project (one line per quantity):

```python
from reference.testing import Conventions, check_gae

def test_my_gae():
    check_gae(lambda r, v, d, g, l: my_gae(r, v, d, g, l), Conventions(arrays="numpy"))
```

Every check takes `max_examples` and `seed`: with the default `seed=0` it draws the same examples
on every run (a user's CI cannot flip), `seed=1, 2, …` other fixed ones; `seed=None` leaves the
choice to hypothesis (its `--hypothesis-seed` option, or its own randomness).
Call a check from a plain test, parametrised with `pytest.mark.parametrize` where it must vary, not
inside a hypothesis `@given` test (hypothesis refuses a `@given` within a `@given`; the check
says so). The function under test receives copies of the drawn arrays, so one that changes its
inputs in place cannot change the counterexample reported. A check leaves no files behind: the
cache hypothesis keeps of your modules' constants (by default in `.hypothesis/` under the working
directory) goes to a temporary directory for the check's duration, or where
`HYPOTHESIS_STORAGE_DIRECTORY` says if you set it.

Needs `hypothesis` (the `testing` extra: `pip install "reference-rl[testing]"`). The numpy and
PyTorch checks do not need JAX: `pip install --no-deps reference-rl` plus `hypothesis` and
`numpy` is enough for them (the install sizes are measured in `docs/conformance.md`). This
subpackage is not re-exported by `reference`, whose flat namespace holds the equations.
"""

try:
    import hypothesis as _hypothesis  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'reference.testing needs hypothesis: pip install "reference-rl[testing]" (or pip install hypothesis).'
    ) from e

from ._conformance import (
    ConformanceError as ConformanceError,
    Conventions as Conventions,
    UsageError as UsageError,
    check_categorical_kl as check_categorical_kl,
    check_discounted_returns as check_discounted_returns,
    check_gae as check_gae,
    check_gaussian_kl as check_gaussian_kl,
    check_happo_factor as check_happo_factor,
    check_happo_objective as check_happo_objective,
    check_ppo_clip as check_ppo_clip,
    check_sampled_kl as check_sampled_kl,
    check_sequential_factors as check_sequential_factors,
    check_trpo_step as check_trpo_step,
    reference_categorical_kl as reference_categorical_kl,
    reference_gae as reference_gae,
    reference_gaussian_kl as reference_gaussian_kl,
    reference_kl_estimate as reference_kl_estimate,
    reference_natural_step as reference_natural_step,
    reference_ppo_clip as reference_ppo_clip,
    reference_returns as reference_returns,
)
from ._strategies import (
    MDP_KINDS as MDP_KINDS,
    POLICY_KINDS as POLICY_KINDS,
    Trajectory as Trajectory,
    agent_orders as agent_orders,
    games as games,
    joint_policy_pairs as joint_policy_pairs,
    mdps as mdps,
    policies as policies,
    policy_array as policy_array,
    policy_pairs as policy_pairs,
    trajectories as trajectories,
    transition_tensor as transition_tensor,
)

__all__ = [
    "MDP_KINDS",
    "POLICY_KINDS",
    "ConformanceError",
    "Conventions",
    "Trajectory",
    "UsageError",
    "agent_orders",
    "check_categorical_kl",
    "check_discounted_returns",
    "check_gae",
    "check_gaussian_kl",
    "check_happo_factor",
    "check_happo_objective",
    "check_ppo_clip",
    "check_sampled_kl",
    "check_sequential_factors",
    "check_trpo_step",
    "games",
    "joint_policy_pairs",
    "mdps",
    "policies",
    "policy_array",
    "policy_pairs",
    "reference_categorical_kl",
    "reference_gae",
    "reference_gaussian_kl",
    "reference_kl_estimate",
    "reference_natural_step",
    "reference_ppo_clip",
    "reference_returns",
    "trajectories",
    "transition_tensor",
]
