"""Hypothesis strategies for the proofs: the public ones of `reference.testing` (finite MDPs with
edge cases, policies, cooperative games, trajectories), plus the proofs' own helpers.
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import settings, strategies as st

from reference.testing import (
    MDP_KINDS as MDP_KINDS,
    POLICY_KINDS as POLICY_KINDS,
    games as games,
    joint_policy_pairs as joint_policy_pairs,
    mdps as mdps,
    policies as policies,
    policy_array as policy_array,
    policy_pairs as policy_pairs,
    transition_tensor as transition_tensor,
)


@st.composite
def mdp_and_policy(draw: st.DrawFn, kinds: tuple[str, ...] = POLICY_KINDS, **mdp_kwargs):
    mdp = draw(mdps(**mdp_kwargs))
    return mdp, draw(policies(mdp.num_states, mdp.num_actions, kinds))


def tol(*xs: object, rel: float = 1e-9) -> float:
    """A tolerance `rel * (1 + max |x|)` for comparing float64 results."""
    scale = max(float(np.max(np.abs(np.asarray(x)))) if np.size(np.asarray(x)) else 0.0 for x in xs)
    return rel * (1.0 + scale)


@st.composite
def mdp_and_policy_pair(draw: st.DrawFn, **mdp_kwargs):
    mdp = draw(mdps(**mdp_kwargs))
    pi, pi_bar = draw(policy_pairs(mdp.num_states, mdp.num_actions))
    return mdp, pi, pi_bar


def at_most(n: int) -> settings:
    """`settings(max_examples=n)`, but never more examples than the loaded profile draws (a test
    that is costly per example caps itself at n in the thorough profile, and the quick profile
    stays quick)."""
    profile = settings.default
    return settings(max_examples=n if profile is None else min(n, profile.max_examples))


THOROUGH_EXAMPLES = 75  # the thorough (`ci`) profile's examples per property


def examples(n: int) -> int:
    """`n` examples, except in the quick profile (the default, `dev`): there the same share of `n` as
    its examples are of the thorough profile's, and at least 5. For the checks of
    `reference.testing`, which draw their own examples. (The `mutation` profile keeps `n`: the
    mutation score was measured with it.)"""
    profile = settings.default
    if os.environ.get("HYPOTHESIS_PROFILE", "dev") != "dev" or profile is None:
        return n
    return max(5, round(n * profile.max_examples / THOROUGH_EXAMPLES))
