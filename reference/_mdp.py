r"""Finite Markov decision processes (notes §1, 马可夫决策过程): the tuple, its dynamics, returns.

Source: CS229 main notes, ch. 15 §15.1 (Ng & Ma); the notes' items A1–A6.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from beartype import beartype
from jaxtyping import PRNGKeyArray, jaxtyped

from ._checks import (
    as_float_array,
    check_distribution,
    check_finite,
    check_gamma,
    check_interval,
    check_policy,
    check_positive_int,
    check_shape,
    check_where,
)
from ._types import Array, ArrayLike, Float, Int, ScalarLike


class FiniteMDP(eqx.Module):
    r"""A finite MDP $(S, A, \{P_{sa}\}, \gamma, R)$ with an initial state distribution $\rho_0$.

    $$s_0 \sim \rho_0,\qquad s_{t+1} \sim P_{s_t a_t},\qquad
      \text{payoff } \textstyle\sum_t \gamma^t R(s_t, a_t).$$

    Notes A1 (马可夫决策过程, 元组). CS229 ch. 15 §15.1. Correction C1: the notes write
    the reward's codomain as "R" and $P_{SA}$; here $R: S\times A\to\mathbb R$ and each
    $P_{sa}$ is a distribution over next states.

    The MDP is validated when it is built: from concrete arrays every problem raises
    `ValueError` naming the argument and the violated condition; built inside
    `jax.jit`/`jax.vmap` the same conditions are checked when the program runs, with the same
    message (tested in `proofs_as_tests/test_errors.py`).
    It is a pytree, so a batch of MDPs (leading axis on every leaf) can be `vmap`-ed over.

    **Arguments:**

    - `P`: transition probabilities `P[s, a, s'] = P_{sa}(s')`, shape `[S, A, S]`.
    - `R`: reward `R[s, a]`, shape `[S, A]`; a state reward `R[s]` of shape `[S]` (the
      notes' $R(s)$, correction C2) is broadcast over actions.
    - `gamma`: discount factor in $[0, 1)$.
    - `rho0`: initial state distribution, shape `[S]`; uniform if omitted.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> P = jnp.asarray([[[0.9, 0.1], [0.2, 0.8]], [[0.0, 1.0], [1.0, 0.0]]])  # P[s, a, s']
    >>> mdp = rf.FiniteMDP(P, jnp.asarray([[1.0, 0.0], [0.0, 2.0]]), 0.9)
    >>> mdp.num_states, mdp.num_actions
    (2, 2)

    ```
    """

    P: Float[Array, "S A S"]
    R: Float[Array, "S A"]
    gamma: Float[Array, ""]
    rho0: Float[Array, " S"]

    def __init__(
        self,
        P: ArrayLike,
        R: ArrayLike,
        gamma: ScalarLike,
        rho0: ArrayLike | None = None,
    ):
        where = "FiniteMDP"
        P_arr = as_float_array(P, "P")
        dtype = P_arr.dtype
        if P_arr.ndim != 3 or P_arr.shape[0] != P_arr.shape[2]:
            raise ValueError(
                f"{where}: `P` must have shape [S, A, S] (P[s, a, s'] = P_sa(s')), but has shape {tuple(P_arr.shape)}."
            )
        num_states, num_actions = int(P_arr.shape[0]), int(P_arr.shape[1])
        if num_states < 1 or num_actions < 1:
            raise ValueError(f"{where}: `P` needs at least one state and one action.")
        R_arr = as_float_array(R, "R", dtype)
        if R_arr.ndim == 1:
            check_shape(R_arr, (num_states,), "R", where, "[S] (a state reward)")
            R_arr = jnp.broadcast_to(R_arr[:, None], (num_states, num_actions))
        else:
            check_shape(R_arr, (num_states, num_actions), "R", where, "[S, A] or [S]")
        if rho0 is None:
            rho0_arr = jnp.full((num_states,), 1.0 / num_states, dtype=dtype)
        else:
            rho0_arr = as_float_array(rho0, "rho0", dtype)
            check_shape(rho0_arr, (num_states,), "rho0", where, "[S]")
        gamma_arr = check_gamma(gamma, where).astype(dtype)
        # Under `jit`/`vmap` these checks run when the program does (equinox.error_if).
        P_arr = check_distribution(P_arr, "P", where, "s, a")
        R_arr = check_finite(R_arr, "R", where)
        rho0_arr = check_distribution(rho0_arr, "rho0", where, "")
        self.P = P_arr
        self.R = R_arr
        self.gamma = gamma_arr
        self.rho0 = rho0_arr

    @property
    def num_states(self) -> int:
        """$|S|$."""
        return int(self.P.shape[-1])

    @property
    def num_actions(self) -> int:
        """$|A|$."""
        return int(self.P.shape[-2])


@jaxtyped(typechecker=beartype)
def random_mdp(
    key: PRNGKeyArray,
    num_states: int,
    num_actions: int,
    gamma: ScalarLike,
) -> FiniteMDP:
    r"""A random dense MDP: Dirichlet(1) transition rows, rewards uniform in $[-1, 1]$.

    $$P_{sa} \sim \mathrm{Dirichlet}(\mathbf 1_S),\quad R(s,a)\sim U[-1,1],
      \quad \rho_0 \sim \mathrm{Dirichlet}(\mathbf 1_S).$$

    Notes A1. Used by the property tests and the benchmarks. Works under `jax.vmap` over
    `key` to build a batch of MDPs.

    **Arguments:**

    - `key`: a `jax.random` key.
    - `num_states`, `num_actions`: $|S| \ge 1$, $|A| \ge 1$.
    - `gamma`: discount in $[0, 1)$.

    **Returns:** a `FiniteMDP`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp = rf.random_mdp(jax.random.key(0), 5, 3, 0.9)
    >>> mdp.P.shape, bool(jnp.allclose(mdp.P.sum(-1), 1.0))
    ((5, 3, 5), True)

    ```
    """
    where = "random_mdp"
    check_positive_int(num_states, "num_states", where)
    check_positive_int(num_actions, "num_actions", where)
    gamma = check_gamma(gamma, where)
    kp, kr, k0 = jax.random.split(key, 3)
    dtype = jnp.asarray(0.0).dtype
    P = jax.random.dirichlet(kp, jnp.ones(num_states, dtype), (num_states, num_actions))
    R = jax.random.uniform(kr, (num_states, num_actions), dtype, -1.0, 1.0)
    rho0 = jax.random.dirichlet(k0, jnp.ones(num_states, dtype))
    return FiniteMDP(P, R, gamma, rho0)


@jaxtyped(typechecker=beartype)
def one_hot_policy(actions: Int[ArrayLike, " S"], num_actions: int) -> Float[Array, "S A"]:
    r"""The stochastic form of a deterministic policy $\pi: S \to A$.

    $$\pi(a \mid s) = \mathbb 1[a = \pi(s)]$$

    Notes A6 (策略); correction C7: a deterministic policy is the one-hot special case of
    a stochastic one.

    **Arguments:**

    - `actions`: integer array `[S]`, `actions[s] = π(s)`.
    - `num_actions`: $|A|$.

    **Returns:** `pi[s, a]`, shape `[S, A]`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> rf.one_hot_policy(jnp.asarray([2, 0]), 3).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]

    ```
    """
    check_positive_int(num_actions, "num_actions", "one_hot_policy")
    acts = jnp.asarray(actions)
    acts = check_where(
        acts,
        acts,
        lambda xp, a: (a < 0) | (a >= num_actions),
        f"one_hot_policy: `actions` must lie in [0, {num_actions})",
        "actions",
    )
    return jax.nn.one_hot(acts, num_actions, dtype=jnp.asarray(0.0).dtype)


@jaxtyped(typechecker=beartype)
def discounted_return(rewards: Float[ArrayLike, "*batch T"], gamma: ScalarLike) -> Float[Array, "*batch"]:
    r"""The discounted payoff of one reward sequence.

    $$G = R(s_0, a_0) + \gamma R(s_1, a_1) + \gamma^2 R(s_2, a_2) + \cdots
        = \sum_{t=0}^{T-1} \gamma^t r_t$$

    Notes A3 (action reward) and A4 (state reward $R(s_t)$, the same sum). CS229 §15.1.

    **Arguments:**

    - `rewards`: `[..., T]`, the rewards along the last axis.
    - `gamma`: discount in $[0, 1]$ (1 is allowed here: a finite sum).

    **Returns:** `[...]`. Proved against the exact $J(\pi)$ in
    `proofs_as_tests/test_values.py::test_expected_return_matches_monte_carlo`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> float(rf.discounted_return(jnp.asarray([1.0, 1.0, 1.0]), 0.5))  # 1 + 0.5 + 0.25
    1.75

    ```
    """
    r = jnp.asarray(rewards)
    g = check_interval(gamma, "gamma", "discounted_return", 0.0, 1.0).astype(r.dtype)
    r = check_finite(r, "rewards", "discounted_return")
    discounts = g ** jnp.arange(r.shape[-1], dtype=r.dtype)
    return jnp.sum(r * discounts, axis=-1)


@jaxtyped(typechecker=beartype)
def sample_trajectory(
    key: PRNGKeyArray,
    mdp: FiniteMDP,
    pi: Float[ArrayLike, "S A"],
    horizon: int,
) -> tuple[Int[Array, " T"], Int[Array, " T"], Float[Array, " T"]]:
    r"""Sample $s_0 \xrightarrow{a_0} s_1 \xrightarrow{a_1} \cdots$ for `horizon` steps.

    $$s_0\sim\rho_0,\quad a_t\sim\pi(\cdot\mid s_t),\quad r_t = R(s_t,a_t),
      \quad s_{t+1}\sim P_{s_t a_t}.$$

    Notes A2 (MDP 的动态过程). CS229 §15.1. Written with `jax.lax.scan`; `vmap` over keys
    for many rollouts.

    **Arguments:**

    - `key`: a `jax.random` key.
    - `mdp`: the MDP.
    - `pi`: the policy `pi[s, a] = π(a|s)`.
    - `horizon`: the number of steps $T \ge 1$ (static).

    **Returns:** `(states [T], actions [T], rewards [T])`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp, pi = rf.gridworld_4x3(), jnp.full((12, 4), 0.25)
    >>> states, actions, rewards = rf.sample_trajectory(jax.random.key(0), mdp, pi, 10)
    >>> states.shape, int(states[0]) == rf.GRIDWORLD_CELLS.index((1, 1))  # starts at (1, 1)
    ((10,), True)

    ```
    """
    check_positive_int(horizon, "horizon", "sample_trajectory")
    pi = check_policy(pi, mdp.num_states, mdp.num_actions, "sample_trajectory")
    key0, key_steps = jax.random.split(key)
    s0 = jax.random.categorical(key0, jnp.log(mdp.rho0))
    log_pi = jnp.log(pi)
    log_P = jnp.log(mdp.P)

    def step(s: Array, k: Array) -> tuple[Array, tuple[Array, Array, Array]]:
        ka, ks = jax.random.split(k)
        a = jax.random.categorical(ka, log_pi[s])
        s_next = jax.random.categorical(ks, log_P[s, a])
        return s_next, (s, a, mdp.R[s, a])

    _, (states, actions, rewards) = jax.lax.scan(step, s0, jax.random.split(key_steps, horizon))
    return states, actions, rewards


GRIDWORLD_CELLS: tuple[tuple[int, int], ...] = tuple(
    (c, r) for r in (3, 2, 1) for c in (1, 2, 3, 4) if (c, r) != (2, 2)
)
"""The 11 cells `(column, row)` of `gridworld_4x3`, in state order (top row first, left to
right; the wall (2, 2) is skipped); state 11 is the absorbing end state."""

GRIDWORLD_ACTIONS: tuple[str, ...] = ("N", "E", "S", "W")
"""The actions of `gridworld_4x3`, in order."""


def gridworld_4x3(living_reward: float = -0.02, gamma: float = 0.99, slip: float = 0.1) -> FiniteMDP:
    r"""The 4×3 gridworld of CS229 ch. 15 and Russell & Norvig, ch. 17, as a `FiniteMDP`.

    $$P(\text{intended}) = 1 - 2\,\text{slip},\qquad P(\text{each side}) = \text{slip},$$

    $$R(s) = \begin{cases}\pm1 & \text{terminal cells } (4,3), (4,2)\\
      \text{living\_reward} & \text{otherwise}\end{cases}$$

    Columns 1–4, rows 1–3 from the bottom-left; a wall at (2, 2). A move into the wall or
    off the grid stays put. A terminal cell pays its reward (a state reward, notes A4) and
    then moves to an absorbing reward-free end state (state 11). The start is (1, 1).
    With the defaults (CS229's $R = -0.02$, $\gamma = 0.99$), $V^*$ rounds to CS229's
    figure (`proofs_as_tests/test_bellman.py::test_cs229_gridworld_optimal_values`).

    Notes A1 (the running example of CS229 §15.1).

    **Arguments:**

    - `living_reward`: the reward of every non-terminal cell.
    - `gamma`: the discount.
    - `slip`: the probability of slipping to each side, in $[0, 1/2]$.

    **Returns:** a `FiniteMDP` with 12 states (`GRIDWORLD_CELLS` + end) and 4 actions
    (`GRIDWORLD_ACTIONS`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> mdp = rf.gridworld_4x3()
    >>> V = rf.value_iteration(mdp)
    >>> round(float(V[rf.GRIDWORLD_CELLS.index((3, 3))]), 2)  # CS229's figure: 0.93 beside the +1 exit
    0.93

    ```
    """
    check_interval(slip, "slip", "gridworld_4x3", 0.0, 0.5)
    index = {cell: i for i, cell in enumerate(GRIDWORLD_CELLS)}
    end = len(GRIDWORLD_CELLS)
    moves = {"N": (0, 1), "E": (1, 0), "S": (0, -1), "W": (-1, 0)}
    sides = {"N": ("E", "W"), "S": ("E", "W"), "E": ("N", "S"), "W": ("N", "S")}
    terminals = {(4, 3): 1.0, (4, 2): -1.0}
    S, A = end + 1, len(GRIDWORLD_ACTIONS)
    P = np.zeros((S, A, S))
    R = np.zeros(S)

    def move(cell: tuple[int, int], name: str) -> tuple[int, int]:
        c, r = cell[0] + moves[name][0], cell[1] + moves[name][1]
        inside = 1 <= c <= 4 and 1 <= r <= 3 and (c, r) != (2, 2)
        return (c, r) if inside else cell

    for cell, s in index.items():
        if cell in terminals:
            R[s] = terminals[cell]
            P[s, :, end] = 1.0
            continue
        R[s] = living_reward
        for a, name in enumerate(GRIDWORLD_ACTIONS):
            for outcome, p in (
                (name, 1 - 2 * slip),
                (sides[name][0], slip),
                (sides[name][1], slip),
            ):
                P[s, a, index[move(cell, outcome)]] += p
    P[end, :, end] = 1.0
    rho0 = np.zeros(S)
    rho0[index[(1, 1)]] = 1.0
    return FiniteMDP(P, R, gamma, rho0)
