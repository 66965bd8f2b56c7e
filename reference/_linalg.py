r"""The linear solves behind policy evaluation and the visitation measure: a lineax solver.

Every exact value in the notes comes from one linear system $(I - \gamma P_\pi)\,x = b$ (A10) or
its transpose (the visitation $\rho_\pi$ of A22). In float64 at large $|S|$ the LU factorisation
is nearly all the time. `MixedPrecisionLU` is LAPACK's `dsgesv` as a lineax solver: factorise in
float32 (about twice as fast), then refine the float64 solution with float64 residuals until its
backward error is that of a float64 solve, and fall back to a float64 LU if refinement does not
converge. For these systems $\kappa_\infty(I-\gamma P_\pi) \le (1+\gamma)/(1-\gamma)$, so
refinement converges in two or three steps unless $\gamma$ is within $\sim 10^{-6}$ of one.
Because it is a `lineax.AbstractLinearSolver`, lineax supplies the derivatives (JVP and
transpose rules of `linear_solve`) and `jit`/`vmap` work as for `lineax.LU`.

Source: Langou, Langou, Luszczek, Kurzak, Buttari, Dongarra, "Exploiting the performance of
32 bit floating point arithmetic in obtaining 64 bit accuracy", SC 2006 (LAPACK `dsgesv`);
Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., ch. 12.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx

from ._types import Array

# Below this size the float64 LU costs microseconds and refinement would only add work.
_MIXED_PRECISION_MIN_SIZE = 128
# Up to this size a system is solved by unrolled elimination, which vectorises under `vmap`.
_GAUSS_JORDAN_MAX_SIZE = 16
# LAPACK dsgesv's ITERMAX.
_MAX_REFINEMENTS = 30


class _Factorisation(eqx.Module):
    matrix: Array  # A, in its own precision, for the residuals
    lu: Array  # packed L (unit diagonal) and U of Π·Aᵀ, in the factorisation's precision
    permutation: Array
    transpose: bool = eqx.field(static=True)  # solve with Aᵀ instead of A


def _lu(matrix: Array, dtype: Any) -> tuple[Array, Array]:
    lu, _, permutation = jax.lax.linalg.lu(matrix.astype(dtype))
    return lu, permutation


def _lu_solve(lu: Array, permutation: Array, b: Array, transpose: bool) -> Array:
    """Solve M x = b (or Mᵀ x = b) from the factors of Π·M = L·U, in the factors' precision."""
    b = b.astype(lu.dtype)[:, None]
    tri = jax.lax.linalg.triangular_solve
    if not transpose:  # M = Πᵀ L U:  L y = Π b,  U x = y
        y = tri(lu, b[permutation], left_side=True, lower=True, unit_diagonal=True)
        return tri(lu, y, left_side=True, lower=False)[:, 0]
    # Mᵀ = Uᵀ Lᵀ Π:  Uᵀ y = b,  Lᵀ z = y,  x = Πᵀ z
    y = tri(lu, b, left_side=True, lower=False, transpose_a=True)
    z = tri(lu, y, left_side=True, lower=True, unit_diagonal=True, transpose_a=True)[:, 0]
    return jnp.zeros_like(z).at[permutation].set(z)


def _gauss_jordan(matrix: Array, b: Array) -> Array:
    """Solve A x = b by Gauss–Jordan elimination without pivoting, unrolled (small n only).

    Safe without pivoting for the strictly diagonally dominant Bellman systems (row dominance of
    I − γP_π, column dominance of its transpose: the pivots stay ≥ 1 − γ and the growth factor
    ≤ 2; Wilkinson, see Higham §9.5). Unlike LAPACK's per-matrix calls it vectorises under `vmap`.
    After step k the first k columns of [A | b] are unit vectors and are dropped, so step k
    updates an n × (n − k) block: half the work of updating the whole augmented matrix.
    """
    n = matrix.shape[0]
    block = jnp.concatenate([matrix, b[:, None]], axis=1)  # columns k, …, n of the reduced [A | b]
    for k in range(n):
        pivot_row = block[k, 1:] / block[k, 0]
        block = (block[:, 1:] - block[:, :1] * pivot_row[None, :]).at[k].set(pivot_row)
    return block[:, 0]


