"""NuSVC (binary) and NuSVR, any kernel: libsvm's ν-objectives, with ρ / ε in θ.

scikit-learn's libsvm solves the ν-problems in the dual; with the row weights
``W_i = s_i`` (sample weights; NuSVC *ignores* ``class_weight``, checked against
refits) the primal problems are, for functions ``f(x) = w·φ(x) + b``::

    ν-SVC: F(w, b, ρ) = ½‖w‖² + Σ_i s_i [max(0, ρ − ỹ_i f(x_i)) − ν ρ]     (ỹ = ±1)
    ν-SVR: F(w, b, ε) = ½‖w‖² + C Σ_i s_i [max(0, |y_i − f(x_i)| − ε) + ν ε]

(the dual constraints ``Σ_i α_i = ν Σ_i s_i`` and ``Σ_i (α_i + α_i*) = C ν Σ_i s_i``,
with ``0 ≤ α_i ≤ s_i`` and ``≤ C s_i``, are the stationarity in ρ and ε). A row's
weight is its multiplicity in both terms: weight 2 is the row twice (checked against
refits), and the margin offset ρ and the tube width ε are fitted parameters.

ν-SVR reports ``f`` itself. skinfluence's R = F / (C n); θ = [w, b, ε], ε an output
that carries only an intercept (its coefficients are structural zeros, as
HuberRegressor's σ); ``params_`` = [``coef_`` (or the dual coefficients on every
training row for other kernels), ``intercept_``, ε]. ε is not an attribute of the
estimator: it is read off the rows on the tube's edges (|y − f| = ε).

ν-SVC reports the rescaled function ``f/ρ`` (``dual_coef_`` = α_i ỹ_i / ρ,
``intercept_`` = b / ρ): F is homogeneous (F(cθ; c s) = c² F(θ; s)), so the
rescaled model is scale-free, and ρ itself is ``ρ̂ = ν Σ_i s_i / Σ_i |dual_coef_i|``.
skinfluence uses the solution at ρ = 1, the optimum of F(θ; s / ρ̂) (same model),
times ρ̂ / n: R(θ) = (1/n) [½ ρ̂ ‖w‖² + Σ_i s_i (max(0, ρ − ỹ_i f_i) − ν ρ)], whose
minimiser is θ̂ = [``coef_``, ``intercept_``, ρ = 1] (the reported ones: the
equivalent C-SVC has C = 1/ρ̂). The decision value is the ratio ``z₀/z₁`` of the
outputs (z₀ = f, z₁ = ρ): named test losses and ``transform`` see it
(``prediction``); ``params_`` = [``coef_`` (dual coefficients for other kernels),
``intercept_``, ``rho`` (libsvm's ρ̂)], whose influence is the Jacobian of
(w/ρ, b/ρ, ρ̂ ρ) at θ̂. To express the value θ̂ ↦ params_ linearly, θ carries a
third intercept-only output κ ≡ 1 (``fixed``): params_ = [P(w, b) + P̂ (κ − ρ),
ρ̂ ρ] (P the dual map of the kernel features, identity for the linear kernel).

Both losses are hinges of affine forms of the outputs (``OutputHinges``): ν-SVC's
``max(0, a·z)`` with a = (−ỹ, 1, 0), ν-SVR's two tube edges a = (±1, −1). As for
SVC/SVR (:mod:`.svm`, :mod:`.svr`): at ``smoothing=0`` (the default) the training
rows' subgradients are read off the dual coefficients, the loss has no curvature off
its kinks, and the rows on a kink with a subgradient strictly inside its range are
pinned (``pin_directions``: a·z stays at the kink); ``smoothing=t > 0`` puts the
smooth hinge t·softplus(u/t) in the Hessian and the test loss. Kernels other than
linear use the whitened kernel features (:mod:`._kernel_map`), the kernel held fixed.

Default test loss: the model's own per-row term (for ν-SVC in the ρ = 1 scale:
hinge(ỹ f) − ν at θ̂, whose gradient moves with ρ); ``test_loss="decision"`` /
``transform`` give the influence on ``decision_function`` / ``predict``.
Exact removals (``leave_one_out`` / ``param_change`` / ``group_influence`` with
``method="exact"``) follow the solution path of the output hinges as the removed
rows' weights shrink, ρ / ε moving with the linear term ν Σ s_i
(``_paths.output_hinge_exact_steps``); a kernel machine held on its support
vectors runs them on every training row. ν-SVC's ``params_`` change is mapped
exactly (the ratio f/ρ: ``reported_change``). A path through a degenerate vertex
(the rows left on the kinks do not fix b and ρ / ε) is NaN, with a warning.
"""

