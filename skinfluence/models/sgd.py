"""SGDClassifier and SGDRegressor: the regularised objective that SGD descends.

What scikit-learn's ``_plain_sgd`` (``sklearn/linear_model/_sgd_fast.pyx.tp``) does
for each training row i drawn (uniformly, one epoch after another), with step η::

    w ← max(0, 1 − η α (1 − r)) · w                  (L2 part: weight decay)
    w ← w − η s_i c_i L'(z_i) x_i,   b ← b − η s_i c_i L'(z_i) · intercept_decay
    L1 part: cumulative truncated penalty u += η α r (Tsuruoka et al.)

with ``r = l1_ratio`` (0 for ``penalty="l2"``, 1 for ``"l1"``). Averaged over the rows
this is a (sub)gradient step on the mean objective, which the code itself reports as
``objective_sum / train_count`` (loss plus ``α((1 − r)·½‖w‖² + r‖w‖₁)`` per row)::

    F(W, b) = (1/n) Σ_i s_i Σ_k c_ik L_k(z_i) + α ((1 − r)/2 ‖W‖² + r ‖W‖₁)

- The intercept is neither decayed nor penalised. ``intercept_decay`` (0.01 for sparse
  X) only shrinks the intercept's step size, which leaves the stationary point — and
  hence the objective — unchanged.
- The sample weight multiplies the loss step, not the weight decay: the penalty is not
  weighted, and the mean is over the n rows (not Σ s_i).
- With the equivalent ``C = 1/(n α)``, ``F / α = C Σ_i s_i c_i L + ½‖W‖² + …``, so
  skinfluence's ``R = objective / (C n)`` is F itself: ``quad_penalty = α (1 − r)``
  and ``l1_penalty = α r`` on the coefficients, 0 on the intercept. Coefficients held
  at exactly zero by an L1 part have zero influence (active set, as for logistic).

Losses in decision space (``coef_`` is (1, d) for binary classification and
regression, (K, d) for K > 2 classes, fitted one-vs-rest, each output independently).
Classifiers use the margin m = ỹ z, ỹ = ±1 (+1 for ``classes_[1]`` when binary, for
the row's own class on output k when one-vs-rest):

- ``log_loss``: binary ℓ = log(1 + e^z) − y z, y ∈ {0, 1} (``CyHalfBinomialLoss``);
  one-vs-rest φ(m) = log(1 + e^{−m}) per output (*not* a softmax).
- ``squared_hinge``: φ(m) = max(0, 1 − m)²; ``modified_huber``: max(0, 1 − m)² for
  m ≥ −1, −4m below (both once differentiable: generalized second derivatives).
- ``hinge``: φ(m) = max(0, 1 − m) is not differentiable; it is replaced by the smooth
  hinge t·log(1 + exp((1 − m)/t)) with t = the explainer's ``smoothing`` (Koh & Liang,
  section 4.1; "auto" = 1e-3), in the Hessian, the gradients and the test loss alike.
  ``smoothing=0`` (the exact hinge) is refused: it needs the subgradients of the rows
  on the margin, which an SVM's dual coefficients give and SGD does not.

Regressors use the residual r = z − y (one output):

- ``squared_error``: ½ r² (``CyHalfSquaredError``).
- ``huber`` (δ = ``epsilon``): ½ r² for |r| ≤ δ, δ(|r| − δ/2) beyond (``CyHuberLoss``).
- ``squared_epsilon_insensitive``: max(0, |r| − ε)².
- ``epsilon_insensitive``: max(0, |r| − ε) is not differentiable; replaced, like the
  hinge, by t·[log(1 + e^{(r − ε)/t}) + log(1 + e^{(−r − ε)/t})] (t = ``smoothing``).

Class weights (``SGDClassifier.class_weight``) come from plain class counts
(``compute_class_weight`` without sample weights), so they do not move with the sample
weights. Binary: rows of ``classes_[1]`` carry c_1 and the others c_0 (``weight_pos``,
``weight_neg``); one-vs-rest: output k's loss of a row of class k carries c_k, every
other row's 1.

Refused with a clear error: ``loss="perceptron"`` (max(0, −m) is piecewise linear: no
curvature anywhere but at its kink) and the regression losses in a classifier;
``learning_rate="pa1"/"pa2"`` (passive-aggressive steps do not descend F);
``early_stopping=True`` (SGD then trains on a random subset of the rows, which the
fitted model does not record).

SGD stops far from the exact minimiser: the explainer measures the Newton step
(``optimality_``), warns, and the influences are those of a Newton step from the SGD
weights (Koh & Liang, appendix B).
"""

