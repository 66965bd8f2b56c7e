r"""The practical TRPO step on parameterised policies (notes §3, A47–A49).

The Fisher-vector product by autodiff, the natural-gradient step by conjugate gradient
(lineax), and the backtracking line search.

Sources: Schulman et al. (2015) §6 and App. C; Kuba et al. (2022) eq. (8); the authors' code
(HARL / TRPO-in-MARL): damping 0.1, 10 CG steps, backtracking ×0.8 up to 10 times, accept
ratio 0.5. Parameters are any pytree of arrays (a flat vector, a dict, an equinox module's
array leaves from `eqx.partition`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import lineax as lx
from beartype import beartype
from jaxtyping import jaxtyped

from ._checks import check_delta, check_nonnegative_scalar, check_positive_int
from ._types import Array, Params, ScalarLike


def _tree_dot(a: Params, b: Params) -> Array:
    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, y: jnp.vdot(x, y), a, b))
    return sum(leaves, jnp.asarray(0.0, dtype=jnp.result_type(*jax.tree_util.tree_leaves(a))))


def _tree_axpy(alpha: Array, x: Params, y: Params) -> Params:
    return jax.tree_util.tree_map(lambda xi, yi: yi + (alpha * xi).astype(yi.dtype), x, y)


@jaxtyped(typechecker=beartype)
def fisher_vector_product(
    kl_fn: Callable[[Params], Array], params: Params, damping: ScalarLike = 0.0
) -> Callable[[Params], Params]:
    r"""The map $v \mapsto (H + \text{damping}\,I)\,v$, $H$ the Hessian of the KL at `params`.

    $$H = \nabla^2_\theta\,\mathbb E_{s}\big[D_{KL}(\pi_{\theta_k}(\cdot|s)\,\|\,
      \pi_\theta(\cdot|s))\big]\Big|_{\theta=\theta_k}$$

    the Fisher information matrix of the policy (A48). Computed forward-over-reverse
    (`jax.linearize` of `jax.grad(kl_fn)`), linearised once so that each product costs one
    JVP of the gradient. Notes A48; Schulman et al. (2015) App. C.1; Kuba et al. (2022) §4.
    Correction C23: for a tabular softmax $H$ is singular (one null direction per state):
    damp it (the authors' code adds $0.1\,I$).

    **Arguments:**

    - `kl_fn`: `params -> scalar`, the mean KL from the fixed old policy to the policy at
      `params` (zero, with zero gradient, at the old parameters).
    - `params`: a pytree of arrays, where the Hessian is taken.
    - `damping`: $\ge 0$, added times the identity.

    **Returns:** a function from a pytree like `params` to one like it. The tabular softmax
    case is proved against its closed form in
    `proofs_as_tests/test_trpo.py::test_tabular_softmax_fisher_matches_closed_form`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> theta = jnp.zeros(3)  # logits of a uniform softmax policy
    >>> kl = lambda t: rf.kl_divergence(jax.nn.softmax(jnp.zeros(3)), jax.nn.softmax(t))
    >>> v = jnp.asarray([1.0, 0.0, 0.0])
    >>> fvp = rf.fisher_vector_product(kl, theta)
    >>> bool(jnp.allclose(fvp(v), (jnp.eye(3) / 3 - 1 / 9) @ v, atol=1e-6))  # H = diag(π) − ππᵀ
    True

    ```
    """
    d = check_nonnegative_scalar(damping, "damping", "fisher_vector_product")
    _, hvp = jax.linearize(jax.grad(kl_fn), params)

    def fvp(v: Params) -> Params:
        return _tree_axpy(d, v, hvp(v))

    return fvp


def gauss_newton_fisher_vector_product(
    apply_fn: Callable[[Params], Any],
    output_kl_fn: Callable[[Any], Array],
    params: Params,
    damping: ScalarLike = 0.0,
    where: str = "fisher_vector_product",
) -> Callable[[Params], Params]:
    r"""`fisher_vector_product` of `kl_fn = output_kl_fn ∘ apply_fn`, as $J^\top H_{out} J\,v$."""
    d = check_nonnegative_scalar(damping, "damping", where)
    out, jvp_fn = jax.linearize(apply_fn, params)
    vjp_fn = jax.linear_transpose(jvp_fn, params)
    _, output_hvp = jax.linearize(jax.grad(output_kl_fn), out)

    def fvp(v: Params) -> Params:
        (jt,) = vjp_fn(output_hvp(jvp_fn(v)))
        return _tree_axpy(d, v, jt)

    return fvp


@jaxtyped(typechecker=beartype)
def natural_gradient_step(
    g: Params,
    fisher_vector_product: Callable[[Params], Params],
    delta: ScalarLike,
    cg_steps: int = 10,
    cg_tol: float = 1e-10,
) -> Params:
    r"""The natural-gradient (TRPO) step: the maximiser of $g^\top d$ on the KL ellipsoid.

    $$d^* = \sqrt{\frac{2\delta}{g^\top H^{-1}g}}\;H^{-1}g
      = \arg\max_d\ \{g^\top d : \tfrac12 d^\top H d \le \delta\}$$

    $s \approx H^{-1}g$ is computed by conjugate gradient (lineax `CG`, at most `cg_steps`
    steps, as the authors' code); the scale is $\sqrt{2\delta/(s^\top H s)}$, which equals
    $\sqrt{2\delta/(g^\top H^{-1}g)}$ when CG has converged and keeps
    $\tfrac12 d^\top H d = \delta$ exactly for the computed direction, converged or not.
    $s^\top Hs$ is computed as $s^\top g$, equal for every CG iterate started at 0 (its residual
    $g - Hs$ is orthogonal to the Krylov space $s$ lies in), which saves one product with $H$. Notes A49; Kuba et al.
    (2022) eq. (8); Schulman et al. (2015) App. C. Correction C22: the notes write the step
    without the direction $H^{-1}g$ and without the transpose.

    **Arguments:**

    - `g`: the gradient of the surrogate, a flat vector or a pytree.
    - `fisher_vector_product`: $v \mapsto Hv$ (e.g. from `fisher_vector_product`), $H \succ 0$.
    - `delta`: the KL radius $\delta > 0$.
    - `cg_steps`: the maximum number of CG iterations.
    - `cg_tol`: CG's relative and absolute tolerance.

    If CG breaks down (lineax's CG gives NaN once $p^\top Hp \le 200\,\epsilon\,\mathrm{size}\,
    r^\top r$, which in float32 a Fisher with eigenvalues below $\approx 2.4\cdot10^{-5}\,$size
    meets) the direction falls back to $g$ instead of NaN; `trpo_update` avoids the breakdown by
    solving with $H$ divided by its damping.

    **Returns:** $d^*$, the same structure as `g` (zero if $g = 0$). KL-tightness and
    optimality are proved in `proofs_as_tests/test_trpo.py::test_natural_gradient_step_is_optimal_on_the_ellipsoid`.

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> H = jnp.asarray([[2.0, 0.0], [0.0, 0.5]])
    >>> d = rf.natural_gradient_step(jnp.asarray([1.0, 1.0]), lambda v: H @ v, 0.01)
    >>> round(float(0.5 * d @ H @ d), 6)  # on the boundary ½dᵀHd = δ
    0.01

    ```
    """
    delta = check_delta(delta, "natural_gradient_step")
    check_positive_int(cg_steps, "cg_steps", "natural_gradient_step")
    return _natural_gradient_step(g, fisher_vector_product, delta, cg_steps, cg_tol, 1.0)


def _natural_gradient_step(
    g: Params,
    fisher_vector_product: Callable[[Params], Params],
    delta: Array,
    cg_steps: int,
    cg_tol: float,
    curvature_floor: ScalarLike,
) -> Params:
    r"""`natural_gradient_step`, CG solving $(H/f)s = g/f$ for a known lower bound $f$ of $H$'s spectrum.

    lineax's CG declares a breakdown (its step becomes NaN) when $p^\top Hp \le 200\,\epsilon\,
    \mathrm{size}\;r^\top r$: in float32 with thousands of parameters that is $\approx 0.1\,r^\top r$,
    which a damped Fisher whose eigenvalues near the damping $0.1$ meets. Dividing by the
    damping puts the spectrum above 1 (the solution is the same). If CG breaks down all the same,
    the direction falls back to $g$ (CG's first direction) rather than a NaN.
    """
    structure = jax.eval_shape(lambda: g)
    inv = 1.0 / jnp.asarray(curvature_floor, jax.tree_util.tree_leaves(g)[0].dtype)
    scaled = lambda v: jax.tree_util.tree_map(lambda x: inv * x, fisher_vector_product(v))
    operator = lx.FunctionLinearOperator(scaled, structure, tags=lx.positive_semidefinite_tag)
    # lineax recomputes the true residual every 10 steps; within 10 steps that is one wasted
    # product on the last step (the authors' CG never recomputes it).
    solver = lx.CG(rtol=cg_tol, atol=cg_tol, max_steps=cg_steps, stabilise_every=10 if cg_steps > 10 else None)
    s = lx.linear_solve(operator, jax.tree_util.tree_map(lambda x: inv * x, g), solver, throw=False).value
    finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(s)]))
    s = jax.tree_util.tree_map(lambda x, y: jnp.where(finite, x, y), s, g)
    # sᵀHs = sᵀg for every CG iterate started at 0 (its residual g − Hs is orthogonal to the Krylov
    # space s lies in): one Fisher-vector product fewer. After the fallback to g it is computed.
    # (Under `vmap` with a batched `finite` the cond is a select and both sides run.)
    sHs = jax.lax.cond(finite, lambda: _tree_dot(s, g), lambda: _tree_dot(s, fisher_vector_product(s)))
    positive = sHs > 0
    scale = jnp.where(positive, jnp.sqrt(2.0 * delta / jnp.where(positive, sHs, 1.0)), 0.0)
    return jax.tree_util.tree_map(lambda x: (scale * x).astype(x.dtype), s)


@jaxtyped(typechecker=beartype)
def backtracking_line_search(
    surrogate_fn: Callable[[Params], Array],
    kl_fn: Callable[[Params], Array],
    params: Params,
    step: Params,
    delta: ScalarLike,
    expected_improvement: ScalarLike,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 10,
    accept_ratio: float = 0.5,
) -> Params:
    r"""Backtracking along a step: the first $\alpha^j d$ that improves the surrogate within the KL ball.

    $$\theta_{k+1} = \theta_k + \alpha^{j}d,$$

    $$j = \min\{j\ge0:\
      L(\theta_k+\alpha^jd) - L(\theta_k) > \max(0,\ r\,\alpha^j\,g^\top d),\
      \bar D_{KL}(\theta_k,\theta_k+\alpha^jd)\le\delta\}$$

    with $r$ = `accept_ratio` and $g^\top d$ = `expected_improvement`; if no $j <$
    `max_backtracks` is accepted the parameters are returned unchanged. Notes A49 (the
    $\alpha^j$ the notes leave unexplained, C22); Schulman et al. (2015) App. C; the authors'
    code (×0.8, 10 tries, accept ratio 0.5). Runs in `jax.lax.while_loop`.

    **Arguments:**

    - `surrogate_fn`: `params -> scalar` to maximise; `kl_fn`: `params -> scalar` mean KL.
    - `params`: $\theta_k$; `step`: $d$ (same structure).
    - `delta`: the KL radius; `expected_improvement`: $g^\top d$.
    - `backtrack_ratio`: $\alpha\in(0,1)$; `max_backtracks`; `accept_ratio`: $r\ge0$.

    **Returns:** the new parameters. Every accepted step satisfies the KL threshold and improves
    the surrogate (`proofs_as_tests/test_trpo.py::test_trpo_update_improves_within_the_trust_region`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> surrogate = lambda p: -jnp.sum((p - 1.0) ** 2)
    >>> kl = lambda p: 0.5 * jnp.sum(p**2)
    >>> new = rf.backtracking_line_search(surrogate, kl, jnp.zeros(2), jnp.ones(2), 0.1, 4.0)
    >>> bool(kl(new) <= 0.1), bool(surrogate(new) > surrogate(jnp.zeros(2)))  # a shorter step was accepted
    (True, True)

    ```
    """
    where = "backtracking_line_search"
    delta = check_delta(delta, where)
    check_positive_int(max_backtracks, "max_backtracks", where)
    if not 0.0 < backtrack_ratio < 1.0:
        raise ValueError(f"{where}: `backtrack_ratio` must lie in (0, 1), but is {backtrack_ratio!r}.")
    if not accept_ratio >= 0.0:
        raise ValueError(f"{where}: `accept_ratio` must be >= 0, but is {accept_ratio!r}.")
    f0 = surrogate_fn(params)
    expected = jnp.asarray(expected_improvement, dtype=f0.dtype)

    def candidate(j: Array) -> tuple[Params, Array]:
        frac = jnp.asarray(backtrack_ratio, f0.dtype) ** j.astype(f0.dtype)
        new = _tree_axpy(frac, step, params)
        gain = surrogate_fn(new) - f0
        ok = (kl_fn(new) <= delta) & (gain > 0) & (gain >= accept_ratio * frac * expected)
        return new, ok

    def cond(carry: tuple[Array, Array]) -> Array:
        j, accepted = carry
        return (~accepted) & (j < max_backtracks)

    def body(carry: tuple[Array, Array]) -> tuple[Array, Array]:
        j, _ = carry
        _, ok = candidate(j)
        return jnp.where(ok, j, j + 1), ok

    j, accepted = jax.lax.while_loop(cond, body, (jnp.asarray(0, jnp.int32), jnp.asarray(False)))
    new, _ = candidate(j)
    return jax.tree_util.tree_map(lambda n, o: jnp.where(accepted, n, o), new, params)


@jaxtyped(typechecker=beartype)
def trpo_update(
    surrogate_fn: Callable[[Params], Array],
    kl_fn: Callable[[Params], Array],
    params: Params,
    delta: ScalarLike = 0.01,
    damping: ScalarLike = 0.1,
    cg_steps: int = 10,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 10,
    accept_ratio: float = 0.5,
) -> Params:
    r"""One TRPO update: natural-gradient direction by CG, then backtracking line search.

    $$\theta_{k+1} = \arg\max_\theta L_{\pi_{\theta_k}}(\pi_\theta)\ \text{ s.t. }\
      \bar D_{KL}(\pi_{\theta_k},\pi_\theta)\le\delta$$

    solved approximately as $\theta_k + \alpha^j\sqrt{2\delta/(g^\top H^{-1}g)}\,H^{-1}g$ with
    $g = \nabla L$ and $H$ the (damped) Fisher. Notes A27, A47–A49; Schulman et al. (2015)
    eq. (12), §6, App. C; Kuba et al. (2022) eq. (3), (8).

    **Arguments:**

    - `surrogate_fn`: `params -> scalar`, the surrogate to maximise (e.g. the importance-weighted
      advantage on samples of the old policy).
    - `kl_fn`: `params -> scalar`, the mean KL from the old policy.
    - `params`: the old parameters $\theta_k$ (any pytree of arrays).
    - `delta`, `damping`, `cg_steps`, `backtrack_ratio`, `max_backtracks`, `accept_ratio`:
      as in `natural_gradient_step` and `backtracking_line_search` (defaults: the authors').

    **Returns:** the new parameters
    (`proofs_as_tests/test_trpo.py::test_trpo_update_improves_within_the_trust_region`).

    **Examples:**

    ```pycon
    >>> import jax, jax.numpy as jnp, reference as rf
    >>> surrogate = lambda p: jnp.sum(p * jnp.asarray([1.0, -1.0]))
    >>> kl = lambda p: 0.5 * jnp.sum(p**2)
    >>> new = rf.trpo_update(surrogate, kl, jnp.zeros(2), delta=0.01)
    >>> bool(kl(new) <= 0.01), bool(surrogate(new) > 0)
    (True, True)

    ```
    """
    delta = check_delta(delta, "trpo_update")
    fvp = fisher_vector_product(kl_fn, params, damping)
    return trpo_update_with_product(
        surrogate_fn, kl_fn, fvp, damping, params, delta, cg_steps, backtrack_ratio, max_backtracks, accept_ratio
    )


def trpo_update_with_product(
    surrogate_fn: Callable[[Params], Array],
    kl_fn: Callable[[Params], Array],
    fvp: Callable[[Params], Params],
    damping: ScalarLike,
    params: Params,
    delta: Array,
    cg_steps: int,
    backtrack_ratio: float,
    max_backtracks: int,
    accept_ratio: float,
) -> Params:
    """`trpo_update` with its Fisher-vector product given (damped by `damping`)."""
    check_positive_int(cg_steps, "cg_steps", "trpo_update")
    g = jax.grad(surrogate_fn)(params)
    d = jnp.asarray(damping)
    step = _natural_gradient_step(g, fvp, delta, cg_steps, 1e-10, jnp.where(d > 0, d, 1.0))
    return backtracking_line_search(
        surrogate_fn,
        kl_fn,
        params,
        step,
        delta,
        _tree_dot(g, step),
        backtrack_ratio,
        max_backtracks,
        accept_ratio,
    )
