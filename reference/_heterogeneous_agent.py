r"""Heterogeneous-agent trust-region learning (notes §4, HATRPO/HAPPO).

Algorithm 1 exactly on finite games, MAPPO's objective, HAPPO's factor and objective, and the
sequential per-agent HATRPO and HAPPO updates on parameterised policies.

Sources: Kuba et al. (2022) §3.1 (Algorithm 1), §4 (eqs. (7)–(11)), App. D; the authors' code
(random order per iteration, the factor M multiplied by each agent's new/old ratio after its
whole update). The notes' items A36–A51; Algorithm 1 as written out in `docs/notes.md`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax
from beartype import beartype
from jaxtyping import PRNGKeyArray, jaxtyped

from ._checks import (
    as_float_array,
    check_delta,
    check_epsilon,
    check_finite,
    check_full_support,
    check_positive_int,
    check_same_shape,
    check_where,
)
from ._markov_game import (
    CooperativeGame,
    as_mdp_unchecked,
    check_policies,
    contract_agents,
    joint_policy_unchecked,
)
from ._ppo import check_ratio, ppo_clip_objective
from ._sequential import AgentBatch, Categorical, Policy, minibatch_epochs, policies_alike, sequential_update
from ._trpo import gauss_newton_fisher_vector_product, trpo_update_with_product
from ._trust_region import exact_step_unchecked, penalty_from_advantages
from ._types import Array, ArrayLike, Float, Int, Params, ScalarLike
from ._values import advantages, discounted_visitation

PolicyFn = Callable[[Any, Array], Array]


@jaxtyped(typechecker=beartype)
def multi_agent_policy_iteration(
    key: PRNGKeyArray,
    game: CooperativeGame,
    policies: Sequence[Float[ArrayLike, "S _"]],
    num_iters: int,
) -> tuple[Float[Array, "N S _"], ...]:
    r"""Algorithm 1: multi-agent policy iteration with monotonic improvement, each step exact.

    For $k = 0, 1, \dots$: compute $A_{\pi_k}$ and $C = 4\gamma\max|A_{\pi_k}|/(1-\gamma)^2$;
    draw a random permutation $i_{1:n}$; for $m = 1..n$,

    $$\pi^{i_m}_{k+1} = \arg\max_{\pi^{i_m}}\Big[L^{i_{1:m}}_{\pi_k}(\pi^{i_{1:m-1}}_{k+1},\pi^{i_m})
      - C\,D^{\max}_{KL}(\pi^{i_m}_k,\pi^{i_m})\Big]$$

    using the previous agents' NEW policies (correction C21). Each argmax is
    `exact_trust_region_step` with $w = \rho_{\pi_k}$ and $a_s$ the expected local advantage
    (the method of `exact_trust_region_step`). Kuba et al. (2022) Algorithm 1, Theorem 2 ($J(\pi_{k+1})\ge J(\pi_k)$).
    Notes A44b–A44c and §D (corrections C19, C20: the notes show it only as an image). The whole
    iteration is one jitted `lax.scan`; the random agent is chosen with `lax.switch`.

    **Arguments:**

    - `key`: a `jax.random` key. Iteration $k$ updates the agents in the order
      `jax.random.permutation(jax.random.split(key, num_iters)[k], n)` (so a caller can replay it).
    - `game`; `policies`: the initial joint policy, a tuple `pi[i]` of `[S, A_i]` with full support.
    - `num_iters`: the number of iterations (static).

    **Returns:** a tuple, per agent, of `[num_iters + 1, S, A_i]` (the initial policy first).
    Monotone improvement is proved in
    `proofs_as_tests/test_heterogeneous_agent.py::test_algorithm_1_improves_monotonically`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> game = rf.random_game(jax.random.key(0), 3, (2, 3), 0.9)
    >>> pis = tuple(jnp.full((3, a), 1 / a) for a in game.action_sizes)
    >>> path = rf.multi_agent_policy_iteration(jax.random.key(1), game, pis, 3)
    >>> mdp = rf.joint_action_mdp(game)
    >>> joint = lambda k: rf.joint_policy(tuple(p[k] for p in path)).reshape(3, -1)
    >>> J = [float(rf.expected_return(mdp, joint(k))) for k in range(4)]
    >>> all(b >= a - 1e-5 for a, b in zip(J, J[1:]))  # Theorem 2: monotone
    True

    ```
    """
    where = "multi_agent_policy_iteration"
    check_positive_int(num_iters, "num_iters", where, minimum=0)
    pis = check_policies(game, policies, where)
    pis = tuple(check_full_support(p, f"policies[{i}]", where) for i, p in enumerate(pis))
    return _algorithm_1(key, game, pis, num_iters)


@partial(jax.jit, static_argnames="num_iters")
def _algorithm_1(key: Array, game: CooperativeGame, pis: tuple[Array, ...], num_iters: int) -> tuple[Array, ...]:
    n = len(pis)
    S = game.P.shape[0]

    def iteration(old: tuple[Array, ...], k: Array) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
        mdp = as_mdp_unchecked(game)
        joint = joint_policy_unchecked(old).reshape(S, -1)
        A = advantages(mdp, joint).reshape(game.R.shape)
        Q = A  # the local advantages only need Q up to a per-state constant
        C = penalty_from_advantages(game.gamma, A)
        rho = discounted_visitation(mdp, joint)
        order = jax.random.permutation(k, n)

        def branch(agent: int) -> Callable[[tuple[Array, ...], Array], tuple[Array, ...]]:
            def update(new: tuple[Array, ...], done: Array) -> tuple[Array, ...]:
                weights = {i: jnp.where(done[i], new[i], old[i]) for i in range(n) if i != agent}
                q = contract_agents(Q, weights, (agent,))
                a_bar = q - jnp.sum(old[agent] * q, axis=-1, keepdims=True)
                step = exact_step_unchecked(old[agent], rho, a_bar, C).policy
                return tuple(step if i == agent else new[i] for i in range(n))

            return update

        branches = [branch(i) for i in range(n)]

        def agent_step(m: Array, carry: tuple[tuple[Array, ...], Array]) -> tuple[tuple[Array, ...], Array]:
            new, done = carry
            agent = order[m]
            new = jax.lax.switch(agent, branches, new, done)
            return new, done.at[agent].set(True)

        new, _ = jax.lax.fori_loop(0, n, agent_step, (old, jnp.zeros(n, dtype=bool)))
        return new, new

    _, path = jax.lax.scan(iteration, pis, jax.random.split(key, num_iters))
    return tuple(jnp.concatenate([p[None], h], axis=0) for p, h in zip(pis, path, strict=True))


@jaxtyped(typechecker=beartype)
def mappo_objective(
    ratios: Float[ArrayLike, "*batch n"], advantage: Float[ArrayLike, "*batch"], epsilon: ScalarLike
) -> Float[Array, "*batch"]:
    r"""MAPPO's clipped objective with parameter sharing, per sample (summed over agents).

    $$\sum_{i=1}^n\min\Big(r^i A(s,\mathbf a),\ \mathrm{clip}(r^i,1-\epsilon,1+\epsilon)A(s,\mathbf a)\Big),
      \qquad r^i = \frac{\pi_\theta(a^i|s)}{\pi_{\theta_k}(a^i|s)}$$

    with the shared policy $\pi_\theta$ and the joint advantage. Kuba et al. (2022) eq. (5);
    Yu et al. (2021), MAPPO. Notes A36.

    **Arguments:** `ratios` `[..., n]` (one per agent); `advantage` `[...]`; `epsilon` $>0$.

    **Returns:** `[...]` (`proofs_as_tests/test_heterogeneous_agent.py::test_mappo_objective_at_old_policy`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> f = rf.mappo_objective(jnp.asarray([[1.0, 1.0], [1.5, 0.5]]), jnp.asarray([1.0, 1.0]), 0.2)
    >>> [round(x, 4) for x in f.tolist()]  # a sum over agents
    [2.0, 1.7]

    ```
    """
    where = "mappo_objective"
    eps = check_epsilon(epsilon, where)
    r = as_float_array(ratios, "ratios")
    A = as_float_array(advantage, "advantage", r.dtype)
    if r.shape[:-1] != A.shape:
        raise ValueError(
            f"{where}: `ratios` must have shape [..., n] with [...] = the shape of `advantage` "
            f"{tuple(A.shape)}, but has shape {tuple(r.shape)}."
        )
    r = check_ratio(r, "ratios", where)
    A = check_finite(A, "advantage", where)
    return jnp.sum(ppo_clip_objective(r, jnp.broadcast_to(A[..., None], r.shape), eps), axis=-1)


@jaxtyped(typechecker=beartype)
def happo_factor(
    previous_ratios: Float[ArrayLike, "*batch m1"], advantage: Float[ArrayLike, "*batch"]
) -> Float[Array, "*batch"]:
    r"""HAPPO's factor $M^{i_{1:m}}$: the earlier agents' new/old ratios times the advantage.

    $$M^{i_{1:m}}(s,\mathbf a) = \frac{\bar\pi^{i_{1:m-1}}(\mathbf a^{i_{1:m-1}}|s)}
      {\pi^{i_{1:m-1}}(\mathbf a^{i_{1:m-1}}|s)}\hat A(s,\mathbf a)
      = \Big(\prod_{j<m}\frac{\pi^{i_j}_{\theta_{k+1}}(a^{i_j}|s)}{\pi^{i_j}_{\theta_k}(a^{i_j}|s)}\Big)
      \hat A(s,\mathbf a)$$

    ($M^{i_1} = \hat A$). Kuba et al. (2022) Proposition 3, eq. (10); the authors' code updates
    it sequentially, $M^{i_{1:m+1}} = (\pi^{i_m}_{\theta_{k+1}}/\pi^{i_m}_{\theta_k})\,M^{i_{1:m}}$.
    Notes A50 (correction C24–C25: the notes never define $M$).

    **Arguments:** `previous_ratios` `[..., m − 1]` (may be empty on the last axis);
    `advantage` `[...]`.

    **Returns:** `[...]` (`proofs_as_tests/test_heterogeneous_agent.py::test_happo_factor_is_importance_weight`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> M = rf.happo_factor(jnp.asarray([[2.0, 0.5], [1.0, 3.0]]), jnp.asarray([1.0, -1.0]))
    >>> [round(x, 4) for x in M.tolist()]  # (∏ ratios)·Â
    [1.0, -3.0]

    ```
    """
    r = as_float_array(previous_ratios, "previous_ratios")
    A = as_float_array(advantage, "advantage", r.dtype)
    if r.shape[:-1] != A.shape:
        raise ValueError(
            f"happo_factor: `previous_ratios` must have shape [..., m − 1] with [...] = the shape of "
            f"`advantage` {tuple(A.shape)}, but has shape {tuple(r.shape)}."
        )
    r = check_ratio(r, "previous_ratios", "happo_factor")
    A = check_finite(A, "advantage", "happo_factor")
    return jnp.prod(r, axis=-1) * A


@jaxtyped(typechecker=beartype)
def happo_objective(
    ratio: Float[ArrayLike, "*batch"], factor: Float[ArrayLike, "*batch"], epsilon: ScalarLike
) -> Float[Array, "*batch"]:
    r"""HAPPO's clipped objective for agent $i_m$, per sample.

    $$\min\Big(\frac{\pi^{i_m}_{\theta}(a^{i_m}|s)}{\pi^{i_m}_{\theta_k}(a^{i_m}|s)}M^{i_{1:m}},\
      \mathrm{clip}\Big(\frac{\pi^{i_m}_{\theta}(a^{i_m}|s)}{\pi^{i_m}_{\theta_k}(a^{i_m}|s)},1\pm\epsilon\Big)M^{i_{1:m}}\Big)$$

    Kuba et al. (2022) eq. (11). Notes A51 (the notes' $\mathrm{clip}(\cdot,1\pm\epsilon)$ is
    $\mathrm{clip}(\cdot,1-\epsilon,1+\epsilon)$, C25). For one agent ($M = \hat A$) it is PPO's
    clip objective.

    **Arguments:** `ratio` of agent $i_m$; `factor` $M^{i_{1:m}}$; `epsilon` $>0$.

    **Returns:** `[...]` (`proofs_as_tests/test_heterogeneous_agent.py::test_happo_objective_properties`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> f = rf.happo_objective(jnp.asarray([1.5, 1.5]), jnp.asarray([2.0, -2.0]), 0.2)
    >>> [round(x, 4) for x in f.tolist()]
    [2.4, -3.0]

    ```
    """
    where = "happo_objective"
    eps = check_epsilon(epsilon, where)
    r = check_ratio(as_float_array(ratio, "ratio"), "ratio", where)
    M = check_finite(as_float_array(factor, "factor", r.dtype), "factor", where)
    return ppo_clip_objective(r, M, eps)


@jaxtyped(typechecker=beartype)
def haa2c_objective(ratio: Float[ArrayLike, "*batch"], factor: Float[ArrayLike, "*batch"]) -> Float[Array, "*batch"]:
    r"""HAA2C's objective for agent $i_m$, per sample: the unclipped importance-weighted surrogate.

    $$\frac{\pi^{i_m}_{\theta}(a^{i_m}|s)}{\pi^{i_m}_{\theta_k}(a^{i_m}|s)}\,M^{i_{1:m}}$$

    The third on-policy algorithm of the HATRPO/HAPPO authors' framework (HARL's `haa2c.py`):
    the same sequential update and factor $M$ as HAPPO, without the clip (so only a few epochs,
    and small steps, keep it near the old policy). At the old policy its gradient is
    $M\,\nabla_\theta\log\pi^{i_m}_\theta$: for one agent ($M = \hat A$) the advantage
    actor-critic (A2C) policy gradient. Notes A51a (beyond the notes). Kuba et al. (2022),
    HARL's `haa2c.py`.

    **Arguments:** `ratio` of agent $i_m$ ($\ge 0$); `factor` $M^{i_{1:m}}$; same shape.

    **Returns:** `[...]` (`proofs_as_tests/test_heterogeneous_agent.py::test_haa2c_with_one_agent_is_a2c`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> rf.haa2c_objective(jnp.asarray([1.5, 0.5]), jnp.asarray([2.0, -2.0])).tolist()
    [3.0, -1.0]

    ```
    """
    where = "haa2c_objective"
    r = check_ratio(as_float_array(ratio, "ratio"), "ratio", where)
    M = check_finite(as_float_array(factor, "factor", r.dtype), "factor", where)
    check_same_shape(r, M, ("ratio", "factor"), where)
    return r * M


def clipped_surrogate_loss(
    policy: Policy,
    params: Params,
    batch: AgentBatch,
    factor: Array,
    *,
    epsilon: ScalarLike,
    entropy_coef: ScalarLike = 0.0,
) -> Array:
    r"""The loss PPO, MAPPO and HAPPO minimise: minus the clipped surrogate and the entropy bonus.

    $$L(\theta) = -\frac1B\sum_{b=1}^B\Big[\min\big(r_b(\theta)M_b,\ \mathrm{clip}(r_b(\theta),1\pm\epsilon)M_b\big)
      + c_H\,\mathcal H\big(\pi_\theta(\cdot\mid o_b)\big)\Big],$$

    $$r_b(\theta) = \frac{\pi_\theta(a_b\mid o_b)}{\pi_{\theta_k}(a_b\mid o_b)}$$

    with $M = \hat A$ for PPO (A33) and for MAPPO, whose shared actor sees the $n$ agents'
    samples pooled into one batch of $nB$ (so the loss is minus `mappo_objective`'s mean over
    samples, divided by $n$: A36), and $M = M^{i_{1:m}}$ for HAPPO's agent $i_m$ (A51,
    `happo_objective`). Schulman et al. (2017); Yu et al. (2021); Kuba et al. (2022) eq. (11).

    **Arguments:** `policy`, `params`; `batch` (an `AgentBatch`); `factor` `[B]`;
    `epsilon` $>0$, `entropy_coef` $c_H$ (keyword-only).

    **Returns:** a scalar
    (`proofs_as_tests/test_training.py::test_mappo_loss_is_the_pooled_clipped_surrogate`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> from reference import training
    >>> policy = training.Policy(lambda W, obs: obs @ W, training.Categorical())  # linear logits
    >>> obs, actions = jnp.eye(2)[jnp.asarray([0, 1, 0, 1])], jnp.asarray([0, 1, 1, 0])
    >>> W = jnp.zeros((2, 2))
    >>> batch = training.AgentBatch(obs, actions, policy.log_prob(W, obs, actions))
    >>> factor = jnp.asarray([1.0, 1.0, -1.0, -1.0])  # the first two actions were good
    >>> float(training.clipped_surrogate_loss(policy, W, batch, factor, epsilon=0.2))  # −mean M at θ_k
    -0.0

    ```
    """
    objective = partial(happo_objective, epsilon=epsilon)
    return _surrogate_loss(policy, params, batch, factor, objective, entropy_coef)


def a2c_surrogate_loss(
    policy: Policy, params: Params, batch: AgentBatch, factor: Array, *, entropy_coef: ScalarLike = 0.0
) -> Array:
    r"""HAA2C's loss: minus the unclipped importance-weighted surrogate and the entropy bonus.

    $$L(\theta) = -\frac1B\sum_{b=1}^B\Big[r_b(\theta)M_b + c_H\,\mathcal H\big(\pi_\theta(\cdot\mid o_b)\big)\Big]$$

    (`haa2c_objective`, Notes A51a). At $\theta = \theta_k$ its gradient is
    $-\frac1B\sum_b M_b\nabla\log\pi_\theta(a_b\mid o_b)$ (minus the entropy's): for one agent
    ($M = \hat A$) the A2C policy gradient. HARL's `haa2c.py`.

    **Returns:** a scalar (`proofs_as_tests/test_training.py::test_haa2c_with_one_agent_is_a2c_step_for_step`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> from reference import training
    >>> policy = training.Policy(lambda W, obs: obs @ W, training.Categorical())  # linear logits
    >>> obs, actions = jnp.eye(2)[jnp.asarray([0, 1, 0, 1])], jnp.asarray([0, 1, 1, 0])
    >>> W = jnp.zeros((2, 2))
    >>> batch = training.AgentBatch(obs, actions, policy.log_prob(W, obs, actions))
    >>> factor = jnp.asarray([1.0, 1.0, -1.0, -1.0])  # the first two actions were good
    >>> loss = lambda W: training.a2c_surrogate_loss(policy, W, batch, factor)
    >>> [[round(x, 4) for x in row] for row in jax.grad(loss)(W).tolist()]  # −mean(M ∇log π): raise the good
    [[-0.25, 0.25], [0.25, -0.25]]

    ```
    """
    return _surrogate_loss(policy, params, batch, factor, haa2c_objective, entropy_coef)


def _surrogate_loss(
    policy: Policy,
    params: Params,
    batch: AgentBatch,
    factor: Array,
    objective: Callable[[Array, Array], Array],
    entropy_coef: ScalarLike,
) -> Array:
    """Minus the mean of `objective(ratio, factor)` and of the entropy bonus (the two losses above)."""
    out = policy.apply(params, batch.observations)
    ratio = jnp.exp(policy.family.log_prob(out, batch.actions) - batch.old_log_probs)
    return -(jnp.mean(objective(ratio, factor)) + entropy_coef * jnp.mean(policy.family.entropy(out)))


def _epochs_of(
    loss: Callable[[Params, AgentBatch, Array], Array],
    key: Array,
    params: Params,
    opt_state: Any,
    batch: AgentBatch,
    factor: Array,
    optimizer: optax.GradientTransformation,
    num_epochs: int,
    num_minibatches: int,
) -> tuple[Params, Any]:
    """`minibatch_epochs` of `loss(params, minibatch, factor[minibatch])` (the two Adam-based agent updates)."""
    return minibatch_epochs(
        key,
        params,
        opt_state,
        lambda q, idx: loss(q, batch.take(idx), factor[idx]),
        optimizer,
        batch_size=batch.size,
        num_epochs=num_epochs,
        num_minibatches=num_minibatches,
    )


def ppo_agent_update(
    key: Array,
    policy: Policy,
    params: Params,
    opt_state: Any,
    batch: AgentBatch,
    factor: Array,
    *,
    optimizer: optax.GradientTransformation,
    epsilon: ScalarLike = 0.2,
    num_epochs: int = 5,
    num_minibatches: int = 1,
    entropy_coef: ScalarLike = 0.0,
) -> tuple[Params, Any]:
    r"""One agent's HAPPO step (and MAPPO's, on the pooled batch): epochs of `clipped_surrogate_loss`.

    `num_epochs` epochs of `num_minibatches` `optimizer` steps (`minibatch_epochs`) on
    `clipped_surrogate_loss` with the factor $M$. Kuba et al. (2022) eq. (11), App. D.3;
    Notes A51. An `AgentUpdate` for `sequential_update`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> from reference import training
    >>> policy = training.Policy(lambda W, obs: obs @ W, training.Categorical())  # linear logits
    >>> obs, actions = jnp.eye(2)[jnp.asarray([0, 1, 0, 1])], jnp.asarray([0, 1, 1, 0])
    >>> W = jnp.zeros((2, 2))
    >>> batch = training.AgentBatch(obs, actions, policy.log_prob(W, obs, actions))
    >>> factor = jnp.asarray([1.0, 1.0, -1.0, -1.0])  # the first two actions were good
    >>> opt = optax.adam(0.1)
    >>> new, _ = training.ppo_agent_update(jax.random.key(0), policy, W, opt.init(W), batch, factor, optimizer=opt)
    >>> surrogate = lambda W: float(jnp.mean(factor * jnp.exp(policy.log_prob(W, obs, actions) - batch.old_log_probs)))
    >>> surrogate(W), surrogate(new) > 0.1
    (0.0, True)

    ```
    """
    loss = partial(clipped_surrogate_loss, policy, epsilon=epsilon, entropy_coef=entropy_coef)
    return _epochs_of(loss, key, params, opt_state, batch, factor, optimizer, num_epochs, num_minibatches)


def a2c_agent_update(
    key: Array,
    policy: Policy,
    params: Params,
    opt_state: Any,
    batch: AgentBatch,
    factor: Array,
    *,
    optimizer: optax.GradientTransformation,
    num_epochs: int = 5,
    num_minibatches: int = 1,
    entropy_coef: ScalarLike = 0.0,
) -> tuple[Params, Any]:
    r"""One agent's HAA2C step: epochs of `a2c_surrogate_loss` with the factor $M$.

    HARL's `haa2c.py` (the authors' third on-policy algorithm: HAPPO's scheme without the clip).
    Notes A51a. An `AgentUpdate` for `sequential_update`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> from reference import training
    >>> policy = training.Policy(lambda W, obs: obs @ W, training.Categorical())  # linear logits
    >>> obs, actions = jnp.eye(2)[jnp.asarray([0, 1, 0, 1])], jnp.asarray([0, 1, 1, 0])
    >>> W = jnp.zeros((2, 2))
    >>> batch = training.AgentBatch(obs, actions, policy.log_prob(W, obs, actions))
    >>> factor = jnp.asarray([1.0, 1.0, -1.0, -1.0])  # the first two actions were good
    >>> opt = optax.adam(0.1)
    >>> new, _ = training.a2c_agent_update(jax.random.key(0), policy, W, opt.init(W), batch, factor, optimizer=opt)
    >>> surrogate = lambda W: float(jnp.mean(factor * jnp.exp(policy.log_prob(W, obs, actions) - batch.old_log_probs)))
    >>> surrogate(W), surrogate(new) > 0.1
    (0.0, True)

    ```
    """
    loss = partial(a2c_surrogate_loss, policy, entropy_coef=entropy_coef)
    return _epochs_of(loss, key, params, opt_state, batch, factor, optimizer, num_epochs, num_minibatches)


def trpo_agent_update(
    key: Array,
    policy: Policy,
    params: Params,
    opt_state: Any,
    batch: AgentBatch,
    factor: Array,
    *,
    delta: ScalarLike = 0.01,
    damping: ScalarLike = 0.1,
    cg_steps: int = 10,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 10,
    accept_ratio: float = 0.5,
) -> tuple[Params, Any]:
    r"""One agent's HATRPO step: `trpo_update` on the surrogate weighted by $M$, within the KL threshold.

    $$\max_\theta\ \frac1B\sum_b r_b(\theta)M_b\quad\text{s.t.}\quad
      \frac1B\sum_b D_{KL}\big(\pi_{\theta_k}(\cdot\mid o_b)\,\|\,\pi_\theta(\cdot\mid o_b)\big)\le\delta$$

    with the policy family's exact KL (a sum over actions, or `gaussian_kl`). Kuba et al. (2022)
    eqs. (7)–(10); Notes A45–A50. `opt_state` is passed through (a TRPO step keeps none); `key` is
    unused. An `AgentUpdate` for `sequential_update`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> from reference import training
    >>> policy = training.Policy(lambda W, obs: obs @ W, training.Categorical())  # linear logits
    >>> obs, actions = jnp.eye(2)[jnp.asarray([0, 1, 0, 1])], jnp.asarray([0, 1, 1, 0])
    >>> W = jnp.zeros((2, 2))
    >>> batch = training.AgentBatch(obs, actions, policy.log_prob(W, obs, actions))
    >>> factor = jnp.asarray([1.0, 1.0, -1.0, -1.0])  # the first two actions were good
    >>> new, _ = training.trpo_agent_update(jax.random.key(0), policy, W, None, batch, factor, delta=0.01)
    >>> kl = float(jnp.mean(policy.kl(obs @ W, new, obs)))  # within δ = 0.01
    >>> kl <= 0.01, kl > 0.005
    (True, True)
    >>> surrogate = lambda W: float(jnp.mean(factor * jnp.exp(policy.log_prob(W, obs, actions) - batch.old_log_probs)))
    >>> surrogate(W), surrogate(new) > 0.1
    (0.0, True)

    ```
    """
    del key
    obs, acts = batch.observations, batch.actions
    old_out = jax.lax.stop_gradient(policy.apply(params, obs))

    # `haa2c_objective`'s mean, written without its input checks: the line search must be free to
    # evaluate (and reject) a candidate whose ratio overflows, which the checked function would refuse.
    def surrogate(q: Params) -> Array:
        return jnp.mean(jnp.exp(policy.log_prob(q, obs, acts) - batch.old_log_probs) * factor)

    def kl(q: Params) -> Array:
        return jnp.mean(policy.kl(old_out, q, obs))

    fvp = gauss_newton_fisher_vector_product(
        lambda q: policy.apply(q, obs),
        lambda out: jnp.mean(policy.family.kl(old_out, out)),
        params,
        damping,
        "trpo_agent_update",
    )
    delta = check_delta(delta, "trpo_agent_update")
    new = trpo_update_with_product(
        surrogate, kl, fvp, damping, params, delta, cg_steps, backtrack_ratio, max_backtracks, accept_ratio
    )
    return new, opt_state


def _check_batch(
    params: Sequence[Params],
    policy_fns: Sequence[PolicyFn],
    observations: Sequence[ArrayLike],
    actions: ArrayLike,
    old_log_probs: ArrayLike,
    advantages_: ArrayLike,
    where: str,
) -> tuple[tuple[Array, ...], Array, Array, Array]:
    n = len(params)
    if n < 1 or len(policy_fns) != n or len(observations) != n:
        raise ValueError(
            f"{where}: `params`, `policy_fns` and `observations` must each hold one entry per agent, "
            f"but hold {len(params)}, {len(policy_fns)} and {len(observations)}."
        )
    adv = as_float_array(advantages_, "advantages")
    if adv.ndim != 1:
        raise ValueError(f"{where}: `advantages` must have shape [B], but has shape {tuple(adv.shape)}.")
    B = adv.shape[0]
    acts = jnp.asarray(actions)
    if acts.shape != (B, n) or not jnp.issubdtype(acts.dtype, jnp.integer):
        raise ValueError(
            f"{where}: `actions` must be integers of shape [B, n] = ({B}, {n}), but is {acts.dtype}{tuple(acts.shape)}."
        )
    old = as_float_array(old_log_probs, "old_log_probs", adv.dtype)
    if old.shape != (B, n):
        raise ValueError(
            f"{where}: `old_log_probs` must have shape [B, n] = ({B}, {n}), but has shape {tuple(old.shape)}."
        )
    obs = tuple(jnp.asarray(o) for o in observations)
    for i, o in enumerate(obs):
        if o.shape[0] != B:
            raise ValueError(f"{where}: `observations[{i}]` must have B = {B} rows, but has shape {tuple(o.shape)}.")
    adv = check_finite(adv, "advantages", where)
    acts = check_where(acts, acts, lambda xp, a: a < 0, f"{where}: `actions` must be >= 0 (action indices)", "actions")
    old = check_finite(old, "old_log_probs", where)
    message = f"{where}: `old_log_probs` must be <= 0 (log-probabilities)"
    old = check_where(old, old, lambda xp, x: x > 0, message, "old_log_probs")
    return obs, acts, old, adv


@jaxtyped(typechecker=beartype)
def hatrpo_update(
    key: PRNGKeyArray,
    params: Sequence[Params],
    policy_fns: Sequence[PolicyFn],
    observations: Sequence[ArrayLike],
    actions: Int[ArrayLike, "B n"],
    old_log_probs: Float[ArrayLike, "B n"],
    advantages: Float[ArrayLike, " B"],
    delta: ScalarLike = 0.01,
    damping: ScalarLike = 0.1,
    cg_steps: int = 10,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 10,
    accept_ratio: float = 0.5,
) -> tuple[Params, ...]:
    r"""One HATRPO iteration: each agent, in a random order, takes a TRPO step on its surrogate.

    For a random permutation $i_{1:n}$ and $M^{i_1} = \hat A$, agent $i_m$ solves

    $$\theta^{i_m}_{k+1} = \arg\max_\theta\ \frac1B\sum_b
      \frac{\pi^{i_m}_\theta(a^{i_m}_b|s_b)}{\pi^{i_m}_{\theta_k}(a^{i_m}_b|s_b)}M^{i_{1:m}}_b
      \ \text{ s.t. }\ \frac1B\sum_b D_{KL}\big(\pi^{i_m}_{\theta_k}(\cdot|s_b)\,\|\,
      \pi^{i_m}_\theta(\cdot|s_b)\big)\le\delta$$

    by `trpo_update` (CG on the damped Fisher, backtracking line search), then
    $M^{i_{1:m+1}} = (\pi^{i_m}_{\theta_{k+1}}/\pi^{i_m}_{\theta_k})M^{i_{1:m}}$. Kuba et al.
    (2022) eqs. (7)–(10), App. D.2; the authors' code. Notes A45–A50, §D (correction C21: the
    earlier agents' policies are the updated ones). Jit-safe (the agent is chosen by `lax.switch`).

    **Arguments:**

    - `key`: for the random order, which is `jax.random.permutation(key, n)` (so a run can be
      replayed and a hand-written loop compared with it).
    - `params`: per-agent parameter pytrees; `policy_fns[i](params[i], observations[i])` returns
      log-probabilities `[B, A_i]` of a discrete policy.
    - `observations`: per agent, `[B, ...]`; `actions`: `[B, n]` ints; `old_log_probs`: `[B, n]`,
      $\log\pi^i_{\theta_k}(a^i_b|s_b)$; `advantages`: $\hat A_b$, `[B]`.
    - `delta`, `damping`, `cg_steps`, `backtrack_ratio`, `max_backtracks`, `accept_ratio`: as in
      `trpo_update` (defaults: the authors').

    **Returns:** the new per-agent parameters (each accepted step within the KL threshold:
    `proofs_as_tests/test_heterogeneous_agent.py::test_hatrpo_update_respects_the_kl_threshold`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> fn = lambda p, o: jax.nn.log_softmax(o @ p, -1)  # a linear softmax policy per agent
    >>> params, obs = (jnp.zeros((2, 2)),) * 2, (jnp.eye(2),) * 2
    >>> acts, old = jnp.asarray([[0, 1], [1, 0]]), jnp.log(jnp.full((2, 2), 0.5))
    >>> new = rf.hatrpo_update(jax.random.key(0), params, (fn, fn), obs, acts, old, jnp.asarray([1.0, -1.0]))
    >>> [p.shape for p in new]
    [(2, 2), (2, 2)]

    ```
    """
    where = "hatrpo_update"
    obs, acts, old, adv = _check_batch(params, policy_fns, observations, actions, old_log_probs, advantages, where)
    delta = check_delta(delta, where)
    n = len(params)
    update = partial(
        trpo_agent_update,
        delta=delta,
        damping=damping,
        cg_steps=cg_steps,
        backtrack_ratio=backtrack_ratio,
        max_backtracks=max_backtracks,
        accept_ratio=accept_ratio,
    )
    policies, batches = _categorical_agents(policy_fns, obs, acts, old)
    alike = policies_alike(policies, params, batches)
    new, _ = sequential_update(key, update, policies, params, (None,) * n, batches, adv, agents_alike=alike)
    return new


def _categorical_agents(
    policy_fns: Sequence[PolicyFn], obs: Sequence[Array], acts: Array, old: Array
) -> tuple[tuple[Policy, ...], tuple[AgentBatch, ...]]:
    """The flat updates' per-agent log-probability functions as `Policy`s, and their batches."""
    policies = tuple(Policy(fn, Categorical()) for fn in policy_fns)
    batches = tuple(AgentBatch(o, acts[:, i], old[:, i]) for i, o in enumerate(obs))
    return policies, batches


@jaxtyped(typechecker=beartype)
def happo_update(
    key: PRNGKeyArray,
    params: Sequence[Params],
    policy_fns: Sequence[PolicyFn],
    observations: Sequence[ArrayLike],
    actions: Int[ArrayLike, "B n"],
    old_log_probs: Float[ArrayLike, "B n"],
    advantages: Float[ArrayLike, " B"],
    optimizer: optax.GradientTransformation,
    opt_states: Sequence[Any],
    epsilon: ScalarLike = 0.2,
    num_epochs: int = 5,
    num_minibatches: int = 1,
    entropy_coef: ScalarLike = 0.0,
) -> tuple[tuple[Params, ...], tuple[Any, ...]]:
    r"""One HAPPO iteration: each agent, in a random order, runs epochs of its clipped objective.

    For a random permutation $i_{1:n}$ and $M^{i_1} = \hat A$, agent $i_m$ maximises

    $$\frac1B\sum_b\min\Big(r^{i_m}_b(\theta)M^{i_{1:m}}_b,\
      \mathrm{clip}(r^{i_m}_b(\theta),1\pm\epsilon)M^{i_{1:m}}_b\Big)
      + c_H\,\mathcal H\big(\pi^{i_m}_\theta\big)$$

    for `num_epochs` epochs of `num_minibatches` optax steps each (`happo_objective`), then
    $M^{i_{1:m+1}} = r^{i_m}(\theta^{i_m}_{k+1})\,M^{i_{1:m}}$ (`happo_factor`). Kuba et al.
    (2022) eq. (11), App. D.3; the authors' code (Adam 5e-4, 5 epochs, entropy 0.01, gradient
    clip 10 are its defaults: build `optimizer` with `optax.chain(optax.clip_by_global_norm(10),
    optax.adam(5e-4))`). Notes A51, §D. With one agent it is a PPO update
    (`proofs_as_tests/test_heterogeneous_agent.py::test_happo_with_one_agent_is_ppo`).
    The agent order is `jax.random.permutation(jax.random.split(key)[0], n)`; minibatches are drawn
    by a fixed permutation per epoch from `jax.random.split(key)[1]`.

    **Arguments:** as `hatrpo_update`, plus `optimizer` (one optax transformation shared by the
    agents), `opt_states` (per agent), `epsilon`, `num_epochs`, `num_minibatches` (must divide
    B), `entropy_coef`.

    **Returns:** `(new_params, new_opt_states)`, per agent.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> import optax
    >>> fn = lambda p, o: jax.nn.log_softmax(o @ p, -1)
    >>> params, obs = (jnp.zeros((2, 2)),) * 2, (jnp.eye(2),) * 2
    >>> opt = optax.sgd(0.1)
    >>> acts, old = jnp.asarray([[0, 1], [1, 0]]), jnp.log(jnp.full((2, 2), 0.5))
    >>> states = tuple(opt.init(p) for p in params)
    >>> adv = jnp.asarray([1.0, -1.0])
    >>> new, states = rf.happo_update(jax.random.key(0), params, (fn, fn), obs, acts, old, adv, opt, states)
    >>> [p.shape for p in new]
    [(2, 2), (2, 2)]

    ```
    """
    where = "happo_update"
    obs, acts, old, adv = _check_batch(params, policy_fns, observations, actions, old_log_probs, advantages, where)
    epsilon = check_epsilon(epsilon, where)
    check_positive_int(num_epochs, "num_epochs", where)
    check_positive_int(num_minibatches, "num_minibatches", where)
    n, B = len(params), adv.shape[0]
    if len(opt_states) != n:
        raise ValueError(
            f"{where}: `opt_states` must hold one optimiser state per agent ({n}), but holds {len(opt_states)}."
        )
    if B % num_minibatches:
        raise ValueError(f"{where}: `num_minibatches` ({num_minibatches}) must divide the batch size B = {B}.")
    update = partial(
        ppo_agent_update,
        optimizer=optimizer,
        epsilon=epsilon,
        num_epochs=num_epochs,
        num_minibatches=num_minibatches,
        entropy_coef=entropy_coef,
    )
    policies, batches = _categorical_agents(policy_fns, obs, acts, old)
    alike = policies_alike(policies, params, opt_states, batches)
    return sequential_update(key, update, policies, params, opt_states, batches, adv, agents_alike=alike)