import numpy as np
from scipy.special import expit, log_expit
from sklearn.linear_model import SGDClassifier, SGDRegressor

from .._objective import LinearObjective
from ._class_weight import class_weight_recipe, recount_on_removal
from ._losses import (
    BinomialLoss,
    MarginLoss,
    ModifiedHuberLoss,
    SmoothHingeLoss,
    SquaredErrorLoss,
    SquaredHingeLoss,
)
from ._targets import ClassLabels, RealTargets

#: Temperature of the smooth hinge / ε-insensitive loss for ``smoothing="auto"``.
AUTO_SMOOTHING = 1e-3


class OneVsRestLogLoss(MarginLoss):
    """φ(m) = log(1 + e^{−m}) on every output (SGD's one-vs-rest log-loss).

    φ' = −σ(−m),  φ'' = σ(m) σ(−m).
    """

    def phi(self, m):
        s = expit(-m)
        return -log_expit(m), -s, s * (1.0 - s)


class ResidualLoss:
    """L(z) = Σ_k ψ(z_k − y_k) for a convex residual function ψ; real targets (n, k)."""

    shift_invariant = False
    separable = True

    def psi(self, r):  # ψ(r), ψ'(r), ψ''(r)
        raise NotImplementedError

    def value_grad(self, Z, Y):
        value, d1, _ = self.psi(Z - Y)
        return value.sum(axis=1), d1

    def hessian(self, Z, Y):
        d2 = self.psi(Z - Y)[2]
        n, k = d2.shape
        H = np.zeros((n, k, k))
        H[:, np.arange(k), np.arange(k)] = d2
        return H


class HuberLoss(ResidualLoss):
    """ψ(r) = ½ r² for |r| ≤ δ, δ(|r| − δ/2) beyond; generalized ψ'' = [|r| ≤ δ]."""

    def __init__(self, delta):
        self.delta = float(delta)

    def psi(self, r):
        a, d = np.abs(r), self.delta
        inside = a <= d
        value = np.where(inside, 0.5 * r**2, d * (a - 0.5 * d))
        return value, np.clip(r, -d, d), inside.astype(np.float64)


class SquaredEpsilonInsensitiveLoss(ResidualLoss):
    """ψ(r) = max(0, |r| − ε)²;  ψ' = 2 sign(r) max(0, |r| − ε),  ψ'' = 2·[|r| > ε]."""

    def __init__(self, epsilon):
        self.epsilon = float(epsilon)

    def psi(self, r):
        slack = np.maximum(0.0, np.abs(r) - self.epsilon)
        return slack**2, 2.0 * np.sign(r) * slack, 2.0 * (slack > 0)


class SmoothEpsilonInsensitiveLoss(ResidualLoss):
    """Smooth ε-insensitive loss ψ_t(r) = t·[softplus((r − ε)/t) + softplus((−r − ε)/t)].

    Each term is the smooth hinge of one side of the tube; ψ_t → max(0, |r| − ε) as
    t → 0. With u± = (±r − ε)/t: ψ' = σ(u+) − σ(u−), ψ'' = [σ'(u+) + σ'(u−)]/t.
    """

    def __init__(self, epsilon, t):
        self.epsilon = float(epsilon)
        self.t = float(t)

    def psi(self, r):
        up, um = (r - self.epsilon) / self.t, (-r - self.epsilon) / self.t
        sp, sm = expit(up), expit(um)
        value = -self.t * (log_expit(-up) + log_expit(-um))  # t·softplus(u±)
        return value, sp - sm, (sp * (1.0 - sp) + sm * (1.0 - sm)) / self.t


