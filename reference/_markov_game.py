r"""Cooperative Markov games (notes §4, 信赖域算法在MARL中的应用).

Joint policies, the multi-agent action values and advantages, the per-agent surrogate and
Lemma 2's lower bound.

Source: Kuba et al. (2022), "Trust Region Policy Optimisation in Multi-Agent Reinforcement
Learning", ICLR, §2–§3 (Definition 1, Lemma 1, Definition 2, Lemma 2). The notes' items A20,
A38–A44. Joint actions are enumerated as tensor axes `[S, A1, …, An]`, so exact computation is
limited by memory: `P` has $S^2\prod_i A_i$ entries (8 bytes each in float64).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from beartype import beartype
from jaxtyping import PRNGKeyArray, jaxtyped

from ._checks import (
    as_float_array,
    check_delta,
    check_distribution,
    check_finite,
    check_gamma,
    check_positive_int,
    check_shape,
    check_where,
)
from ._mdp import FiniteMDP
from ._trust_region import kl_divergence, penalty_from_advantages
from ._types import Array, ArrayLike, Float, ScalarLike
from ._values import action_values, discounted_visitation, expected_return

_LETTERS = string.ascii_letters.replace("s", "").replace("t", "")


class CooperativeGame(eqx.Module):
    r"""A fully cooperative Markov game $\langle \mathcal N, S, \{A^i\}, P, r, \gamma, \rho_0\rangle$.

    $$s_{t+1}\sim P(\cdot\mid s_t,\mathbf a_t),\qquad r_t = r(s_t,\mathbf a_t),\qquad
      \mathbf a_t = (a^1_t,\dots,a^n_t),\ a^i_t\sim\pi^i(\cdot\mid s_t)$$

    with one reward shared by all agents. Notes A18 (假定所有智能体共享同样的奖励函数); Kuba et
    al. (2022) §2.1. Validated like `FiniteMDP`: eagerly with `ValueError`, inside `jit`/`vmap` when
    the program runs.

    **Arguments:**

    - `P`: transitions `P[s, a1, …, an, s']`, shape `[S, A1, …, An, S]`.
    - `R`: shared reward `R[s, a1, …, an]`, shape `[S, A1, …, An]` (or a state reward `[S]`).
    - `gamma`: discount in $[0, 1)$.
    - `rho0`: initial distribution `[S]`; uniform if omitted.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> P = jnp.ones((1, 2, 2, 1))  # one state, two agents with two actions each
    >>> game = rf.CooperativeGame(P, jnp.asarray([[[1.0, 0.0], [0.0, 1.0]]]), 0.0)
    >>> game.num_agents, game.action_sizes
    (2, (2, 2))

    ```
    """

    P: Array
    R: Array
    gamma: Array
    rho0: Array

    def __init__(self, P: ArrayLike, R: ArrayLike, gamma: ScalarLike, rho0: ArrayLike | None = None):
        where = "CooperativeGame"
        P_arr = as_float_array(P, "P")
        if P_arr.ndim < 3 or P_arr.shape[0] != P_arr.shape[-1]:
            raise ValueError(
                f"{where}: `P` must have shape [S, A1, …, An, S] (at least one agent), but has shape "
                f"{tuple(P_arr.shape)}."
            )
        S = int(P_arr.shape[0])
        sizes = tuple(int(a) for a in P_arr.shape[1:-1])
        R_arr = as_float_array(R, "R", P_arr.dtype)
        if R_arr.ndim == 1:
            check_shape(R_arr, (S,), "R", where, "[S] (a state reward)")
            R_arr = jnp.broadcast_to(R_arr.reshape((S,) + (1,) * len(sizes)), (S, *sizes))
        else:
            check_shape(R_arr, (S, *sizes), "R", where, "[S, A1, …, An] (the transitions' joint actions)")
        if rho0 is None:
            rho0_arr = jnp.full((S,), 1.0 / S, dtype=P_arr.dtype)
        else:
            rho0_arr = as_float_array(rho0, "rho0", P_arr.dtype)
            check_shape(rho0_arr, (S,), "rho0", where, "[S]")
        # Under `jit`/`vmap` these checks run when the program does (equinox.error_if).
        gamma_arr = check_gamma(gamma, where).astype(P_arr.dtype)
        P_arr = check_distribution(P_arr, "P", where, "s, a1, …, an")
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
    def action_sizes(self) -> tuple[int, ...]:
        r"""$(|A^1|, \dots, |A^n|)$."""
        return tuple(int(a) for a in self.P.shape[-1 - self.num_agents : -1])

    @property
    def num_agents(self) -> int:
        """$n$."""
        return self.P.ndim - 2


@jaxtyped(typechecker=beartype)
def random_game(key: PRNGKeyArray, num_states: int, action_sizes: Sequence[int], gamma: ScalarLike) -> CooperativeGame:
    r"""A random dense cooperative game: Dirichlet(1) transitions, rewards uniform in $[-1, 1]$.

    $$P(\cdot|s,\mathbf a)\sim\mathrm{Dirichlet}(\mathbf 1_S),\quad r(s,\mathbf a)\sim U[-1,1],\quad
      \rho_0\sim\mathrm{Dirichlet}(\mathbf 1_S)$$

    Notes A18. For property tests and benchmarks; `vmap` over `key` for a batch of games.

    **Arguments:** `key`; `num_states` $\ge 1$; `action_sizes` $(A_1,\dots,A_n)$, each $\ge 1$;
    `gamma` in $[0, 1)$.

    **Returns:** a `CooperativeGame`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> game = rf.random_game(jax.random.key(0), 3, (2, 3), 0.9)
    >>> pis = tuple(jnp.full((3, a), 1 / a) for a in game.action_sizes)
    >>> game.num_agents, game.action_sizes, game.P.shape
    (2, (2, 3), (3, 2, 3, 3))

    ```
    """
    where = "random_game"
    check_positive_int(num_states, "num_states", where)
    if len(action_sizes) < 1:
        raise ValueError(f"{where}: `action_sizes` must name at least one agent.")
    for i, a in enumerate(action_sizes):
        check_positive_int(a, f"action_sizes[{i}]", where)
    gamma = check_gamma(gamma, where)
    sizes = tuple(int(a) for a in action_sizes)
    kp, kr, k0 = jax.random.split(key, 3)
    dtype = jnp.asarray(0.0).dtype
    P = jax.random.dirichlet(kp, jnp.ones(num_states, dtype), (num_states, *sizes))
    R = jax.random.uniform(kr, (num_states, *sizes), dtype, -1.0, 1.0)
    rho0 = jax.random.dirichlet(k0, jnp.ones(num_states, dtype))
    return CooperativeGame(P, R, gamma, rho0)


def _num_agents(game: CooperativeGame) -> int:
    return game.P.ndim - 2


def _sizes(game: CooperativeGame) -> tuple[int, ...]:
    return tuple(int(a) for a in game.P.shape[1:-1])


def check_policies(
    game: CooperativeGame, policies: Sequence[ArrayLike], where: str, name: str = "policies"
) -> tuple[Array, ...]:
    """Validate a tuple of per-agent policies `pi[i]` of shape `[S, A_i]`."""
    n, sizes, S = _num_agents(game), _sizes(game), game.P.shape[0]
    if not isinstance(policies, Sequence) or isinstance(policies, str) or hasattr(policies, "shape"):
        raise ValueError(f"{where}: `{name}` must be a tuple of {n} per-agent policies `[S, A_i]`.")
    if len(policies) != n:
        raise ValueError(f"{where}: `{name}` must hold one policy per agent ({n}), but holds {len(policies)}.")
    out = []
    for i, pi in enumerate(policies):
        arr = as_float_array(pi, f"{name}[{i}]", game.P.dtype)
        check_shape(arr, (S, sizes[i]), f"{name}[{i}]", where, f"[S, A_{i}]")
        out.append(check_distribution(arr, f"{name}[{i}]", where, "s"))
    return tuple(out)


def check_agents(game: CooperativeGame, agents: Sequence[int], where: str, name: str = "agents") -> tuple[int, ...]:
    """Validate an ordered agent subset: distinct indices in range."""
    n = _num_agents(game)
    try:
        out = tuple(int(i) for i in agents)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: `{name}` must be a tuple of agent indices, but is {agents!r}.") from None
    if any(i < 0 or i >= n for i in out):
        raise ValueError(f"{where}: `{name}` = {out} has an agent index out of range [0, {n}).")
    if len(set(out)) != len(out):
        raise ValueError(f"{where}: `{name}` = {out} repeats an agent.")
    return out


@jaxtyped(typechecker=beartype)
def joint_action_mdp(game: CooperativeGame) -> FiniteMDP:
    r"""The game as a single-agent `FiniteMDP` over flattened joint actions.

    $$\tilde P[s, \mathbf a, s'] = P(s'|s,\mathbf a),\qquad \tilde R[s,\mathbf a] = r(s,\mathbf a),
      \qquad \mathbf a = (a^1,\dots,a^n)\ \text{in row-major order}$$

    Notes A15–A19 for joint actions: with it every §1–§3 function applies to the game (a joint
    policy `joint_policy(policies).reshape(S, -1)` is a policy of this MDP).

    **Arguments:** `game`.

    **Returns:** a `FiniteMDP` with $\prod_i A_i$ actions.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> game = rf.random_game(jax.random.key(0), 3, (2, 3), 0.9)
    >>> pis = tuple(jnp.full((3, a), 1 / a) for a in game.action_sizes)
    >>> mdp = rf.joint_action_mdp(game)
    >>> mdp.num_actions  # 2 × 3 joint actions
    6

    ```
    """
    S = game.P.shape[0]
    return FiniteMDP(game.P.reshape(S, -1, S), game.R.reshape(S, -1), game.gamma, game.rho0)


def joint_policy_unchecked(policies: Sequence[Array]) -> Array:
    n = len(policies)
    letters = _LETTERS[:n]
    spec = ",".join(f"s{c}" for c in letters) + "->s" + letters
    return jnp.einsum(spec, *policies)


@jaxtyped(typechecker=beartype)
def joint_policy(policies: Sequence[Float[ArrayLike, "S _"]]) -> Float[Array, " S *A"]:
    r"""The product (joint) policy of independent per-agent policies.

    $$\boldsymbol\pi(\mathbf a\mid s) = \prod_{i=1}^n \pi^i(a^i\mid s)$$

    Notes A18 ($\mathbf a\sim\boldsymbol\pi$). Kuba et al. (2022) §2.1.

    **Arguments:** `policies`: a tuple of `[S, A_i]` distributions.

    **Returns:** `[S, A1, …, An]`. Its KL is the sum of per-agent KLs
    (`proofs_as_tests/test_markov_game.py::test_kl_of_product_policies_is_sum`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> joint = rf.joint_policy((jnp.asarray([[0.5, 0.5]]), jnp.asarray([[0.2, 0.8]])))
    >>> [[round(x, 4) for x in row] for row in joint[0].tolist()]  # joint[s, a1, a2] = π¹(a1|s)·π²(a2|s)
    [[0.1, 0.4], [0.1, 0.4]]

    ```
    """
    arrs = [as_float_array(p, f"policies[{i}]") for i, p in enumerate(policies)]
    if not arrs:
        raise ValueError("joint_policy: `policies` must hold at least one policy.")
    for i, a in enumerate(arrs):
        if a.ndim != 2 or a.shape[0] != arrs[0].shape[0]:
            raise ValueError(f"joint_policy: `policies[{i}]` must have shape [S, A_{i}] with a common S.")
    arrs = [check_distribution(a, f"policies[{i}]", "joint_policy", "s") for i, a in enumerate(arrs)]
    return joint_policy_unchecked(arrs)


def _joint_Q(game: CooperativeGame, policies: tuple[Array, ...]) -> Array:
    S = game.P.shape[0]
    mdp = as_mdp_unchecked(game)
    return action_values(mdp, joint_policy_unchecked(policies).reshape(S, -1)).reshape(game.R.shape)


def as_mdp_unchecked(game: CooperativeGame) -> FiniteMDP:
    """The joint-action MDP without re-validating (the game was validated when built)."""
    S = game.P.shape[0]
    mdp = object.__new__(FiniteMDP)
    object.__setattr__(mdp, "P", game.P.reshape(S, -1, S))
    object.__setattr__(mdp, "R", game.R.reshape(S, -1))
    object.__setattr__(mdp, "gamma", game.gamma)
    object.__setattr__(mdp, "rho0", game.rho0)
    return mdp


def contract_agents(Q: Array, weights: dict[int, Array], keep: tuple[int, ...]) -> Array:
    """Contract the agent axes of `Q[s, a1..an]` with per-agent weights.

    All agents not in `keep` are contracted; the result is `[s, a_keep[0], …]` in `keep`'s order.
    """
    n = Q.ndim - 1
    letters = _LETTERS[:n]
    operands = [Q]
    specs = ["s" + letters]
    for i in range(n):
        if i not in keep:
            operands.append(weights[i])
            specs.append("s" + letters[i])
    out = "s" + "".join(letters[i] for i in keep)
    return jnp.einsum(",".join(specs) + "->" + out, *operands)


@jaxtyped(typechecker=beartype)
def marginal_action_values(
    game: CooperativeGame, policies: Sequence[Float[ArrayLike, "S _"]], agents: Sequence[int]
) -> Float[Array, " S *Am"]:
    r"""The multi-agent action value $Q^{i_{1:m}}_\pi$ of an ordered agent subset.

    $$Q^{i_{1:m}}_\pi(s,\mathbf a^{i_{1:m}}) = \mathbb E_{\mathbf a^{-i_{1:m}}\sim\pi^{-i_{1:m}}}
      \big[Q_\pi(s,\mathbf a^{i_{1:m}},\mathbf a^{-i_{1:m}})\big],\qquad Q^{\emptyset}_\pi = V_\pi,
      \quad Q^{\mathcal N}_\pi = Q_\pi$$

    Kuba et al. (2022) Definition 1 / eq. (1). Notes A20; correction C9: the notes use
    $Q^{i_{1:m}}$ without defining it. Computed by contracting the joint $Q_\pi$ with the other
    agents' policies (one einsum), axes in the order of `agents`.

    **Arguments:**

    - `game`; `policies`: the joint policy as a tuple `pi[i]` of `[S, A_i]`.
    - `agents`: an ordered tuple of distinct agent indices ($()$ gives $V_\pi$).

    **Returns:** `[S, A_{i1}, …, A_{im}]`. Checked against brute-force enumeration in
    `proofs_as_tests/test_markov_game.py::test_marginal_values_match_enumeration`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> game = rf.random_game(jax.random.key(0), 3, (2, 3), 0.9)
    >>> pis = tuple(jnp.full((3, a), 1 / a) for a in game.action_sizes)
    >>> V = rf.marginal_action_values(game, pis, ())  # Q^∅ = V
    >>> V_joint = rf.state_values(rf.joint_action_mdp(game), rf.joint_policy(pis).reshape(3, -1))
    >>> bool(jnp.allclose(V, V_joint, atol=1e-5))
    True

    ```
    """
    where = "marginal_action_values"
    pis = check_policies(game, policies, where)
    keep = check_agents(game, agents, where)
    Q = _joint_Q(game, pis)
    return contract_agents(Q, dict(enumerate(pis)), keep)


@jaxtyped(typechecker=beartype)
def multi_agent_advantage(
    game: CooperativeGame,
    policies: Sequence[Float[ArrayLike, "S _"]],
    prior_agents: Sequence[int],
    agents: Sequence[int],
) -> Float[Array, " S *Ajm"]:
    r"""The multi-agent advantage of `agents` given the actions of `prior_agents`.

    $$A^{i_{1:m}}_\pi(s,\mathbf a^{j_{1:k}},\mathbf a^{i_{1:m}}) =
      Q^{j_{1:k},i_{1:m}}_\pi(s,\mathbf a^{j_{1:k}},\mathbf a^{i_{1:m}}) -
      Q^{j_{1:k}}_\pi(s,\mathbf a^{j_{1:k}})$$

    Kuba et al. (2022) Definition 1, eq. (1). Notes A20, A39 (with $j_{1:k} = i_{1:j-1}$ the
    local advantage of Lemma 1; correction C16: the notes' $Q_\pi(s,\mathbf a(\{i_{1:j}\}))$ means
    $Q^{i_{1:j}}_\pi$).

    **Arguments:**

    - `game`; `policies`: a tuple `pi[i]` of `[S, A_i]`.
    - `prior_agents` $j_{1:k}$ and `agents` $i_{1:m}$: disjoint ordered tuples of distinct agents.

    **Returns:** `[S, A_{j1}, …, A_{jk}, A_{i1}, …, A_{im}]`. The decomposition of Lemma 1 is
    proved in `proofs_as_tests/test_markov_game.py::test_advantage_decomposition`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> game = rf.random_game(jax.random.key(0), 3, (2, 3), 0.9)
    >>> pis = tuple(jnp.full((3, a), 1 / a) for a in game.action_sizes)
    >>> A1 = rf.multi_agent_advantage(game, pis, (), (0,))
    >>> bool(jnp.allclose((pis[0] * A1).sum(-1), 0.0, atol=1e-5))  # E_{a ~ π^1} A^1 = 0
    True

    ```
    """
    where = "multi_agent_advantage"
    pis = check_policies(game, policies, where)
    prior = check_agents(game, prior_agents, where, "prior_agents")
    keep = check_agents(game, agents, where)
    if set(prior) & set(keep):
        raise ValueError(
            f"{where}: `prior_agents` {prior} and `agents` {keep} must be disjoint, "
            f"but share {sorted(set(prior) & set(keep))}."
        )
    Q = _joint_Q(game, pis)
    weights = dict(enumerate(pis))
    both = contract_agents(Q, weights, prior + keep)
    base = contract_agents(Q, weights, prior)
    return both - base.reshape(base.shape + (1,) * len(keep))


def _expected_local_advantage(Q: Array, old: tuple[Array, ...], new: dict[int, Array], agent: int) -> Array:
    """ā(s, a) = E_{a^{prior} ∼ π̄}[A^{agent}(s, a^{prior}, a)].

    Contract Q with the new policies of the prior agents (keys of `new`) and the old ones of the
    rest, minus its π^{agent} average.
    """
    weights = {i: new.get(i, old[i]) for i in range(len(old))}
    q = contract_agents(Q, weights, (agent,))
    return q - jnp.sum(old[agent] * q, axis=-1, keepdims=True)


@jaxtyped(typechecker=beartype)
def multi_agent_surrogate(
    game: CooperativeGame,
    policies: Sequence[Float[ArrayLike, "S _"]],
    new_policies: Sequence[Float[ArrayLike, "S _"]],
    agents: Sequence[int],
) -> Float[Array, ""]:
    r"""Agent $i_m$'s surrogate $L^{i_{1:m}}_\pi(\bar\pi^{i_{1:m-1}},\hat\pi^{i_m})$ (Definition 2).

    $$L^{i_{1:m}}_\pi(\bar\pi^{i_{1:m-1}},\hat\pi^{i_m}) = \mathbb E_{s\sim\rho_\pi,\
      \mathbf a^{i_{1:m-1}}\sim\bar\pi^{i_{1:m-1}},\ a^{i_m}\sim\hat\pi^{i_m}}
      \big[A^{i_m}_\pi(s,\mathbf a^{i_{1:m-1}},a^{i_m})\big]$$

    with the unnormalised $\rho_\pi$. Kuba et al. (2022) Definition 2. Notes A41 (correction
    C18: "πρ_π" is $\rho_\pi$). $\bar\pi^{i_j}$ and $\hat\pi^{i_m}$ are read from
    `new_policies`; it is zero when $\hat\pi^{i_m} = \pi^{i_m}$ (A42).

    **Arguments:** `game`; `policies` ($\pi$); `new_policies` (supplying $\bar\pi$, $\hat\pi$);
    `agents` $= (i_1,\dots,i_m)$, $m\ge1$.

    **Returns:** a scalar (`proofs_as_tests/test_markov_game.py::test_surrogate_splits_across_agents`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> game = rf.random_game(jax.random.key(0), 3, (2, 3), 0.9)
    >>> pis = tuple(jnp.full((3, a), 1 / a) for a in game.action_sizes)
    >>> abs(float(rf.multi_agent_surrogate(game, pis, pis, (0, 1)))) < 1e-5  # eq. (6): zero at the old policy
    True

    ```
    """
    where = "multi_agent_surrogate"
    pis = check_policies(game, policies, where)
    new = check_policies(game, new_policies, where, "new_policies")
    order = check_agents(game, agents, where)
    if not order:
        raise ValueError(f"{where}: `agents` must name at least one agent (i_1, …, i_m).")
    Q = _joint_Q(game, pis)
    a_bar = _expected_local_advantage(Q, pis, {i: new[i] for i in order[:-1]}, order[-1])
    rho = discounted_visitation(as_mdp_unchecked(game), joint_policy_unchecked(pis).reshape(game.P.shape[0], -1))
    return jnp.dot(rho, jnp.sum(new[order[-1]] * a_bar, axis=-1))


@jaxtyped(typechecker=beartype)
def multi_agent_lower_bound(
    game: CooperativeGame,
    policies: Sequence[Float[ArrayLike, "S _"]],
    new_policies: Sequence[Float[ArrayLike, "S _"]],
    order: Sequence[int],
) -> Float[Array, ""]:
    r"""The right side of Lemma 2, the multi-agent lower bound on $J(\bar\pi)$.

    $$J(\bar\pi) \ge J(\pi) + \sum_{m=1}^n\Big[L^{i_{1:m}}_\pi(\bar\pi^{i_{1:m-1}},\bar\pi^{i_m})
      - C\,D^{\max}_{KL}(\pi^{i_m},\bar\pi^{i_m})\Big],$$

    $$C = \frac{4\gamma\max_{s,\mathbf a}|A_\pi(s,\mathbf a)|}{(1-\gamma)^2}$$

    for any ordering $i_{1:n}$ of all agents. Kuba et al. (2022) Lemma 2 (JMLR Lemma 6).
    Notes A44a (correction C19: the notes omit it; only an image stands in).

    **Arguments:** `game`; `policies` ($\pi$); `new_policies` ($\bar\pi$); `order`: a permutation
    of all agents.

    **Returns:** the scalar right side
    (`proofs_as_tests/test_markov_game.py::test_multi_agent_lower_bound_holds`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> game = rf.random_game(jax.random.key(0), 3, (2, 3), 0.9)
    >>> pis = tuple(jnp.full((3, a), 1 / a) for a in game.action_sizes)
    >>> new = (jnp.full((3, 2), 0.5).at[:, 0].set(0.6).at[:, 1].set(0.4), pis[1])
    >>> J_new = rf.expected_return(rf.joint_action_mdp(game), rf.joint_policy(new).reshape(3, -1))
    >>> bool(J_new >= rf.multi_agent_lower_bound(game, pis, new, (0, 1)) - 1e-5)
    True

    ```
    """
    where = "multi_agent_lower_bound"
    pis = check_policies(game, policies, where)
    new = check_policies(game, new_policies, where, "new_policies")
    perm = check_agents(game, order, where, "order")
    if len(perm) != _num_agents(game):
        raise ValueError(f"{where}: `order` must be a permutation of all {_num_agents(game)} agents, but is {perm}.")
    Q = _joint_Q(game, pis)
    V = contract_agents(Q, dict(enumerate(pis)), ())  # Q^∅ = V
    rho = discounted_visitation(as_mdp_unchecked(game), joint_policy_unchecked(pis).reshape(game.P.shape[0], -1))
    C = penalty_from_advantages(game.gamma, Q - V.reshape(V.shape + (1,) * _num_agents(game)))
    total = jnp.dot(game.rho0, V)
    for m, agent in enumerate(perm):
        a_bar = _expected_local_advantage(Q, pis, {i: new[i] for i in perm[:m]}, agent)
        L_m = jnp.dot(rho, jnp.sum(new[agent] * a_bar, axis=-1))
        D_m = jnp.max(kl_divergence(pis[agent], new[agent]))
        total = total + L_m - jnp.where(C > 0, C * D_m, 0.0)
    return total


def _induced_mdp(game: CooperativeGame, pis: tuple[Array, ...], agent: int) -> FiniteMDP:
    """Agent `agent`'s MDP when the others play `pis`: P and R averaged over their actions."""
    n = len(pis)
    weights = dict(enumerate(pis))
    letters = _LETTERS[:n]
    ops_P, specs_P = [game.P], ["s" + letters + "t"]
    ops_R, specs_R = [game.R], ["s" + letters]
    for i in range(n):
        if i != agent:
            ops_P.append(weights[i])
            specs_P.append("s" + letters[i])
            ops_R.append(weights[i])
            specs_R.append("s" + letters[i])
    P = jnp.einsum(",".join(specs_P) + "->s" + letters[agent] + "t", *ops_P)
    R = jnp.einsum(",".join(specs_R) + "->s" + letters[agent], *ops_R)
    mdp = object.__new__(FiniteMDP)
    for field, value in (("P", P), ("R", R), ("gamma", game.gamma), ("rho0", game.rho0)):
        object.__setattr__(mdp, field, value)
    return mdp


@jaxtyped(typechecker=beartype)
def nash_gap(game: CooperativeGame, policies: Sequence[Float[ArrayLike, "S _"]]) -> Float[Array, ""]:
    r"""How far a joint policy is from a Nash equilibrium: the best unilateral gain of any agent.

    $$\mathrm{gap}(\pi) = \max_i\Big(\max_{\pi'^i}J(\pi'^i,\pi^{-i}) - J(\pi)\Big) \ge 0,\qquad
      \mathrm{gap}(\pi) = 0 \iff \pi \text{ is a Nash equilibrium}$$

    Each best response is $\rho_0^\top V^*$ of agent $i$'s induced MDP (the others' policies
    averaged into $P$ and $r$), solved exactly by policy iteration. Kuba et al. (2022)
    Definition 3. Notes A44d.

    **Arguments:** `game`; `policies`: a tuple `pi[i]` of `[S, A_i]`.

    **Returns:** the scalar gap (`proofs_as_tests/test_heterogeneous_agent.py::
    test_fixed_point_of_algorithm_1_is_a_nash_equilibrium`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> game = rf.parameter_sharing_game(2)
    >>> optimum = (jnp.asarray([[1.0, 0.0]]), jnp.asarray([[0.0, 1.0]]))  # actions (0, 1): reward 1
    >>> float(rf.nash_gap(game, optimum))
    0.0

    ```
    """
    from ._bellman import policy_iteration

    pis = check_policies(game, policies, "nash_gap")
    S = game.P.shape[0]
    J = expected_return(as_mdp_unchecked(game), joint_policy_unchecked(pis).reshape(S, -1))
    gains = []
    for i in range(len(pis)):
        _, V = policy_iteration(_induced_mdp(game, pis, i))
        gains.append(jnp.dot(game.rho0, V) - J)
    return jnp.maximum(jnp.max(jnp.stack(gains)), 0.0)


@jaxtyped(typechecker=beartype)
def parameter_sharing_game(num_agents: int, gamma: ScalarLike = 0.0) -> CooperativeGame:
    r"""Proposition 1's game, where the best shared policy reaches only $2/2^n$ of the optimum.

    One state, $n$ (even) agents with actions $\{0, 1\}$, and

    $$r(\mathbf a) = \begin{cases}1 & \mathbf a = (0^{n/2},1^{n/2})\ \text{or}\ (1^{n/2},0^{n/2})\\
      0 & \text{otherwise}\end{cases},\qquad \frac{J^*_{\text{share}}}{J^*} = \frac{2}{2^n}.$$

    A shared policy is one Bernoulli($p$): $J_{\text{share}}(p) = 2(p(1-p))^{n/2}/(1-\gamma)$,
    maximal at $p=\frac12$; a heterogeneous deterministic policy gets $1/(1-\gamma)$. Kuba et al.
    (2022) Proposition 1 (§2.3). Notes A37 (MAPPO 有致命的缺陷).

    **Arguments:** `num_agents`: even, $\ge 2$; `gamma`: discount (0: a one-shot game).

    **Returns:** a `CooperativeGame` with one state and action sizes $(2,\dots,2)$
    (`proofs_as_tests/test_heterogeneous_agent.py::test_parameter_sharing_ratio`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> game = rf.parameter_sharing_game(4)
    >>> shared = (jnp.asarray([[0.5, 0.5]]),) * 4  # the best shared policy
    >>> float(rf.expected_return(rf.joint_action_mdp(game), rf.joint_policy(shared).reshape(1, -1)))  # 2/2^4
    0.125

    ```
    """
    where = "parameter_sharing_game"
    check_positive_int(num_agents, "num_agents", where, minimum=2)
    if num_agents % 2:
        raise ValueError(f"{where}: `num_agents` must be even, but is {num_agents}.")
    n = num_agents
    R = np.zeros((1,) + (2,) * n)
    half = n // 2
    R[(0,) + (0,) * half + (1,) * half] = 1.0
    R[(0,) + (1,) * half + (0,) * half] = 1.0
    P = np.ones((1,) + (2,) * n + (1,))
    return CooperativeGame(P, R, gamma, np.ones(1))


class SimultaneousUpdateExample(NamedTuple):
    """What `simultaneous_update_counterexample` returns (means of the two agents' Gaussians)."""

    old_means: Float[Array, " 2"]
    r"""$(\mu^1, \mu^2)$ before the update."""
    simultaneous_means: Float[Array, " 2"]
    """Both agents step at once, each against the other's OLD policy."""
    sequential_means: Float[Array, " 2"]
    """Agent 1 steps, then agent 2 against agent 1's NEW policy (Algorithm 1's order)."""
    old_return: Float[Array, ""]
    r"""$J = \mu^1\mu^2$ before the update."""
    simultaneous_return: Float[Array, ""]
    """$J$ after the simultaneous update (lower than before)."""
    sequential_return: Float[Array, ""]
    """$J$ after the sequential update (higher than before)."""


@jaxtyped(typechecker=beartype)
def simultaneous_update_counterexample(
    means: Float[ArrayLike, " 2"] | tuple[float, float] = (-0.25, 0.25), delta: ScalarLike = 0.5
) -> SimultaneousUpdateExample:
    r"""Kuba et al.'s Figure 1: independent trust-region steps that LOWER the joint return.

    Two agents, reward $r(a^1, a^2) = a^1 a^2$, policies $\mathcal N(\mu^i, 1)$, so
    $J = \mathbb E[a^1a^2] = \mu^1\mu^2$. Each agent takes the exact trust-region step

    $$\mu^i_{\text{new}} = \arg\max_{\mu}\ \mu\,\mu^{j}\quad\text{s.t.}\quad
      D_{KL}\big(\mathcal N(\mu^i,1)\,\|\,\mathcal N(\mu,1)\big) = \tfrac12(\mu-\mu^i)^2 \le \delta,$$

    $$\mu^i_{\text{new}} = \mu^i + \operatorname{sign}(\mu^j)\sqrt{2\delta},$$

    where $\mu^j$ is the other agent's mean: its OLD one when both step at once (simultaneous,
    independent learners), its NEW one when agent 2 steps after agent 1 (the sequential scheme of
    Algorithm 1). From $(-0.25, 0.25)$ with $\delta = 0.5$ the simultaneous update goes to
    $(0.75, -0.75)$, $J$ from $-0.0625$ to $-0.5625$; the sequential one to $(0.75, 1.25)$,
    $J = 0.9375$. Kuba et al. (2022) §2.3, Figure 1. Notes A37 and correction C28 (why
    simultaneous updates lose the monotonic-improvement guarantee).

    **Arguments:** `means`: $(\mu^1, \mu^2)$, both non-zero; `delta`: the KL radius $\delta > 0$.

    **Returns:** a `SimultaneousUpdateExample` (proved in
    `proofs_as_tests/test_heterogeneous_agent.py::test_simultaneous_updates_can_lower_the_return`).

    **Examples:**

    ```pycon
    >>> import reference as rf
    >>> ex = rf.simultaneous_update_counterexample()
    >>> [round(float(x), 4) for x in (ex.old_return, ex.simultaneous_return, ex.sequential_return)]
    [-0.0625, -0.5625, 0.9375]

    ```
    """
    where = "simultaneous_update_counterexample"
    mu = as_float_array(jnp.asarray(means), "means")
    check_shape(mu, (2,), "means", where, "[2]")
    mu = check_finite(mu, "means", where)
    mu = check_where(mu, mu, lambda xp, x: x == 0, f"{where}: `means` must be non-zero (the step's direction)", "means")
    d = check_delta(delta, where).astype(mu.dtype)
    radius = jnp.sqrt(2.0 * d)
    simultaneous = jnp.stack([mu[0] + jnp.sign(mu[1]) * radius, mu[1] + jnp.sign(mu[0]) * radius])
    first = mu[0] + jnp.sign(mu[1]) * radius
    sequential = jnp.stack([first, mu[1] + jnp.sign(first) * radius])
    J = lambda m: m[0] * m[1]
    return SimultaneousUpdateExample(mu, simultaneous, sequential, J(mu), J(simultaneous), J(sequential))
