r"""The sequential update of heterogeneous-agent learning, the policies it acts on, the epoch loop.

HATRPO, HAPPO and HAA2C (Kuba et al. 2022, the authors' HARL code) share one scheme: draw a random
order $i_{1:n}$ of the agents, start from $M^{i_1} = \hat A$, let agent $i_m$ improve its policy on
a surrogate weighted by $M^{i_{1:m}}$, then multiply $M$ by the agent's new/old probability ratio
before the next agent. They differ only in how one agent improves on its surrogate. This module
owns the scheme (`sequential_update`) once; an algorithm is a function that updates one agent.

The objects here are public through `reference.training`; the flat namespace keeps its
one-function-per-equation promise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._checks import check_positive_int
from ._trust_region import unchecked_gaussian_entropy, unchecked_gaussian_kl, unchecked_gaussian_log_prob
from ._types import Array, Params


class Categorical(eqx.Module):
    r"""Discrete actions: the network returns logits (or log-probabilities) `[B, A]`.

    $\pi(a\mid s) = \mathrm{softmax}(z(s))_a$; `log_prob`, `entropy` and `kl` are exact sums over
    the $A$ actions.

    **Examples:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> from reference import training
    >>> logits = jnp.log(jnp.asarray([[0.25, 0.75]]))
    >>> family = training.Categorical()
    >>> round(float(family.log_prob(logits, jnp.asarray([1]))[0]), 4)  # log 0.75
    -0.2877
    >>> round(float(family.entropy(logits)[0]), 4), int(family.mode(logits)[0])
    (0.5623, 1)

    ```
    """

    def log_probabilities(self, out: Array) -> Array:
        """The log-probabilities of every action, `[B, A]` (a log-softmax of the logits)."""
        return jax.nn.log_softmax(out, axis=-1)

    def log_prob(self, out: Array, actions: Array) -> Array:
        return jnp.take_along_axis(self.log_probabilities(out), actions[..., None], axis=-1)[..., 0]

    def entropy(self, out: Array) -> Array:
        logp = self.log_probabilities(out)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    def kl(self, old: Array, new: Array) -> Array:
        r"""$D_{KL}(\pi_{old}\,\|\,\pi_{new})$ per sample."""
        p, q = self.log_probabilities(old), self.log_probabilities(new)
        return jnp.sum(jnp.exp(p) * (p - q), axis=-1)

    def sample(self, key: Array, out: Array) -> Array:
        return jax.random.categorical(key, out, axis=-1)

    def mode(self, out: Array) -> Array:
        return jnp.argmax(out, axis=-1)


class DiagonalGaussian(eqx.Module):
    r"""Continuous actions: the network returns `(mean [B, D], log_std [D])`.

    $\pi(\cdot\mid s) = \mathcal N(\mu(s), \mathrm{diag}\,e^{2\,\text{log\_std}})$, the log-std a
    parameter independent of the state (as the HATRPO/HAPPO authors use it); densities, entropy
    and KL are the closed forms of `gaussian_log_prob`, `gaussian_entropy`, `gaussian_kl` (the same
    code without their input checks: a line search may try, and must be free to reject, a
    candidate whose log-std overflows).

    **Examples:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> from reference import training
    >>> out = (jnp.zeros((1, 1)), jnp.zeros(1))  # mean 0, σ = 1, one dimension
    >>> family = training.DiagonalGaussian()
    >>> round(float(family.log_prob(out, jnp.zeros((1, 1)))[0]), 4)  # −½ log 2π
    -0.9189
    >>> round(float(family.kl(out, (jnp.ones((1, 1)), jnp.zeros(1)))[0]), 4)  # ½ (μ − μ')²
    0.5

    ```
    """

    def log_prob(self, out: tuple[Array, Array], actions: Array) -> Array:
        mean, log_std = out
        return unchecked_gaussian_log_prob(mean, log_std, actions)

    def entropy(self, out: tuple[Array, Array]) -> Array:
        mean, log_std = out
        return unchecked_gaussian_entropy(jnp.broadcast_to(log_std, mean.shape))

    def kl(self, old: tuple[Array, Array], new: tuple[Array, Array]) -> Array:
        return unchecked_gaussian_kl(old[0], old[1], new[0], new[1])

    def sample(self, key: Array, out: tuple[Array, Array]) -> Array:
        mean, log_std = out
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    def mode(self, out: tuple[Array, Array]) -> Array:
        return out[0]


class Policy(eqx.Module):
    """A parameterised policy: `apply(params, obs [B, ...])` gives a distribution's parameters of `family`.

    `Policy(apply, Categorical())` for discrete actions (logits `[B, A]`), `Policy(apply,
    DiagonalGaussian())` for continuous ones (`(mean [B, D], log_std [D])`). `log_prob`,
    `entropy`, `kl`, `sample` and `mode` act on a batch of observations.

    **Examples:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> from reference import training
    >>> policy = training.Policy(lambda W, obs: obs @ W, training.Categorical())  # linear logits
    >>> W, obs = jnp.zeros((2, 3)), jnp.eye(2)
    >>> [round(x, 4) for x in policy.log_prob(W, obs, jnp.asarray([0, 2])).tolist()]  # uniform over 3 actions
    [-1.0986, -1.0986]

    ```
    """

    apply: Callable[[Params, Array], Any] = eqx.field(static=True)
    family: Categorical | DiagonalGaussian = eqx.field(static=True)

    def log_prob(self, params: Params, obs: Array, actions: Array) -> Array:
        return self.family.log_prob(self.apply(params, obs), actions)

    def entropy(self, params: Params, obs: Array) -> Array:
        return self.family.entropy(self.apply(params, obs))

    def kl(self, old_out: Any, params: Params, obs: Array) -> Array:
        r"""Per sample $D_{KL}(\pi_{old}\|\pi_\theta)$, `old_out` the old policy's `apply` output."""
        return self.family.kl(old_out, self.apply(params, obs))

    def sample(self, key: Array, params: Params, obs: Array) -> Array:
        return self.family.sample(key, self.apply(params, obs))

    def mode(self, params: Params, obs: Array) -> Array:
        return self.family.mode(self.apply(params, obs))


class AgentBatch(eqx.Module):
    r"""One agent's share of a batch of `B` samples.

    `observations [B, ...]`, `actions` (`[B]` ints for a `Categorical` policy, `[B, D]` for a
    `DiagonalGaussian`) and `old_log_probs [B]`, $\log\pi^i_{\theta_k}(a^i_b\mid o^i_b)$.

    **Examples:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> from reference import training
    >>> batch = training.AgentBatch(jnp.eye(4), jnp.asarray([0, 1, 1, 0]), jnp.zeros(4))
    >>> batch.take(jnp.asarray([1, 2])).actions.tolist()  # a minibatch
    [1, 1]

    ```
    """

    observations: Array
    actions: Array
    old_log_probs: Array

    def take(self, idx: Array) -> AgentBatch:
        """The samples `idx` (a minibatch)."""
        return jax.tree.map(lambda x: x[idx], self)

    @property
    def size(self) -> int:
        return int(self.old_log_probs.shape[0])


AgentUpdate = Callable[..., tuple[Params, Any]]
"""`agent_update(key, policy, params, opt_state, batch, factor) -> (params, opt_state)`.

