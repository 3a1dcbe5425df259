"""MLPClassifier and MLPRegressor: scikit-learn's multi-layer perceptrons.

What scikit-learn minimises (``BaseMultilayerPerceptron._backprop``, every solver),
with ``S = Σ_i s_i`` (``n`` without sample weights) and ``W_l`` the weights of layer l::

    F(θ) = (1/S) [Σ_i s_i L(z_i, y_i) + (α/2) Σ_l ‖W_l‖²]

where ``z_i`` is the network's last pre-activation and L the output's canonical loss:
binary log-loss of a logistic output (``classes_[1]`` is class 1), cross-entropy of a
softmax over all K classes (K ≥ 3), and ``½ ‖y − z‖²`` (identity output) for
regression. The intercepts are not penalised. Its gradient is ``(1/S)(Σ_i s_i ∇L_i
+ α W)``: the ``1/S`` factor scales F but does not move its minimiser, so refits with
other sample weights land where ``Σ_i s_i L_i + (α/2) ‖W‖²`` is stationary.
skinfluence therefore uses::

    R(θ) = (S/n) F(θ) = (1/n) Σ_i s_i L(z_i, y_i) + (α / 2n) Σ_l ‖W_l‖²

(``n·∂θ̂/∂s_j`` is the same for F and R). For several regression outputs
scikit-learn's reported ``loss_`` averages the squared error over outputs while its
gradient sums them; the fitted weights are a stationary point of the sum, which is
what R uses. θ = ``params_`` is scikit-learn's packing: every ``coefs_[l].ravel()``
(input unit by output unit), then every ``intercepts_[l]`` (see
:mod:`skinfluence._network` for the backpropagation and the Hessian).

Non-convergence: ``lbfgs`` stops on scipy's relative-decrease test and ``adam``/``sgd``
never reach an optimum; the explainer's optimality check then warns, and influences are
those of one Newton step from the given weights (Koh & Liang, appendix B).
"""

from sklearn.neural_network import MLPClassifier, MLPRegressor

from .._network import NetworkObjective
from ._losses import BinomialLoss, MultinomialLoss, SquaredErrorLoss
from ._targets import ClassLabels, RealTargets


def mlp_objective(est, X, y, sample_weight, **options):
    """R(θ) of a fitted MLPClassifier or MLPRegressor on (X, y, sample_weight)."""
    if isinstance(est, MLPClassifier):
        if est.out_activation_ not in ("logistic", "softmax") or (
                est.out_activation_ == "logistic" and est.n_outputs_ != 1):
            raise TypeError(
                "InfluenceExplainer explains MLPClassifier for one label per row "
                "(binary or multiclass), not multilabel targets."
            )
        targets = ClassLabels(est.classes_)
        loss = BinomialLoss() if est.n_outputs_ == 1 else MultinomialLoss()
    else:
        targets = RealTargets(est.n_outputs_)
        loss = SquaredErrorLoss(scale=0.5)  # ½ ‖y − z‖²
    y_enc = targets.encode(y, X.shape[0])
    return NetworkObjective(loss, est.coefs_, est.intercepts_, est.activation, X,
                            y_enc, sample_weight, est.alpha, targets=targets)


def validate(est):
    """Settings whose fitted weights are no optimum of a training objective."""
    if getattr(est, "early_stopping", False) and est.solver in ("adam", "sgd"):
        raise TypeError(
            f"{type(est).__name__}(early_stopping=True) trains on a random 90% of the "
            "rows and stops by a validation score, so its weights are no optimum of "
            "the training objective on the data it is given. Use "
            "early_stopping=False (and solver='lbfgs')."
        )
    if getattr(est, "loss", "squared_error") == "poisson":
        raise TypeError(
            "MLPRegressor(loss='poisson') is not supported yet (needs the Poisson "
            "loss of an exp output); use loss='squared_error'."
        )


def convergence_hint(est, n_samples):
    """Settings of ``est`` that bring the network to a stationary point."""
    if est.solver != "lbfgs":
        return ("adam and sgd never stop at an optimum: fit it with "
                "solver='lbfgs', a larger max_iter and max_fun and a small tol "
                "(e.g. tol=1e-10), or set damping > 0")
    return ("fit it more tightly: a larger max_iter and max_fun and a small tol "
            "(e.g. tol=1e-10; lbfgs also stops when the loss stops decreasing), "
            "or set damping > 0")


SUPPORTED = {MLPClassifier: mlp_objective, MLPRegressor: mlp_objective}

#: θ̂ is read from these (lists of arrays, flattened by ``fitted_state``).
FITTED_STATE = ("coefs_", "intercepts_")

DESCRIPTION = {
    (MLPClassifier, MLPRegressor): (
        "network (identity/logistic/tanh/relu hidden layers): log-loss of a logistic "
        "or softmax output; ½ ‖y − z‖² (multi-output)",
        "L2 `alpha` on every layer's weights, scaled by 1/Σs as scikit-learn does",
        "unpenalised", "≤ 2e-8 vs tight refits (tanh, logistic, relu off its kinks); "
        "LOO: Newton R = 0.9986, exact = refits to 1e-6"),
}
