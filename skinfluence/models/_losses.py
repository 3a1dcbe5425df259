"""Per-sample losses in decision space z, with first and second derivatives in z.

Every loss offers ``value_grad(Z, y) -> (loss (n,), dL/dz (n, k))`` and
``hessian(Z, y) -> d²L/dz² (n, k, k)``, plus two flags used by the objective:
``separable`` (a sum over outputs, diagonal d²L/dz²) and ``shift_invariant``
(unchanged when the same constant is added to every output, as a softmax).

Margin losses (classification by sign) use ỹ = ±1 and the margin m = ỹ z. With one
output, ỹ = +1 for ``classes_[1]``; with K outputs (one-vs-rest), ỹ_k = +1 on the row's
own class k and −1 elsewhere. Then dL/dz = ỹ φ'(m) and d²L/dz² = φ''(m).
"""

import numpy as np
from scipy.special import expit, log_expit, logsumexp, softmax


class BinomialLoss:
    """Log-loss of a binary logistic model, y in {0, 1}.

    ℓ = log(1 + e^z) − y z,  dℓ/dz = σ(z) − y,  d²ℓ/dz² = σ(z)(1 − σ(z)).
    """

    shift_invariant = False
    separable = True

    def value_grad(self, Z, y):
        z = Z[:, 0]
        loss = -log_expit(np.where(y == 1, z, -z))  # log(1 + e^{-ỹ z})
        return loss, (expit(z) - y)[:, None]

    def hessian(self, Z, y):
        p = expit(Z[:, 0])
        return (p * (1.0 - p))[:, None, None]


class MultinomialLoss:
    """Cross-entropy of a softmax over all K classes, y in {0, …, K−1}.

    ℓ = logsumexp(z) − z_y,  dℓ/dz = p − e_y,  d²ℓ/dz² = diag(p) − p pᵀ.
    """

    shift_invariant = True
    separable = False

    def value_grad(self, Z, y):
        rows = np.arange(len(y))
        loss = logsumexp(Z, axis=1) - Z[rows, y]
        dZ = softmax(Z, axis=1)
        dZ[rows, y] -= 1.0
        return loss, dZ

    def hessian(self, Z, y):
        P = softmax(Z, axis=1)
        H = -P[:, :, None] * P[:, None, :]
        K = P.shape[1]
        H[:, np.arange(K), np.arange(K)] += P
        return H


def signed_targets(y_index, n_outputs):
    """ỹ of shape (n, k): ±1 per output (binary: +1 for class 1; OvR: own class)."""
    if n_outputs == 1:
        return np.where(y_index == 1, 1.0, -1.0)[:, None]
    return np.where(y_index[:, None] == np.arange(n_outputs), 1.0, -1.0)


class MarginLoss:
    """L(z) = Σ_k φ(ỹ_k z_k) for a convex margin function φ (one-vs-rest separable)."""

    shift_invariant = False
    separable = True

    def phi(self, m):  # φ(m), φ'(m), φ''(m)
        raise NotImplementedError

    def value_grad(self, Z, y):
        Yt = signed_targets(y, Z.shape[1])
        value, d1, _ = self.phi(Yt * Z)
        return value.sum(axis=1), Yt * d1

    def hessian(self, Z, y):
        Yt = signed_targets(y, Z.shape[1])
        d2 = self.phi(Yt * Z)[2]
        n, k = d2.shape
        H = np.zeros((n, k, k))
        H[:, np.arange(k), np.arange(k)] = d2
        return H


class SquaredHingeLoss(MarginLoss):
    """φ(m) = max(0, 1 − m)²; once differentiable, generalized φ''(m) = 2·[m < 1]."""

    def phi(self, m):
        slack = np.maximum(0.0, 1.0 - m)
        return slack**2, -2.0 * slack, 2.0 * (m < 1.0)


class SmoothHingeLoss(MarginLoss):
    """Koh & Liang's smooth hinge φ_t(m) = t·log(1 + exp((1 − m)/t)), t > 0.

    φ' = −σ((1 − m)/t),  φ'' = σ(u)(1 − σ(u))/t with u = (1 − m)/t; → max(0, 1 − m)
    as t → 0.
    """

    def __init__(self, t):
        self.t = float(t)

    def phi(self, m):
        u = (1.0 - m) / self.t
        s = expit(u)
        return -self.t * log_expit(-u), -s, s * (1.0 - s) / self.t


class HingeLoss(MarginLoss):
    """φ(m) = max(0, 1 − m): φ' = −[m < 1], φ'' = 0 (the exact hinge, t = 0).

    Its curvature lives on the margin; families pin the rows there (``pinned``).
    """

    def phi(self, m):
        inside = m < 1.0
        return np.maximum(0.0, 1.0 - m), -1.0 * inside, np.zeros_like(m)


def hinge_loss(smoothing, auto):
    """The hinge at temperature t: smooth for t > 0, exact for t = 0.

    ``smoothing="auto"`` takes the family's default ``auto``.
    """
    t = auto if smoothing == "auto" else smoothing
    return SmoothHingeLoss(t) if t > 0 else HingeLoss()