class MixedPrecisionLU(lx.AbstractLinearSolver):
    r"""LU factorisation in float32 with iterative refinement to float64 accuracy (`dsgesv`).

    For a float64 matrix of size $n \ge 128$: factorise $PA = LU$ in float32, then repeat

    $$r = b - A x \ \text{(float64)},\qquad x \leftarrow x + (LU)^{-1} P r$$

    until $\|r\|_\infty \le \sqrt n\,\varepsilon_{64}\,\|A\|_\infty\|x\|_\infty$ (a backward error
    as small as a float64 LU solve's; LAPACK's test), at most 30 times; if that test still fails,
    solve with a float64 LU. Float32 matrices and those of 17–127 rows use one LU in their own
    precision; up to 16 rows, unrolled Gauss–Jordan elimination without pivoting.

    For the Bellman systems $I - \gamma P_\pi$ and their transposes only: the no-pivoting path
    relies on their strict diagonal dominance. Square matrices (`lineax.MatrixLinearOperator`)
    and array right-hand sides. Under `vmap` the float64 fallback is computed for every batch
    element (a batched `lax.cond` evaluates both branches), so a batch of large systems costs a
    float32 and a float64 LU.
    """

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]) -> _Factorisation:
        del options
        if operator.in_size() != operator.out_size():
            raise ValueError("MixedPrecisionLU: the operator must be square.")
        matrix = operator.as_matrix()
        if matrix.shape[0] <= _GAUSS_JORDAN_MAX_SIZE:  # no factorisation kept: see `compute`
            return _Factorisation(matrix, matrix, jnp.zeros((0,), jnp.int32), False)
        dtype = jnp.float32 if _refines(matrix) else matrix.dtype
        # LAPACK factorises column-major matrices and XLA's are row-major: factorising Aᵀ reads
        # A's memory as it is, where factorising A would first need a transposed copy.
        lu, permutation = _lu(matrix.T, dtype)
        return _Factorisation(matrix, lu, permutation, False)

    def compute(
        self, state: _Factorisation, vector: Any, options: dict[str, Any]
    ) -> tuple[Array, lx.RESULTS, dict[str, Any]]:
        del options
        if not isinstance(vector, jax.Array) or vector.ndim != 1:
            raise ValueError("MixedPrecisionLU: the right-hand side must be a 1-D array.")
        A = state.matrix.T if state.transpose else state.matrix
        b = vector.astype(A.dtype)
        if A.shape[0] <= _GAUSS_JORDAN_MAX_SIZE:
            return _gauss_jordan(A, b), lx.RESULTS.successful, {}
        # The factors are of Aᵀ: A x = b is the transposed solve, Aᵀ x = b the plain one.
        x = _lu_solve(state.lu, state.permutation, b, not state.transpose).astype(A.dtype)
        if state.lu.dtype == A.dtype:
            return x, lx.RESULTS.successful, {}

        n = A.shape[0]
        tolerance = jnp.sqrt(n) * jnp.finfo(A.dtype).eps * jnp.max(jnp.sum(jnp.abs(A), axis=1))

        def small(x: Array, r: Array) -> Array:
            return jnp.max(jnp.abs(r)) <= tolerance * jnp.max(jnp.abs(x))

        def cond(carry: tuple[Array, Array, Array]) -> Array:
            k, x, r = carry
            return (k < _MAX_REFINEMENTS) & ~small(x, r) & jnp.all(jnp.isfinite(x))

        def body(carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
            k, x, r = carry
            x = x + _lu_solve(state.lu, state.permutation, r, not state.transpose).astype(A.dtype)
            return k + 1, x, b - A @ x

        k, x, r = jax.lax.while_loop(cond, body, (jnp.asarray(0, jnp.int32), x, b - A @ x))

        def double() -> Array:
            # Factorise A itself here (not Aᵀ): its transposed copy is made inside this branch,
            # where XLA would otherwise copy A for the factorisation on every call.
            lu, permutation = _lu(A, A.dtype)
            return _lu_solve(lu, permutation, b, False)

        x = jax.lax.cond(small(x, r) & jnp.all(jnp.isfinite(x)), lambda: x, double)
        return x, lx.RESULTS.successful, {"num_refinements": k}

    def transpose(self, state: _Factorisation, options: dict[str, Any]) -> tuple[_Factorisation, dict[str, Any]]:
        del options
        return _Factorisation(state.matrix, state.lu, state.permutation, not state.transpose), {}

    def conj(self, state: _Factorisation, options: dict[str, Any]) -> tuple[_Factorisation, dict[str, Any]]:
        del options
        return state, {}  # real matrices only

    def assume_full_rank(self) -> bool:
        return True


def _refines(matrix: Array) -> bool:
    return matrix.dtype == jnp.float64 and matrix.shape[0] >= _MIXED_PRECISION_MIN_SIZE


def solve_square(matrix: Array, b: Array) -> Array:
    r"""$x = A^{-1} b$ with `MixedPrecisionLU` (lineax), differentiable in `matrix` and `b`."""
    return lx.linear_solve(lx.MatrixLinearOperator(matrix), b, MixedPrecisionLU()).value
