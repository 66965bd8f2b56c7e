r"""Bellman equations, policy evaluation, value iteration and policy iteration (notes §1).

Source: CS229 main notes, ch. 15 §15.1–§15.2; the notes' items A7–A14b.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from beartype import beartype
from jaxtyping import jaxtyped

from ._checks import check_finite, check_policy, check_positive_int, check_shape
from ._linalg import solve_square
from ._mdp import FiniteMDP
from ._types import Array, ArrayLike, Float, Int

# Up to this many actions, sums over a are written out term by term: XLA:CPU fuses them into one
# pass over P (about 2x faster than the batched dot an einsum becomes, at S = 2000 and for a
# vmapped batch of small MDPs; benchmarks/tabular.py). Beyond it, einsum.
_UNROLL_MAX_ACTIONS = 16


def action_average(pi: Array, X: Array) -> Array:
    r"""$\sum_a \pi(a|s)\,X[s, a, \dots]$ for `X` of shape `[S, A, ...]` (e.g. $P_\pi$ from P, $r_\pi$ from R)."""
    num_actions = pi.shape[-1]
    if num_actions > _UNROLL_MAX_ACTIONS:
        return jnp.einsum("sa,sa...->s...", pi, X)
    trailing = (slice(None),) + (None,) * (X.ndim - 2)  # pi[:, a] broadcast against X[:, a]
    terms = [pi[:, a][trailing] * X[:, a] for a in range(num_actions)]
    return sum(terms[1:], terms[0])


def _check_values(V: ArrayLike, mdp: FiniteMDP, where: str, name: str = "V") -> Array:
    arr = jnp.asarray(V, dtype=mdp.P.dtype)
    check_shape(arr, (mdp.num_states,), name, where, "[S]")
    return check_finite(arr, name, where)


@jaxtyped(typechecker=beartype)
def policy_transition_matrix(mdp: FiniteMDP, pi: Float[ArrayLike, "S A"]) -> Float[Array, "S S"]:
    r"""The state-to-state transition matrix of the chain that follows $\pi$.

    $$P_\pi(s, s') = \sum_a \pi(a\mid s)\, P_{sa}(s')$$

    Notes A9 (matrix form $V^\pi = r_\pi + \gamma P_\pi V^\pi$).

    **Arguments:** `mdp`; `pi[s, a] = π(a|s)`.

    **Returns:** `P_pi[s, s']`, rows summing to one.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> P_pi = rf.policy_transition_matrix(mdp, pi)
    >>> P_pi.shape, bool(jnp.allclose(P_pi.sum(-1), 1.0))
    ((12, 12), True)

    ```
    """
    pi = check_policy(pi, mdp.num_states, mdp.num_actions, "policy_transition_matrix")
    return action_average(pi, mdp.P)


@jaxtyped(typechecker=beartype)
def policy_reward(mdp: FiniteMDP, pi: Float[ArrayLike, "S A"]) -> Float[Array, " S"]:
    r"""The expected one-step reward under $\pi$.

    $$r_\pi(s) = \sum_a \pi(a\mid s)\, R(s, a)$$

    Notes A9. With a state reward $R(s)$ this is $R(s)$ itself.

    **Arguments:** `mdp`; `pi[s, a] = π(a|s)`.

    **Returns:** `r_pi[s]`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> round(float(rf.policy_reward(mdp, pi)[0]), 4)  # every cell but the exits pays the living reward
    -0.02

    ```
    """
    pi = check_policy(pi, mdp.num_states, mdp.num_actions, "policy_reward")
    return action_average(pi, mdp.R)


@jaxtyped(typechecker=beartype)
def one_step_lookahead(mdp: FiniteMDP, V: Float[ArrayLike, " S"]) -> Float[Array, "S A"]:
    r"""The value of taking $a$ in $s$ and then collecting $V$: a one-step lookahead.

    $$Q_V(s, a) = R(s, a) + \gamma \sum_{s'} P_{sa}(s')\, V(s')$$

    Notes A16 with $V = V_\pi$ (then $Q_V = Q_\pi$); the inner sum is the notes'
    $\mathbb E_{s'\sim P_{sa}}[V(s')]$ (A9). Shared by $T^*$, the greedy policy and $Q_\pi$.

    **Arguments:** `mdp`; `V[s]`.

    **Returns:** `Q[s, a]`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> V = rf.policy_evaluation(mdp, pi)
    >>> bool(jnp.allclose(rf.one_step_lookahead(mdp, V), rf.action_values(mdp, pi), atol=1e-4))  # Q_V = Q_π
    True

    ```
    """
    return lookahead(mdp, _check_values(V, mdp, "one_step_lookahead"))


def lookahead(mdp: FiniteMDP, V: Array) -> Array:
    """`one_step_lookahead` without the checks, for loops whose values are already checked."""
    return mdp.R + mdp.gamma * jnp.einsum("sat,t->sa", mdp.P, V)


@jaxtyped(typechecker=beartype)
def bellman_expectation_operator(
    mdp: FiniteMDP, pi: Float[ArrayLike, "S A"], V: Float[ArrayLike, " S"]
) -> Float[Array, " S"]:
    r"""The Bellman expectation operator $T^\pi$ (贝尔曼方程).

    $$(T^\pi V)(s) = \sum_a \pi(a\mid s)\Big[R(s,a) + \gamma\sum_{s'}P_{sa}(s')V(s')\Big]$$

    Notes A9; CS229 eq. (15.1), written there for a deterministic policy and a state reward
    $R(s)$: $V^\pi(s) = R(s) + \gamma\sum_{s'}P_{s\pi(s)}(s')V^\pi(s')$ (correction C2:
    the general form above contains it). $V^\pi$ is its unique fixed point and it is a
    $\gamma$-contraction in sup-norm (`proofs_as_tests/test_bellman.py::
    test_policy_evaluation_is_fixed_point_of_expectation_operator`,
    `::test_bellman_operators_are_gamma_contractions`).

    **Arguments:** `mdp`; `pi[s, a] = π(a|s)`; `V[s]`.

    **Returns:** $T^\pi V$, shape `[S]`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> V = rf.policy_evaluation(mdp, pi)
    >>> bool(jnp.allclose(rf.bellman_expectation_operator(mdp, pi, V), V, atol=1e-4))  # V^π = T^π V^π
    True

    ```
    """
    where = "bellman_expectation_operator"
    pi = check_policy(pi, mdp.num_states, mdp.num_actions, where)
    return action_average(pi, lookahead(mdp, _check_values(V, mdp, where)))


@jaxtyped(typechecker=beartype)
def policy_evaluation(mdp: FiniteMDP, pi: Float[ArrayLike, "S A"]) -> Float[Array, " S"]:
    r"""$V^\pi$ by solving the $|S|$ Bellman equations as one linear system (lineax).

    $$(I - \gamma P_\pi)\, V^\pi = r_\pi \quad\Longrightarrow\quad
      V^\pi = (I-\gamma P_\pi)^{-1} r_\pi$$

    Notes A10 ("$|S|$ 个线性方程组"), A7 (价值函数). CS229 §15.1. The matrix is
    invertible for $\gamma < 1$ because $\|\gamma P_\pi\|_\infty = \gamma$. Differentiable
    in `pi`, `mdp.R`, `mdp.P` (lineax's implicit differentiation).

    The solver (`reference/_linalg.py`, a `lineax.AbstractLinearSolver`): unrolled elimination
    for $|S| \le 16$ (it vectorises under `vmap`; no pivoting is needed since the matrix is
    strictly diagonally dominant), a float64 LU up to 127 states, and from 128 states in
    float64 a float32 LU refined to float64 accuracy (LAPACK's `dsgesv`), with a float64 LU
    as fallback (`proofs_as_tests/test_linalg.py`).

    **Arguments:** `mdp`; `pi[s, a] = π(a|s)`.

    **Returns:** `V[s]`. Proved against iterating $T^\pi$ and against the truncated series
    $\sum_t\gamma^tP_\pi^tr_\pi$ in `proofs_as_tests/test_bellman.py::
    test_policy_evaluation_is_fixed_point_of_expectation_operator`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> V = rf.policy_evaluation(mdp, pi)
    >>> P_pi, r_pi = rf.policy_transition_matrix(mdp, pi), rf.policy_reward(mdp, pi)
    >>> bool(jnp.allclose(V, r_pi + mdp.gamma * P_pi @ V, atol=1e-4))
    True

    ```
    """
    pi = check_policy(pi, mdp.num_states, mdp.num_actions, "policy_evaluation")
    return _policy_evaluation(mdp, pi)


def bellman_system(mdp: FiniteMDP, pi: Array) -> Array:
    r"""The matrix $I - \gamma P_\pi$ of A10 (its transpose gives $\rho_\pi$, A22); `pi` already checked."""
    P_pi = action_average(pi, mdp.P)
    return jnp.eye(mdp.num_states, dtype=P_pi.dtype) - mdp.gamma * P_pi


@jax.jit
def _policy_evaluation(mdp: FiniteMDP, pi: Array) -> Array:
    return solve_square(bellman_system(mdp, pi), action_average(pi, mdp.R))


@jaxtyped(typechecker=beartype)
def bellman_optimality_operator(mdp: FiniteMDP, V: Float[ArrayLike, " S"]) -> Float[Array, " S"]:
    r"""The Bellman optimality operator $T^*$.

    $$(T^* V)(s) = \max_a\Big[R(s,a) + \gamma\sum_{s'}P_{sa}(s')V(s')\Big]$$

    Notes A12 (最优价值函数, 贝尔曼方程); CS229 eq. (15.2), written there with a state
    reward: $V^*(s) = R(s) + \max_a\gamma\sum_{s'}P_{sa}(s')V^*(s')$ (the same when $R$ does
    not depend on $a$). $V^*$ is its unique fixed point; it is a $\gamma$-contraction
    (`proofs_as_tests/test_bellman.py::test_bellman_operators_are_gamma_contractions`).

    **Arguments:** `mdp`; `V[s]`.

    **Returns:** $T^* V$, shape `[S]`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp = rf.gridworld_4x3()
    >>> V = rf.value_iteration(mdp)
    >>> bool(jnp.allclose(rf.bellman_optimality_operator(mdp, V), V, atol=1e-4))  # V* = T* V*
    True

    ```
    """
    return jnp.max(lookahead(mdp, _check_values(V, mdp, "bellman_optimality_operator")), axis=-1)


def _optimality_sweep(mdp: FiniteMDP, V: Array) -> Array:
    return jnp.max(lookahead(mdp, V), axis=-1)


class ValueIterationResult(NamedTuple):
    """What `value_iteration_with_bound` returns."""

    values: Float[Array, " S"]
    """The estimate of $V^*$ (midpoint of the span bounds)."""
    error_bound: Float[Array, ""]
    """A certified bound on $\\|\\text{values} - V^*\\|_\\infty$."""
    num_iterations: Int[Array, ""]
    """How many applications of $T^*$ were made."""


@jaxtyped(typechecker=beartype)
def value_iteration_with_bound(
    mdp: FiniteMDP,
    tol: float = 1e-10,
    max_iters: int = 10_000,
) -> ValueIterationResult:
    r"""Value iteration with a certified stopping rule (the span / MacQueen bounds).

    Iterate $V_{k+1} = T^* V_k$ from $V_0 = 0$. With $d = V_{k+1} - V_k$ and
    $c = \gamma/(1-\gamma)$, monotonicity and $T^*(V + x\mathbf 1) = T^*V + \gamma x\mathbf 1$
    give, for every state,

    $$V_{k+1} + c\,\min_s d(s) \;\le\; V^* \;\le\; V_{k+1} + c\,\max_s d(s).$$

    The estimate is the midpoint $V_{k+1} + c\,(\max d + \min d)/2$ and its certified error
    is $c\,(\max d - \min d)/2$. The loop stops when that bound is $\le$ `tol`, when it stops
    shrinking (the floating-point floor, e.g. in float32), or after `max_iters` sweeps.
    The span of $d$ contracts at least by $\gamma$ per sweep and usually much faster, so a few
    sweeps certify $V^*$ where the naive rule "$\|V_{k+1}-V_k\|_\infty$ small" stops
    far from it (pymdptoolbox's `ValueIteration` stops with $V\approx 5.8$ where
    $V^*\approx 79.6$ on the benchmark problems).

    Notes A14a (value iteration: CS229 §15.2, not written out in the notes). Bounds: MacQueen
    (1966); Puterman (1994), Thm 6.6.6.
    Runs in `jax.lax.while_loop` (jit- and vmap-safe).

    **Arguments:**

    - `mdp`: the MDP.
    - `tol`: the certified sup-norm accuracy wanted.
    - `max_iters`: at most this many sweeps.

    **Returns:** `ValueIterationResult(values, error_bound, num_iterations)`. Proved in
    `proofs_as_tests/test_bellman.py::test_value_iteration_bound_is_certified`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> result = rf.value_iteration_with_bound(rf.gridworld_4x3(), tol=1e-4)
    >>> bool(result.error_bound <= 1e-4), int(result.num_iterations) > 0
    (True, True)

    ```
    """
    check_positive_int(max_iters, "max_iters", "value_iteration")
    if not tol > 0:
        raise ValueError(f"value_iteration: `tol` must be > 0, but is {tol!r}.")
    return _value_iteration(mdp, jnp.asarray(tol, mdp.P.dtype), max_iters)


@partial(jax.jit, static_argnames="max_iters")
def _value_iteration(mdp: FiniteMDP, tol: Array, max_iters: int) -> ValueIterationResult:
    dtype = mdp.P.dtype
    c = mdp.gamma / (1.0 - mdp.gamma)
    inf = jnp.asarray(jnp.inf, dtype)

    def bounds(V: Array) -> tuple[Array, Array, Array]:
        TV = _optimality_sweep(mdp, V)
        d = TV - V
        return TV, jnp.min(d), jnp.max(d)

    def cond(carry: tuple[Array, Array, Array, Array, Array, Array]) -> Array:
        k, _, _, _, bound, prev_bound = carry
        return (k < max_iters) & (bound > tol) & (bound < prev_bound)

    def body(carry: tuple[Array, Array, Array, Array, Array, Array]):
        k, V, _, _, bound, _ = carry
        TV, lo, hi = bounds(V)
        return k + 1, TV, lo, hi, c * (hi - lo) / 2, bound

    V0 = jnp.zeros(mdp.num_states, dtype)
    TV, lo, hi = bounds(V0)
    init = (jnp.asarray(1, jnp.int32), TV, lo, hi, c * (hi - lo) / 2, inf)
    k, V, lo, hi, bound, _ = jax.lax.while_loop(cond, body, init)
    return ValueIterationResult(V + c * (hi + lo) / 2, bound, k.astype(jnp.int32))


@jaxtyped(typechecker=beartype)
def value_iteration(mdp: FiniteMDP, tol: float = 1e-10, max_iters: int = 10_000) -> Float[Array, " S"]:
    r"""$V^*$ by value iteration, certified to sup-norm accuracy `tol`.

    $$V_{k+1}(s) = \max_a\Big[R(s,a)+\gamma\sum_{s'}P_{sa}(s')V_k(s')\Big] \to V^*$$

    Notes A14a (value iteration), A11–A12. CS229 §15.2. See `value_iteration_with_bound` for the
    stopping rule (span bounds) and its certificate.

    **Arguments:** `mdp`; `tol` the certified accuracy; `max_iters` the cap on sweeps.

    **Returns:** `V*[s]`. Proved against policy iteration and against enumerating every
    deterministic policy in `proofs_as_tests/test_bellman.py::
    test_value_iteration_equals_enumeration_and_policy_iteration`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp = rf.gridworld_4x3()
    >>> V_star = rf.value_iteration(mdp)
    >>> _, V_pi = rf.policy_iteration(mdp)
    >>> bool(jnp.allclose(V_star, V_pi, atol=1e-4))
    True

    ```
    """
    return value_iteration_with_bound(mdp, tol, max_iters).values


@jaxtyped(typechecker=beartype)
def greedy_policy(mdp: FiniteMDP, V: Float[ArrayLike, " S"]) -> Int[Array, " S"]:
    r"""The greedy (deterministic) policy with respect to $V$.

    $$\pi(s) \in \arg\max_a\Big[R(s,a) + \gamma\sum_{s'}P_{sa}(s')V(s')\Big]$$

    Notes A13 (最优策略); CS229 eq. (15.3) writes $\pi^*(s) = \arg\max_a\sum_{s'}P_{sa}(s')
    V^*(s')$, which is right only for a state reward $R(s)$ and $\gamma > 0$ (correction C5:
    with $R(s, a)$ the reward must stay inside the argmax). Ties go to the lowest action.

    **Arguments:** `mdp`; `V[s]`.

    **Returns:** integer `actions[s]`; with $V = V^*$ it attains $V^*$
    (`proofs_as_tests/test_bellman.py::test_greedy_policy_of_optimal_values_is_optimal`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp = rf.gridworld_4x3()
    >>> actions = rf.greedy_policy(mdp, rf.value_iteration(mdp))
    >>> rf.GRIDWORLD_ACTIONS[int(actions[rf.GRIDWORLD_CELLS.index((3, 3))])]  # beside the +1 exit: go east
    'E'

    ```
    """
    return jnp.argmax(lookahead(mdp, _check_values(V, mdp, "greedy_policy")), axis=-1)


@jaxtyped(typechecker=beartype)
def policy_iteration(
    mdp: FiniteMDP, max_iters: int = 1_000, warm_start_sweeps: int = 2
) -> tuple[Int[Array, " S"], Float[Array, " S"]]:
    r"""An optimal deterministic policy and $V^*$ by policy iteration (Howard).

    Repeat, until $\pi$ is stable,

    $$\text{(a)}\ V := V^\pi = (I-\gamma P_\pi)^{-1}r_\pi,\qquad
      \text{(b)}\ \pi(s) := \arg\max_a\Big[R(s,a)+\gamma\sum_{s'}P_{sa}(s')V(s')\Big].$$

    An action is only replaced by a strictly better one (beyond a round-off tolerance),
    so the loop cannot cycle between tied actions; it ends after at most $|A|^{|S|}$
    improvements.

    CS229 starts policy iteration from any policy. This one starts from the policy greedy with
    respect to $(T^*)^k\,0$, $k$ = `warm_start_sweeps` sweeps of value iteration: the best
    $(k+1)$-step-lookahead policy. $k = 0$ is the greedy-in-$R$ start of pymdptoolbox. A sweep
    costs $O(|S|^2|A|)$ against $O(|S|^3)$ for the evaluation (a) that a better start can save;
    the result (an optimal policy and its exact value) does not depend on $k$.

    Notes A14b (policy iteration: CS229 §15.2, not written out in the notes; CS229 writes the
    improvement step with the state-reward argmax, C5).
    Runs in `jax.lax.while_loop`.

    **Arguments:** `mdp`; `max_iters` a cap on improvement steps; `warm_start_sweeps` the
    value-iteration sweeps that choose the initial policy (≥ 0).

    **Returns:** `(actions [S] int, V [S])` with `V` the value of `actions`
    (`proofs_as_tests/test_bellman.py::
    test_value_iteration_equals_enumeration_and_policy_iteration`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp = rf.gridworld_4x3()
    >>> actions, V = rf.policy_iteration(mdp)
    >>> bool(jnp.allclose(V, rf.policy_evaluation(mdp, rf.one_hot_policy(actions, 4)), atol=1e-4))
    True

    ```
    """
    check_positive_int(max_iters, "max_iters", "policy_iteration")
    check_positive_int(warm_start_sweeps, "warm_start_sweeps", "policy_iteration", 0)
    return _policy_iteration(mdp, max_iters, warm_start_sweeps)


@partial(jax.jit, static_argnames=("max_iters", "warm_start_sweeps"))
def _policy_iteration(mdp: FiniteMDP, max_iters: int, warm_start_sweeps: int) -> tuple[Array, Array]:
    dtype = mdp.P.dtype
    num_actions = mdp.num_actions
    eps = jnp.finfo(dtype).eps

    def improve(actions: Array) -> tuple[Array, Array, Array]:
        V = _policy_evaluation(mdp, jax.nn.one_hot(actions, num_actions, dtype=dtype))
        Q = lookahead(mdp, V)
        best = jnp.argmax(Q, axis=-1)
        q_best = jnp.take_along_axis(Q, best[:, None], axis=-1)[:, 0]
        q_now = jnp.take_along_axis(Q, actions[:, None], axis=-1)[:, 0]
        tie_tol = 64 * eps * (1 + jnp.max(jnp.abs(Q)))
        better = q_best > q_now + tie_tol
        return jnp.where(better, best, actions), V, jnp.any(better)

    def cond(carry: tuple[Array, Array, Array, Array]) -> Array:
        k, _, _, changed = carry
        return changed & (k < max_iters)

    def body(carry: tuple[Array, Array, Array, Array]):
        k, actions, _, _ = carry
        new_actions, V, changed = improve(actions)
        return k + 1, new_actions, V, changed

    V0 = jnp.zeros(mdp.num_states, dtype)
    V_k = jax.lax.fori_loop(0, warm_start_sweeps, lambda _, V: _optimality_sweep(mdp, V), V0)
    actions0 = greedy_policy(mdp, V_k)
    _, actions, V, _ = jax.lax.while_loop(cond, body, (jnp.asarray(0, jnp.int32), actions0, V0, jnp.asarray(True)))
    return actions, V