def _temperature(est, smoothing):
    """t > 0 of the smoothed non-differentiable losses ("auto" → ``AUTO_SMOOTHING``)."""
    t = AUTO_SMOOTHING if smoothing == "auto" else float(smoothing)
    if t <= 0:
        raise ValueError(
            f"{type(est).__name__}(loss={est.loss!r}) needs smoothing > 0: the exact "
            "(t = 0) loss has no curvature off its kink, and unlike an SVM, SGD gives "
            "no dual coefficients to pin the rows on the kink. Use "
            "InfluenceExplainer(smoothing='auto') or a positive temperature."
        )
    return t


def _classifier_loss(est, n_outputs, smoothing):
    loss = est.loss
    if loss == "log_loss":
        return BinomialLoss() if n_outputs == 1 else OneVsRestLogLoss()
    if loss == "hinge":
        return SmoothHingeLoss(_temperature(est, smoothing))
    if loss == "squared_hinge":
        return SquaredHingeLoss()
    if loss == "modified_huber":
        return ModifiedHuberLoss()
    raise ValueError(
        f"SGDClassifier(loss={loss!r}) is not supported: influence functions need a "
        "convex loss with curvature. Supported losses: 'log_loss', 'hinge' (smoothed, "
        "see InfluenceExplainer(smoothing=...)), 'squared_hinge', 'modified_huber'."
    )


def _regressor_loss(est, smoothing):
    loss = est.loss
    if loss == "squared_error":
        return SquaredErrorLoss(0.5)  # ½ (y − z)²
    if loss == "huber":
        return HuberLoss(est.epsilon)
    if loss == "squared_epsilon_insensitive":
        return SquaredEpsilonInsensitiveLoss(est.epsilon)
    if loss == "epsilon_insensitive":
        return SmoothEpsilonInsensitiveLoss(est.epsilon, _temperature(est, smoothing))
    raise ValueError(
        f"SGDRegressor(loss={loss!r}) is not supported. Supported losses: "
        "'squared_error', 'huber', 'squared_epsilon_insensitive', "
        "'epsilon_insensitive' (smoothed, see InfluenceExplainer(smoothing=...))."
    )


def _check_training_scheme(est):
    """Refuse fits that do not descend F on all the rows."""
    name = type(est).__name__
    if est.learning_rate in ("pa1", "pa2"):
        raise ValueError(
            f"{name}(learning_rate={est.learning_rate!r}) is not supported: "
            "passive-aggressive updates do not minimise a regularised training "
            "objective, so there is no optimum to take influences at. Use another "
            "learning_rate (e.g. 'optimal')."
        )
    if est.early_stopping:
        raise ValueError(
            f"{name}(early_stopping=True) is not supported: SGD then trains on a "
            "random subset of the rows (validation_fraction held out) that the fitted "
            "model does not record. Fit with early_stopping=False."
        )


def _penalties(est, n_coef, n_params):
    """(quad, l1) in R units: α(1 − r) and α r on the coefficients, 0 on intercepts."""
    kind = str(est.penalty).lower()  # as scikit-learn's _get_penalty_type
    r = {"none": None, "l2": 0.0, "l1": 1.0, "elasticnet": est.l1_ratio}[kind]
    quad, l1 = np.zeros(n_params), np.zeros(n_params)
    if r is not None:
        quad[:n_coef] = est.alpha * (1.0 - r)  # α (1 − r)/2 ‖W‖²
        l1[:n_coef] = est.alpha * r  # α r ‖W‖₁
    return quad, l1