import functools

import numpy as np
from sklearn.svm import NuSVC, NuSVR

from .._objective import LinearObjective
from .._utils import dense
from ._kernel_map import (
    check_reconstruction,
    dual_kernel_map,
    widen_for_exact_removal,
)
from ._losses import hinge_loss, signed_targets
from ._targets import ClassLabels, RealTargets
from .kernel_svm import exact_loss, kernel_function
from .svm import BOUND_TOL, dual_on_rows


class OutputHinges:
    """L(z) = Σ_h φ(a_h·z + c_h) + g·z: hinges of affine forms of the outputs.

    φ is the exact hinge max(0, u) (``smoothing=0``) or t·softplus(u/t); the forms
    ``(A (n, h, k), c (n, h), g (k,))`` come from :meth:`forms`. Non-separable:
    d²L/dz² = Σ_h φ''(u_h) a_h a_hᵀ.
    """

    shift_invariant = False
    separable = False

    def __init__(self, smoothing):
        self.hinge = hinge_loss(smoothing, auto=0.0)  # φ of the margin m = 1 − u

    def forms(self, Y):
        raise NotImplementedError

    def _hinges(self, Z, Y):
        A, c, g = self.forms(Y)
        value, d1, d2 = self.hinge.phi(1.0 - (np.einsum("nhk,nk->nh", A, Z) + c))
        return A, g, value, -d1, d2  # dφ/du = −dφ/dm

    def value_grad(self, Z, Y):
        A, g, value, d1, _ = self._hinges(Z, Y)
        return value.sum(axis=1) + Z @ g, np.einsum("nh,nhk->nk", d1, A) + g

    def hessian(self, Z, Y):
        A, _, _, _, d2 = self._hinges(Z, Y)
        return np.einsum("nh,nha,nhb->nab", d2, A, A)


class NuHingeLoss(OutputHinges):
    """ν-SVC's row term max(0, ρ − ỹ f) − ν ρ on the outputs (f, ρ, κ)."""

    def __init__(self, nu, smoothing):
        super().__init__(smoothing)
        self.nu = float(nu)

    def forms(self, y_index):
        yt = signed_targets(y_index, 1)[:, 0]
        A = np.zeros((len(yt), 1, 3))
        A[:, 0, 0], A[:, 0, 1] = -yt, 1.0
        return A, np.zeros((len(yt), 1)), np.array([0.0, -self.nu, 0.0])


class NuTubeLoss(OutputHinges):
    """ν-SVR's row term max(0, |f − y| − ε) + ν ε on the outputs (f, ε): the two
    edges max(0, f − y − ε) + max(0, y − f − ε)."""

    def __init__(self, nu, smoothing):
        super().__init__(smoothing)
        self.nu = float(nu)

    def forms(self, Y):
        n = Y.shape[0]
        A = np.broadcast_to(np.array([[1.0, -1.0], [-1.0, -1.0]]), (n, 2, 2))
        return A, np.column_stack([-Y[:, 0], Y[:, 0]]), np.array([0.0, self.nu])