Improve one agent's policy on its surrogate weighted by `factor` ($M^{i_{1:m}}$, `[B]`).
Hyper-parameters are keyword-only arguments bound beforehand (`functools.partial`).
"""


def minibatch_epochs(
    key: Array,
    params: Params,
    opt_state: Any,
    loss: Callable[[Params, Array], Array],
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    num_epochs: int,
    num_minibatches: int,
) -> tuple[Params, Any]:
    r"""`num_epochs` epochs of `num_minibatches` optax steps on `loss(params, idx)`.

    Epoch $e$ shuffles the `batch_size` samples by `jax.random.permutation(fold_in(key, e),
    batch_size)` and cuts the permutation into `num_minibatches` equal minibatches `idx` (with one
    minibatch, `idx` is `arange(batch_size)`: the whole batch needs no shuffle); each minibatch is
    one step `params ← params + optimizer.update(∇loss(params, idx))`. The loop of
    PPO-style training (Schulman et al. 2017, the authors' HARL code); every gradient-based
    update of `reference.training` (actors and critic) runs through it.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> from reference import training
    >>> data = jnp.arange(8.0)  # fit one number to 8 samples by squared error: their mean, 3.5
    >>> loss = lambda p, idx: jnp.mean((p - data[idx]) ** 2)
    >>> opt = optax.sgd(0.1)
    >>> p, _ = training.minibatch_epochs(
    ...     jax.random.key(0), 0.0, opt.init(0.0), loss, opt, batch_size=8, num_epochs=200, num_minibatches=1
    ... )
    >>> round(float(p), 4)
    3.5

    ```
    """
    where = "minibatch_epochs"
    check_positive_int(num_epochs, "num_epochs", where)
    check_positive_int(num_minibatches, "num_minibatches", where)
    if batch_size % num_minibatches:
        raise ValueError(f"{where}: `num_minibatches` ({num_minibatches}) must divide the batch size B = {batch_size}.")
    size = batch_size // num_minibatches

    def epoch(e: Array, carry: tuple[Params, Any]) -> tuple[Params, Any]:
        if num_minibatches == 1:  # one minibatch is the whole batch, in any order: no shuffle, no gather
            p, s = carry
            grads = jax.grad(loss)(p, jnp.arange(batch_size))
            updates, s = optimizer.update(grads, s, p)
            return optax.apply_updates(p, updates), s
        perm = jax.random.permutation(jax.random.fold_in(key, e), batch_size)

        def minibatch(b: Array, carry: tuple[Params, Any]) -> tuple[Params, Any]:
            p, s = carry
            idx = jax.lax.dynamic_slice_in_dim(perm, b * size, size)
            grads = jax.grad(loss)(p, idx)
            updates, s = optimizer.update(grads, s, p)
            return optax.apply_updates(p, updates), s

        return jax.lax.fori_loop(0, num_minibatches, minibatch, carry)

    return jax.lax.fori_loop(0, num_epochs, epoch, (params, opt_state))


def sequential_update(
    key: Array,
    agent_update: AgentUpdate,
    policies: Sequence[Policy],
    params: Sequence[Params],
    opt_states: Sequence[Any],
    batches: Sequence[AgentBatch],
    advantages: Array,
    *,
    agents_alike: bool,
) -> tuple[tuple[Params, ...], tuple[Any, ...]]:
    r"""The heterogeneous agents' sequential update: a random order, each agent on the factor $M$.

    For the order $i_{1:n}$ = `jax.random.permutation(jax.random.split(key)[0], n)` and
    $M^{i_1} = \hat A$ (`advantages`), agent $i_m$ is updated by
    `agent_update(fold_in(split(key)[1], i_m), policies[i_m], params[i_m], opt_states[i_m],
    batches[i_m], M)`, then

    $$M^{i_{1:m+1}} = \frac{\pi^{i_m}_{\theta_{k+1}}(a^{i_m}\mid o^{i_m})}
      {\pi^{i_m}_{\theta_k}(a^{i_m}\mid o^{i_m})}\,M^{i_{1:m}}
      \qquad\Big(\text{so } M^{i_{1:m}} = \prod_{j<m}\frac{\pi^{i_j}_{\theta_{k+1}}}{\pi^{i_j}_{\theta_k}}\hat A\Big).$$

    Kuba et al. (2022) Algorithm 2 (HATRPO), eq. (11) (HAPPO), App. D; the authors' code. Notes
    A50, A51, §D (correction C21: the earlier agents' policies are already the updated ones).

    **Arguments:**

    - `agent_update`: one agent's improvement step (an `AgentUpdate`; its hyper-parameters bound).
    - `policies`, `params`, `opt_states`, `batches`: per agent.
    - `advantages`: $\hat A$, `[B]`.
    - `agents_alike` (keyword-only): `True` if every agent has the same `Policy`, the same
      parameter shapes and the same batch shapes. The agent is then gathered from stacked arrays
      by its index, which costs one agent's update per step under `jax.vmap` (over seeds, say).
      `False` chooses the agent's update by `jax.lax.switch`, which admits any mix of policies
      and shapes but, once `vmap` batches the order, runs all $n$ branches at every step.

    **Returns:** `(new_params, new_opt_states)`, per agent in the original order.

    **Examples:**

    ```pycon
    >>> import functools, jax, jax.numpy as jnp, optax
    >>> from reference import training
    >>> policy = training.Policy(lambda W, obs: obs @ W, training.Categorical())
    >>> obs, W = jnp.eye(2)[jnp.asarray([0, 1, 0, 1])], jnp.zeros((2, 2))
    >>> batches = [training.AgentBatch(obs, a, policy.log_prob(W, obs, a)) for a in (jnp.asarray([0, 1, 1, 0]),) * 2]
    >>> opt = optax.adam(0.1)
    >>> update: training.AgentUpdate = functools.partial(training.ppo_agent_update, optimizer=opt)
    >>> advantages = jnp.asarray([1.0, 1.0, -1.0, -1.0])
    >>> params, states = training.sequential_update(
    ...     jax.random.key(0), update, (policy, policy), (W, W), (opt.init(W), opt.init(W)), batches, advantages,
    ...     agents_alike=True,
    ... )
    >>> len(params), params[0].shape, bool(jnp.any(params[0] != W))
    (2, (2, 2), True)

    ```
    """
    where = "sequential_update"
    n = len(params)
    if n < 1 or not len(policies) == len(opt_states) == len(batches) == n:
        raise ValueError(
            f"{where}: `policies`, `params`, `opt_states` and `batches` must each hold one entry per agent, "
            f"but hold {len(policies)}, {n}, {len(opt_states)} and {len(batches)}."
        )
    if agents_alike and not policies_alike(policies, params, opt_states, batches):
        raise ValueError(
            f"{where}: `agents_alike=True` needs one Policy and equal parameter, optimiser-state and batch "
            "shapes for every agent; pass `agents_alike=False` for agents that differ."
        )
    key_order, key_agents = jax.random.split(key)
    order = jax.random.permutation(key_order, n)

    def one(policy: Policy, agent: Array, p: Params, s: Any, batch: AgentBatch, M: Array) -> tuple[Params, Any, Array]:
        p, s = agent_update(jax.random.fold_in(key_agents, agent), policy, p, s, batch, M)
        new_logp = policy.log_prob(p, batch.observations, batch.actions)
        return p, s, M * jnp.exp(new_logp - batch.old_log_probs)

    if agents_alike:
        policy = policies[0]
        ps, ss, bs = _stack(params), _stack(opt_states), _stack(batches)

        def gathered(m: Array, carry: tuple[Any, Any, Array]) -> tuple[Any, Any, Array]:
            ps, ss, M = carry
            i = order[m]
            p, s, M = one(policy, i, _take(ps, i), _take(ss, i), _take(bs, i), M)
            return _put(ps, i, p), _put(ss, i, s), M

        ps, ss, _ = jax.lax.fori_loop(0, n, gathered, (ps, ss, advantages))
        return _unstack(ps, n), _unstack(ss, n)

    def branch(i: int) -> Callable[[tuple[Any, Any, Array]], tuple[Any, Any, Array]]:
        def switched(carry: tuple[tuple[Params, ...], tuple[Any, ...], Array]) -> Any:
            ps, ss, M = carry
            p, s, M = one(policies[i], jnp.asarray(i), ps[i], ss[i], batches[i], M)
            replace = lambda xs, v: tuple(v if j == i else xs[j] for j in range(n))
            return replace(ps, p), replace(ss, s), M

        return switched

    branches = [branch(i) for i in range(n)]
    carry = (tuple(params), tuple(opt_states), advantages)
    ps, ss, _ = jax.lax.fori_loop(0, n, lambda m, c: jax.lax.switch(order[m], branches, c), carry)
    return ps, ss


def policies_alike(policies: Sequence[Policy], *trees: Sequence[Any]) -> bool:
    if any(p != policies[0] for p in policies):
        return False
    spec = lambda t: jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), t)
    try:
        for agents in trees:
            first = (jax.tree.structure(agents[0]), spec(agents[0]))
            if any((jax.tree.structure(a), spec(a)) != first for a in agents):
                return False
    except TypeError:
        return False
    return True


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _unstack(tree: Any, n: int) -> tuple[Any, ...]:
    return tuple(_take(tree, jnp.asarray(i)) for i in range(n))


def _take(tree: Any, i: Array) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


def _put(tree: Any, i: Array, value: Any) -> Any:
    return jax.tree.map(lambda x, v: x.at[i].set(v), tree, value)