def sgd_classifier_objective(est, X, y, sample_weight, **options):
    """R(θ) = F of a fitted SGDClassifier on (X, y, sample_weight).

    Parameters
    ----------
    est : SGDClassifier
        Fitted estimator.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training data (float64).
    y : ndarray of shape (n_samples,)
        Training labels.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights.
    **options
        ``smoothing``: temperature t > 0 of the smooth hinge (``loss="hinge"``);
        "auto" is ``AUTO_SMOOTHING``.

    Returns
    -------
    objective : LinearObjective
    """
    _check_training_scheme(est)
    targets = ClassLabels(est.classes_)
    y_index = targets.encode(y, X.shape[0])
    coef = np.atleast_2d(est.coef_)
    k, d = coef.shape
    loss = _classifier_loss(est, k, options.get("smoothing", "auto"))
    intercept = np.ravel(est.intercept_) if est.fit_intercept else None

    row_cw, _ = class_weight_recipe(
        est.class_weight, est.classes_, y_index, sample_weight,
        from_sample_weight=False,
    )
    if k == 1:
        class_weight = row_cw  # c_1 on classes_[1] rows, c_0 on the others
    else:
        # one-vs-rest: output k weighs its own class by c_k and the rest by 1
        own = y_index[:, None] == np.arange(k)
        class_weight = np.where(own, row_cw[:, None], 1.0)

    p = k * d + (k if est.fit_intercept else 0)
    quad, l1 = _penalties(est, k * d, p)
    risk = LinearObjective(
        loss, coef, intercept, X, y_index, sample_weight, class_weight, quad, l1,
        targets=targets,
    )
    # a refit without rows recounts the classes ("balanced")
    return recount_on_removal(risk, est.class_weight, y_index, len(est.classes_),
                              one_vs_rest=k > 1)


def sgd_regressor_objective(est, X, y, sample_weight, **options):
    """R(θ) = F of a fitted SGDRegressor on (X, y, sample_weight).

    Parameters
    ----------
    est : SGDRegressor
        Fitted estimator.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training data (float64).
    y : ndarray of shape (n_samples,)
        Training targets.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights.
    **options
        ``smoothing``: temperature t > 0 of the smooth ε-insensitive loss
        (``loss="epsilon_insensitive"``); "auto" is ``AUTO_SMOOTHING``.

    Returns
    -------
    objective : LinearObjective
    """
    _check_training_scheme(est)
    targets = RealTargets(1)
    Y = targets.encode(y, X.shape[0])
    coef = np.reshape(est.coef_, (1, -1))
    d = coef.shape[1]
    loss = _regressor_loss(est, options.get("smoothing", "auto"))
    intercept = np.ravel(est.intercept_) if est.fit_intercept else None
    quad, l1 = _penalties(est, d, d + (1 if est.fit_intercept else 0))
    return LinearObjective(
        loss, coef, intercept, X, Y, sample_weight, np.ones(X.shape[0]), quad, l1,
        targets=targets,
    )


def convergence_hint(est, n_samples):
    """Where an exact solver of the same objective exists, name it; else fit longer."""
    exact = _exact_equivalent(est, n_samples)
    longer = "fit SGD longer, e.g. with max_iter=10000, tol=1e-8, average=True"
    if exact is None:
        return f"SGD stops near its optimum, not at it: {longer}"
    return (f"SGD stops near its optimum, not at it: for exact influences fit the "
            f"same objective with {exact}, or {longer}")


def _exact_equivalent(est, n):
    """An exact solver of F = (1/n) Σ s_i L + α/2 ‖w‖² (C = 1/(n α)), or None."""
    kind = str(est.penalty).lower()
    if kind not in ("l2", "none"):
        return None
    C = "np.inf" if kind == "none" else f"{1.0 / (n * est.alpha):.6g}"
    if isinstance(est, SGDRegressor):
        if est.loss != "squared_error":
            return None
        return ("LinearRegression()" if kind == "none" else
                f"Ridge(alpha={n * est.alpha:.6g}) (alpha = n·alpha)")
    if len(est.classes_) != 2 or est.class_weight is not None:
        return None  # SGD is one-vs-rest with class weights from counts
    if est.loss == "log_loss":
        return (f"LogisticRegression(C={C}, solver='newton-cholesky', tol=1e-10) "
                "(C = 1/(n·alpha))")
    if est.loss == "hinge" and kind == "l2":
        return f"SVC(kernel='linear', C={C}) (C = 1/(n·alpha))"
    return None


SUPPORTED = {
    SGDClassifier: sgd_classifier_objective,
    SGDRegressor: sgd_regressor_objective,
}

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (SGDClassifier, SGDRegressor): (
        "their convex losses (hinge / ε-insensitive smoothed)",
        "L2, L1, elastic-net (mean objective)", "unpenalised",
        "not an optimum: the Newton step from the SGD weights (warned)"),
}