class ModifiedHuberLoss(MarginLoss):
    """φ(m) = max(0, 1 − m)² for m ≥ −1, −4m otherwise (once differentiable)."""

    def phi(self, m):
        slack = np.maximum(0.0, 1.0 - m)
        quad = m >= -1.0
        value = np.where(quad, slack**2, -4.0 * m)
        d1 = np.where(quad, -2.0 * slack, -4.0)
        return value, d1, 2.0 * (quad & (m < 1.0))


class SquaredErrorLoss:
    """L(z) = Σ_k (y_k − z_k)² (no ½, as in Ridge's objective); real targets (n, k)."""

    shift_invariant = False
    separable = True

    def __init__(self, scale=1.0):
        self.scale = scale  # 0.5 for SGD's squared_error (½ (y − z)²)

    def value_grad(self, Z, Y):
        r = Z - Y
        return self.scale * (r**2).sum(axis=1), 2.0 * self.scale * r

    def hessian(self, Z, Y):
        n, k = Z.shape
        H = np.zeros((n, k, k))
        H[:, np.arange(k), np.arange(k)] = 2.0 * self.scale
        return H


class DecisionValue:
    """"Loss" = the decision value itself (mean over outputs): prediction influence."""

    shift_invariant = False
    separable = True

    def value_grad(self, Z, y):
        k = Z.shape[1]
        return Z.mean(axis=1), np.full_like(Z, 1.0 / k)

    def hessian(self, Z, y):
        return np.zeros(Z.shape + (Z.shape[1],))


class OnOutputs:
    """A test loss of the predicted outputs only (the others, e.g. a fitted scale,
    are not predictions): ``loss`` sees ``Z[:, outputs]``; dL/dz is zero elsewhere."""

    shift_invariant = False
    separable = True

    def __init__(self, loss, outputs, n_outputs):
        self.loss, self.outputs, self.n_outputs = loss, np.asarray(outputs), n_outputs

    def value_grad(self, Z, y):
        value, d1 = self.loss.value_grad(Z[:, self.outputs], y)
        dZ = np.zeros(Z.shape)
        dZ[:, self.outputs] = d1
        return value, dZ


def test_loss(name, objective):
    """A test-side loss by name, for ``objective``'s targets and outputs.

    "log_loss" (classifiers: sigmoid of one output, softmax over several), "hinge"
    (exact), "squared_hinge", "squared_error" (regressors), "decision" (the decision
    value; the prediction for regressors). Any object with ``value_grad(Z, y)`` in the
    family's target encoding is used as is. Both see only the ``predicted`` outputs
    of the objective (``OnOutputs``) when some outputs are not predictions, or the
    objective's ``prediction(Z)`` when it has one (``OnPrediction``).
    """
    if not isinstance(name, str):
        if not hasattr(name, "value_grad"):
            raise TypeError(
                "test_loss must be a name or an object with value_grad(Z, y) -> "
                f"(loss, dL/dz); got {name!r}."
            )
        return _on_predicted(name, objective)
    classifier = objective.targets.classes is not None
    predicted = getattr(objective, "predicted", None)  # the outputs that predict
    k = objective.n_outputs if predicted is None else len(predicted)
    losses = {"decision": DecisionValue}
    if classifier:
        losses.update({
            "log_loss": BinomialLoss if k == 1 else MultinomialLoss,
            "hinge": HingeLoss,
            "squared_hinge": SquaredHingeLoss,
        })
    else:
        losses["squared_error"] = SquaredErrorLoss
    if name not in losses:
        raise ValueError(
            f"test_loss={name!r} is not available for this "
            f"{'classifier' if classifier else 'regressor'}; choose one of "
            f"{sorted(losses)} or pass an object with value_grad(Z, y)."
        )
    return _on_predicted(losses[name](), objective)


class OnPrediction:
    """A test loss of the model's predictions when they are a non-linear function
    of the outputs: ``prediction(Z) -> (P (n, m), ∂P/∂Z (n, m, k))`` (e.g. ν-SVC's
    decision value f/ρ); ``loss`` sees P and dL/dZ follows by the chain rule."""

    shift_invariant = False
    separable = False

    def __init__(self, loss, prediction):
        self.loss, self.prediction = loss, prediction

    def value_grad(self, Z, y):
        P, J = self.prediction(Z)
        value, dP = self.loss.value_grad(P, y)
        return value, np.einsum("nm,nmk->nk", dP, J)


def _on_predicted(loss, objective):
    prediction = getattr(objective, "prediction", None)
    if prediction is not None:  # predictions non-linear in the outputs
        return OnPrediction(loss, prediction)
    predicted = getattr(objective, "predicted", None)
    if predicted is None or len(predicted) == objective.n_outputs:
        return loss
    return OnOutputs(loss, predicted, objective.n_outputs)
