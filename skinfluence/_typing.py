"""Type aliases of the public API (PEP 484; the package ships ``py.typed``)."""

from typing import Literal, TypeAlias

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

#: Features: an array-like (numpy array, list, pandas DataFrame) or a sparse matrix.
MatrixLike: TypeAlias = ArrayLike | sp.spmatrix | sp.sparray

#: Float results.
FloatArray: TypeAlias = NDArray[np.float64]

#: Row numbers.
IntArray: TypeAlias = NDArray[np.intp]

#: A test-side loss: a name or an object with ``value_grad(Z, y)``.
TestLoss: TypeAlias = str | object | None

#: Removal methods.
Method: TypeAlias = Literal["influence", "newton", "exact"]

__all__ = ["ArrayLike", "FloatArray", "IntArray", "MatrixLike", "Method", "TestLoss"]
