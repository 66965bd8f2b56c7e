r"""Values, objective, advantage and discounted visitation (notes §2, Kuba et al. §2.1).

Source: Kuba et al. (2022), "Trust Region Policy Optimisation in Multi-Agent Reinforcement
Learning", ICLR, §2.1; Schulman et al. (2015), TRPO, §2. The notes' items A15–A19.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from beartype import beartype
from jaxtyping import jaxtyped

from ._bellman import bellman_system, lookahead, policy_evaluation
from ._checks import check_policy
from ._linalg import solve_square
from ._mdp import FiniteMDP
from ._types import Array, ArrayLike, Float


@jaxtyped(typechecker=beartype)
def state_values(mdp: FiniteMDP, pi: Float[ArrayLike, "S A"]) -> Float[Array, " S"]:
    r"""The state value $V_\pi$ (状态价值函数).

    $$V_\pi(s) = \mathbb E\Big[\sum_{t=0}^\infty \gamma^t r_t \,\Big|\, s_0 = s,\ a_t\sim\pi\Big]
      = \big[(I-\gamma P_\pi)^{-1} r_\pi\big]_s$$

    Notes A15 (and A7 for a deterministic policy). Kuba et al. (2022) §2.1. Computed by
    `policy_evaluation` (one linear solve).

    **Arguments:** `mdp`; `pi[s, a] = π(a|s)`.

    **Returns:** `V[s]` (`proofs_as_tests/test_bellman.py::
    test_policy_evaluation_is_fixed_point_of_expectation_operator`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> bool(jnp.allclose(rf.state_values(mdp, pi), rf.policy_evaluation(mdp, pi)))
    True

    ```
    """
    pi = check_policy(pi, mdp.num_states, mdp.num_actions, "state_values")
    return policy_evaluation(mdp, pi)


@jaxtyped(typechecker=beartype)
def action_values(mdp: FiniteMDP, pi: Float[ArrayLike, "S A"]) -> Float[Array, "S A"]:
    r"""The action value $Q_\pi$ (状态-动作价值函数).

    $$Q_\pi(s,a) = \mathbb E\Big[\sum_t\gamma^t r_t \,\Big|\,
      s_0=s,\ a_0=a,\ a_{1:\infty}\sim\pi\Big] = R(s,a) + \gamma\sum_{s'}P_{sa}(s')V_\pi(s')$$

    Notes A16. Kuba et al. (2022) §2.1.

    **Arguments:** `mdp`; `pi[s, a] = π(a|s)`.

    **Returns:** `Q[s, a]`; $\sum_a\pi(a|s)Q_\pi(s,a) = V_\pi(s)$
    (`proofs_as_tests/test_values.py::test_action_values_satisfy_bellman`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> Q, V = rf.action_values(mdp, pi), rf.state_values(mdp, pi)
    >>> bool(jnp.allclose((pi * Q).sum(-1), V, atol=1e-4))  # V(s) = Σ_a π(a|s) Q(s, a)
    True

    ```
    """
    pi = check_policy(pi, mdp.num_states, mdp.num_actions, "action_values")
    return lookahead(mdp, policy_evaluation(mdp, pi))


@jaxtyped(typechecker=beartype)
def expected_return(mdp: FiniteMDP, pi: Float[ArrayLike, "S A"]) -> Float[Array, ""]:
    r"""The objective $J(\pi)$ (策略目标函数).

    $$J(\pi) = \mathbb E_{s_0\sim\rho_0}\big[V_\pi(s_0)\big]
      = \mathbb E_{s_{0:\infty}\sim\rho_\pi^{0:\infty},\,a_{0:\infty}\sim\pi}
        \Big[\sum_t\gamma^t r_t\Big]$$

    Notes A17–A18 and A5. Kuba et al. (2022) §2.1. Correction C6: the notes' first form
    writes $s_{0:\infty}\sim\rho_\pi$; the states follow the chain's time marginals
    $\rho^{0:\infty}_\pi$, not the discounted visitation $\rho_\pi$. Differentiable in `pi`.

    **Arguments:** `mdp`; `pi[s, a] = π(a|s)`.

    **Returns:** the scalar $J(\pi)$. Proved against Monte-Carlo rollouts
    (`proofs_as_tests/test_values.py::test_expected_return_matches_monte_carlo`) and its
    gradient against the policy-gradient theorem
    (`::test_gradient_of_expected_return_is_policy_gradient_theorem`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> J = rf.expected_return(mdp, pi)
    >>> bool(jnp.isclose(J, mdp.rho0 @ rf.state_values(mdp, pi)))  # J = E_{s0 ~ ρ0} V(s0)
    True

    ```
    """
    pi = check_policy(pi, mdp.num_states, mdp.num_actions, "expected_return")
    return jnp.dot(mdp.rho0, policy_evaluation(mdp, pi))


@jaxtyped(typechecker=beartype)
def advantages(mdp: FiniteMDP, pi: Float[ArrayLike, "S A"]) -> Float[Array, "S A"]:
    r"""The advantage $A_\pi = Q_\pi - V_\pi$ (优势函数).

    $$A_\pi(s,a) = Q_\pi(s,a) - V_\pi(s)$$

    Notes A19. Kuba et al. (2022) §2.1; Schulman et al. (2015) §2.

    **Arguments:** `mdp`; `pi[s, a] = π(a|s)`.

    **Returns:** `A[s, a]`. For every $s$, $\sum_a\pi(a|s)A_\pi(s,a) = 0$
    (`proofs_as_tests/test_values.py::test_zero_expected_advantage`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> A = rf.advantages(mdp, pi)
    >>> bool(jnp.allclose((pi * A).sum(-1), 0.0, atol=1e-4))  # Σ_a π(a|s) A(s, a) = 0
    True

    ```
    """
    pi = check_policy(pi, mdp.num_states, mdp.num_actions, "advantages")
    V = policy_evaluation(mdp, pi)
    return lookahead(mdp, V) - V[:, None]


@jaxtyped(typechecker=beartype)
def discounted_visitation(mdp: FiniteMDP, pi: Float[ArrayLike, "S A"]) -> Float[Array, " S"]:
    r"""The UNNORMALISED discounted state visitation $\rho_\pi$ (total mass $1/(1-\gamma)$).

    $$\rho_\pi(s) = \sum_{t=0}^\infty \gamma^t \Pr(s_t = s)
      = \big[\rho_0^\top (I - \gamma P_\pi)^{-1}\big]_s$$

    Notes A22 (the $\rho_\pi$ of the surrogate). Schulman et al. (2015) §2
    ("(unnormalized) discounted visitation frequencies");
    Kuba et al. (2022) §2.1 ("an (improper) marginal state distribution"). Correction C8:
    the notes use $\rho_\pi$ without defining it. With this convention $L_\pi(\pi)=J(\pi)$,
    $\nabla L = \nabla J$ and the trust-region bounds hold exactly; the normalised
    $d_\pi = (1-\gamma)\rho_\pi$ is what an expected-KL constraint averages under.

    **Arguments:** `mdp`; `pi[s, a] = π(a|s)`.

    **Returns:** `rho[s]`, summing to $1/(1-\gamma)$. Proved against the truncated series
    (`proofs_as_tests/test_values.py::test_discounted_visitation_is_truncated_series`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> rho = rf.discounted_visitation(mdp, pi)
    >>> round(float(rho.sum() * (1 - mdp.gamma)), 4)  # total mass 1/(1 − γ)
    1.0

    ```
    """
    pi = check_policy(pi, mdp.num_states, mdp.num_actions, "discounted_visitation")
    return _discounted_visitation(mdp, pi)


@jax.jit
def _discounted_visitation(mdp: FiniteMDP, pi: Array) -> Array:
    return solve_square(bellman_system(mdp, pi).T, mdp.rho0)
