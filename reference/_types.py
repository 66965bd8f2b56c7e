"""Shared jaxtyping aliases and scalar types."""

from typing import Any

from jaxtyping import Array, ArrayLike, Float, Int, PyTree, Real, Shaped

ScalarLike = float | int | ArrayLike
"""A Python number or a 0-d array (e.g. `gamma`)."""

Params = PyTree[Any]
"""A model's parameters: any pytree of arrays (an equinox module's arrays, a tuple of them, …)."""

__all__ = ["Array", "ArrayLike", "Float", "Int", "Params", "Real", "ScalarLike", "Shaped"]