class NuObjective(LinearObjective):
    """R(θ) of a ν-SVM (see the module). Exact removals follow the solution path of
    its output hinges (``_paths.output_hinge_exact_steps``)."""

    exact_path = "output_hinges"

    def __init__(self, *args, extra_name, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra_name = extra_name

    def parameter_names(self, features):
        """Names in the ``params_`` layout: the features (or dual coefficients),
        "intercept", then "rho" (NuSVC) or "epsilon" (NuSVR)."""
        if self.input_map is not None:  # dual coefficients on the training rows
            features = [f"dual_coef[{i}]" for i in range(self.inputs.shape[0])]
        return list(features) + ["intercept", self.extra_name]


class NuSVCObjective(NuObjective):
    """ν-SVC: the decision value is z₀/z₁ = f/ρ (:meth:`prediction`)."""

    def prediction(self, Z):
        """The decision value f/ρ of outputs Z and its Jacobian (n, 1, k)."""
        f, rho = Z[:, 0], Z[:, 1]
        J = np.zeros((Z.shape[0], 1, Z.shape[1]))
        J[:, 0, 0], J[:, 0, 1] = 1.0 / rho, -f / rho**2
        return (f / rho)[:, None], J

    def prediction_gradients(self, X):
        """∇θ of the decision value f/ρ of each row."""
        return self.row_gradients(X, self.prediction(self.decision(X))[1][:, 0, :])

    def reported_change(self, steps):
        """Finite steps Δθ (κ fixed) as changes of params_ = [P(w, b)/ρ, ρ̂ ρ] from
        θ̂ (ρ = 1): ``[(P̂ + P(Δw, Δb)) / (1 + Δρ) − P̂, ρ̂ Δρ]``, exact (``reported``
        is its linearisation, the derivative's map)."""
        rows = np.asarray(steps)[:, self.reported_mask]
        wb, d_rho = rows[:, :-2], rows[:, -2:-1]
        ratio = self.param_map
        P = wb if ratio.inner is None else ratio.inner(wb)
        return np.hstack([(ratio.reported + P) / (1.0 + d_rho) - ratio.reported,
                          ratio.rho * d_rho])


class RatioParams:
    """θ rows [w, b, ρ, κ] → [P(w, b) + P̂ (κ − ρ), ρ̂ ρ] (linear; see the module).

    At θ̂ (ρ = κ = 1) it gives [P̂, ρ̂]; on changes (κ fixed) the Jacobian of
    (P(w, b)/ρ, ρ̂ ρ).
    """

    def __init__(self, inner, reported, rho):
        self.inner, self.reported, self.rho = inner, reported, float(rho)

    def __call__(self, rows):
        rows = np.asarray(rows)
        wb, rho, kappa = rows[:, :-2], rows[:, -2:-1], rows[:, -1:]
        P = wb if self.inner is None else self.inner(wb)
        return np.hstack([P + self.reported * (kappa - rho), self.rho * rho])


def _features(est, X, sample_weight, smoothing, every_row=False):
    """(features, w, extra LinearObjective arguments, kernel map or None).

    With the exact losses the basis rows are the support vectors: off the support a
    row's gradient is on the intercept-only output (ρ or ε) alone, and no row is
    curved, so every derivative stays in the support vectors' span.
    """
    if est.kernel == "linear":
        return X, dense(est.coef_)[0], {}, None
    kernel = "precomputed" if est.kernel == "precomputed" else kernel_function(est, X)
    kmap, features, w = dual_kernel_map(kernel, X, dual_on_rows(est, sample_weight),
                                        exact_loss(smoothing) and not every_row)
    return features, w[0], dict(input_map=kmap, inputs=X), kmap


def _exact_dz(loss, coef, intercept, X, Y):
    """dL/dz of the exact loss at the fit (rows of zero weight: not in the duals)."""
    Z = np.asarray(X @ coef.T) + intercept
    return loss.__class__(loss.nu, 0.0).value_grad(Z, Y)[1]


def _structure(n_outputs, d):
    """hidden (the coefficients of every output but the first) and their count."""
    p = n_outputs * (d + 1)
    hidden = np.zeros(p, dtype=bool)
    hidden[d:n_outputs * d] = True
    return hidden, p


def nu_svc_objective(est, X, y, sample_weight, *, smoothing="auto", every_row=False,
                     **options):
    """R(θ) = F(θ; s/ρ̂) ρ̂ / n of a fitted binary NuSVC; any kernel (see the module).

    Parameters
    ----------
    est : NuSVC
        Fitted estimator (two classes).
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training data as the estimator sees it (float64).
    y : ndarray of shape (n_samples,)
        Training labels.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights.
    smoothing : float or "auto", default="auto"
        Temperature of the smooth hinge; 0 or "auto": the exact hinge, margin rows
        pinned.
    **options
        Other explainer settings (unused).

    Returns
    -------
    objective : NuSVCObjective
    """
    check_binary(est)
    targets = ClassLabels(est.classes_)
    y_index = targets.encode(y, X.shape[0])
    features, w, extra, kmap = _features(est, X, sample_weight, smoothing,
                                         every_row)
    n, d = features.shape
    dual = dual_on_rows(est, sample_weight)  # α_i ỹ_i / ρ̂
    rho = est.nu * sample_weight.sum() / np.abs(dual).sum()  # libsvm's ρ̂
    coef = np.vstack([w, np.zeros((2, d))])  # ρ and κ carry only intercepts
    intercept = np.array([float(est.intercept_[0]), 1.0, 1.0])
    hidden, p = _structure(3, d)
    fixed = np.zeros(p, dtype=bool)
    fixed[-1] = True  # κ ≡ 1
    quad = np.zeros(p)
    quad[:d] = rho / n
    loss = NuHingeLoss(est.nu, smoothing)
    # β_i = α_i / s_i ∈ [0, 1]: dL/dz = (−ỹ β, β − ν, 0)
    train_dz = _exact_dz(loss, coef, intercept, features, y_index)
    weighted = sample_weight > 0
    beta = np.abs(dual[weighted]) * rho / sample_weight[weighted]
    yt = signed_targets(y_index, 1)[:, 0]
    train_dz[weighted, 0] = -yt[weighted] * beta
    train_dz[weighted, 1] = beta - est.nu
    pinned = pin_dirs = None
    if smoothing == "auto" or smoothing == 0:
        b = np.abs(train_dz[:, 1] + est.nu)
        pinned = np.zeros((n, 3), dtype=bool)
        pinned[:, 0] = weighted & (b > BOUND_TOL) & (b < 1.0 - BOUND_TOL)
        pin_dirs = loss.forms(y_index)[0][:, 0, :]
    reported = np.r_[w if kmap is None else dual, est.intercept_[0]]
    inner = None if kmap is None else kmap.param_map(1, True)
    risk = NuSVCObjective(
        loss, coef, intercept, features, y_index, sample_weight, np.ones(n), quad,
        np.zeros(p), targets=targets, fixed=fixed, hidden=hidden, train_dz=train_dz,
        pinned=pinned, pin_directions=pin_dirs, predicted=[0],
        param_map=RatioParams(inner, reported, rho), extra_name="rho",
        **extra,
    )
    if kmap is not None:
        check_reconstruction(risk.prediction(risk.decision(features))[0],
                             est.decision_function(X), "NuSVC")
    return widen_for_exact_removal(risk, kmap, functools.partial(
        nu_svc_objective, est, X, y, sample_weight, smoothing=smoothing, every_row=True))


def nu_svr_objective(est, X, y, sample_weight, *, smoothing="auto", every_row=False,
                     **options):
    """R(θ) = F / (C n) of a fitted NuSVR; any kernel (see the module).

    Parameters
    ----------
    est : NuSVR
        Fitted estimator.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Training data as the estimator sees it (float64).
    y : ndarray of shape (n_samples,)
        Training targets.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights.
    smoothing : float or "auto", default="auto"
        Temperature of the smooth ε-insensitive loss; 0 or "auto": the exact loss,
        rows on the tube's edges pinned.
    **options
        Other explainer settings (unused).

    Returns
    -------
    objective : NuObjective
    """
    targets = RealTargets(1)
    Y = targets.encode(y, X.shape[0])
    features, w, extra, kmap = _features(est, X, sample_weight, smoothing,
                                         every_row)
    n, d = features.shape
    dual = dual_on_rows(est, sample_weight)  # α_i − α_i* = −C s_i ψ'_i
    b = float(est.intercept_[0])
    r = np.asarray(features @ w) + b - Y[:, 0]
    weighted = sample_weight > 0
    psi = np.zeros(n)
    psi[weighted] = -dual[weighted] / (est.C * sample_weight[weighted])
    on_edge = weighted & (np.abs(psi) > BOUND_TOL) & (np.abs(psi) < 1.0 - BOUND_TOL)
    eps = _tube_width(r, psi, on_edge)
    coef = np.vstack([w, np.zeros((1, d))])  # ε carries only an intercept
    intercept = np.array([b, eps])
    hidden, p = _structure(2, d)
    quad = np.zeros(p)
    quad[:d] = 1.0 / (est.C * n)
    loss = NuTubeLoss(est.nu, smoothing)
    train_dz = _exact_dz(loss, coef, intercept, features, Y)
    train_dz[weighted, 0] = psi[weighted]  # dL/dz = (ψ', ν − |ψ'|)
    train_dz[weighted, 1] = est.nu - np.abs(psi[weighted])
    pinned = pin_dirs = None
    if smoothing == "auto" or smoothing == 0:
        pinned = np.zeros((n, 2), dtype=bool)
        pinned[:, 0] = on_edge
        pin_dirs = np.column_stack([np.sign(psi), -np.ones(n)])  # the edge's a
    risk = NuObjective(
        loss, coef, intercept, features, Y, sample_weight, np.ones(n), quad,
        np.zeros(p), targets=targets, hidden=hidden, train_dz=train_dz,
        pinned=pinned, pin_directions=pin_dirs, predicted=[0],
        param_map=None if kmap is None else kmap.param_map(1, True),
        extra_name="epsilon",
        **extra,
    )
    if kmap is not None:
        check_reconstruction(risk.decision(features)[:, :1], est.predict(X), "NuSVR")
    return widen_for_exact_removal(risk, kmap, functools.partial(
        nu_svr_objective, est, X, y, sample_weight, smoothing=smoothing, every_row=True))


def _tube_width(r, psi, on_edge):
    """ε: |r| on the tube's edges (libsvm's ε is not an attribute of NuSVR); with
    no row strictly on an edge, the middle of the interval the KKT conditions
    leave (rows inside the tube below it, rows outside above)."""
    if on_edge.any():
        return float(np.median(np.abs(r[on_edge])))
    inside = np.abs(r[np.abs(psi) <= BOUND_TOL])
    outside = np.abs(r[np.abs(psi) >= 1.0 - BOUND_TOL])
    lo = inside.max(initial=0.0)
    return float(0.5 * (lo + outside.min(initial=lo)))


def check_binary(est):
    """TypeError for a NuSVC fitted on more than two classes (one-vs-one)."""
    if len(est.classes_) != 2:
        raise TypeError(
            "NuSVC with more than two classes fits one-vs-one classifiers (one per "
            "pair of classes, each on that pair's rows), which skinfluence does not "
            "support: explain one pair at a time (fit on the rows of two classes)."
        )


def convergence_hint(est, n_samples):
    """Settings of ``est`` that reach the optimum of the same objective."""
    return "fit it more tightly, e.g. with tol=1e-10" + (
        "" if est.max_iter == -1 else ", max_iter=-1")


SUPPORTED = {NuSVC: nu_svc_objective, NuSVR: nu_svr_objective}
BINARY_ONLY = (NuSVC,)  # scikit-learn's multiclass NuSVC is one-vs-one
FITTED_STATE = ("dual_coef_", "intercept_", "support_")

#: Support-table row (``models.support_table``): loss, penalty, intercept, vs refits.
DESCRIPTION = {
    (NuSVC,): ("ν-hinge max(0, ρ − ỹf) − νρ, the margin offset ρ fitted "
               "(`params_` = [`coef_` or dual coefficients, `intercept_`, rho]); exact "
               "(pinned margin rows) or smoothed; binary; any kernel; decision f/ρ; "
               "libsvm ignores `class_weight`", "L2 (RKHS norm)", "unpenalised",
               "linear ≤ 2.3e-6, rbf ≤ 1.3e-6 (libsvm float32 kernel floor); "
               "exact LOO (ν-path) 7e-7, Newton LOO R 0.67"),
    (NuSVR,): ("ε-insensitive + νε, the tube width ε fitted (`params_` = "
               "[`coef_` or dual coefficients, `intercept_`, epsilon]); exact (tube-edge "
               "rows pinned) or smoothed; any kernel", "L2 (RKHS norm)",
               "unpenalised", "linear ≤ 3.5e-6, rbf ≤ 3.1e-6 (libsvm floor); exact "
               "LOO (ν-path) ≤ 2e-6, Newton LOO R 0.35–0.47"),
}
