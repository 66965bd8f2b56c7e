"""Shared jaxtyping aliases and scalar types."""

from jaxtyping import Array, ArrayLike, Float, Int, Real, Shaped

ScalarLike = float | int | ArrayLike
"""A Python number or a 0-d array (e.g. `gamma`)."""

__all__ = ["Array", "ArrayLike", "Float", "Int", "Real", "ScalarLike", "Shaped"]
