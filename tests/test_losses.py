"""Closed-form loss derivatives in z against finite differences of the loss value."""

import numpy as np
import pytest

from skinfluence.models._losses import (
    BinomialLoss,
    ModifiedHuberLoss,
    MultinomialLoss,
    SmoothHingeLoss,
    SquaredErrorLoss,
    SquaredHingeLoss,
)

rng = np.random.RandomState(0)


def _case(loss, k):
    Z = rng.uniform(-3, 3, (40, k))
    if isinstance(loss, SquaredErrorLoss):
        return Z, rng.standard_normal((40, k))
    y = rng.randint(0, max(k, 2), 40)
    return Z, y


LOSSES = [
    (BinomialLoss(), 1),
    (MultinomialLoss(), 4),
    (SquaredHingeLoss(), 1),
    (SquaredHingeLoss(), 3),
    (SmoothHingeLoss(0.1), 1),
    (SmoothHingeLoss(0.5), 3),
    (ModifiedHuberLoss(), 1),
    (SquaredErrorLoss(), 2),
    (SquaredErrorLoss(0.5), 1),
]


@pytest.mark.parametrize("loss, k", LOSSES)
def test_derivatives_match_finite_differences(loss, k):
    Z, y = _case(loss, k)
    value, grad = loss.value_grad(Z, y)
    hess = loss.hessian(Z, y)
    h = 1e-6
    for a in range(k):
        step = np.zeros_like(Z)
        step[:, a] = h
        vp, gp = loss.value_grad(Z + step, y)
        vm, gm = loss.value_grad(Z - step, y)
        # (random z avoids the kinks of the once-differentiable losses at m = ±1)
        np.testing.assert_allclose(grad[:, a], (vp - vm) / (2 * h), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(hess[:, :, a], (gp - gm) / (2 * h), rtol=1e-5,
                                   atol=1e-5)
    assert np.all(np.linalg.eigvalsh(hess) > -1e-12)  # convex in z


def test_smooth_hinge_tends_to_hinge():
    m = np.linspace(-2, 3, 11)
    value = SmoothHingeLoss(1e-4).phi(m)[0]
    np.testing.assert_allclose(value, np.maximum(0, 1 - m), atol=1e-4)
