"""Refit oracles for the influence tests: derivatives of real scikit-learn refits.

Nothing here uses skinfluence. The ground truth for ``n · ∂θ̂/∂s_j`` and
``n · ∂L(z_test, θ̂)/∂s_j`` is obtained by refitting a ``LogisticRegression`` that
minimises *the same objective* as the explained estimator, with the sample weight
of row j moved by ±h, to (near) machine precision:

- lbfgs / newton-cg / newton-cholesky estimators (intercept unpenalised) are refitted
  with ``solver="newton-cholesky", tol=1e-12``: lbfgs stops on a function-change
  criterion long before the optimum is exact enough for finite differences.
- liblinear estimators penalise the intercept: it is the weight of a constant column of
  value ``intercept_scaling``. They are refitted as ``fit_intercept=False``
  newton-cholesky models on ``[X, intercept_scaling]``, which is the same objective
  solved exactly; the intercept is ``intercept_scaling`` times the last weight.

Derivatives are central differences with one Richardson step,
``(4 D(h/2) − D(h)) / 3``, which removes the O(h²) truncation term of ``D(h)``.
"""

import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_expit, logsumexp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import HuberRegressor, LogisticRegression
from sklearn.linear_model._huber import _huber_loss_and_gradient

ORACLE_TOL = 1e-12
ORACLE_MAX_ITER = 1000


def split(X, y, n_train, seed=0):
    """A fixed random train/test split: (X_train, y_train, X_test, y_test)."""
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    tr, te = perm[:n_train], perm[n_train:]
    return X[tr], y[tr], X[te], y[te]


def params_of(model):
    """``coef_.ravel()`` followed by ``intercept_`` when fitted: the params_ layout."""
    parts = [np.ravel(model.coef_)]
    if model.fit_intercept:
        parts.append(np.ravel(model.intercept_))
    return np.concatenate(parts)


def log_loss_rows(coef, intercept, X, y_index):
    """Plain per-sample log-loss of a linear logistic model, computed stably.

    ``coef`` (k, d), ``intercept`` (k,) or None, ``y_index`` the index of each label in
    ``classes_``. Binary (k == 1): ``−log σ(±z)``; multinomial: ``logsumexp(z) − z_y``.
    """
    Z = np.asarray(X @ np.atleast_2d(coef).T)
    if intercept is not None:
        Z = Z + intercept
    if Z.shape[1] == 1:
        z = Z[:, 0]
        return -log_expit(np.where(y_index == 1, z, -z))
    return logsumexp(Z, axis=1) - Z[np.arange(len(y_index)), y_index]


class RefitOracle:
    """Exact refits of ``estimator``'s training objective under changed sample weights.

    Parameters
    ----------
    estimator : LogisticRegression (unfitted)
        The configuration being explained. Only its objective matters: C, l1_ratio,
        fit_intercept, class_weight, and for liblinear intercept_scaling.
    X, y : training data
    sample_weight : ndarray of shape (n,) or None
        Base sample weights (ones when None).
    """

    def __init__(self, estimator, X, y, sample_weight=None):
        if not isinstance(estimator, LogisticRegression):
            raise TypeError("RefitOracle only knows LogisticRegression")
        l1_ratio = estimator.l1_ratio
        if estimator.C != np.inf and l1_ratio not in (None, 0, 0.0):
            raise ValueError("newton-cholesky refits need a pure L2 (or no) penalty")
        self.estimator = estimator
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y)
        self.n = self.X.shape[0]
        self.sample_weight = (
            np.ones(self.n) if sample_weight is None
            else np.asarray(sample_weight, dtype=np.float64).copy()
        )
        self.liblinear = estimator.solver == "liblinear"
        self.fit_intercept = estimator.fit_intercept
        if self.liblinear and self.fit_intercept:
            self.scaling = float(estimator.intercept_scaling)
            self._Xfit = np.hstack([self.X, np.full((self.n, 1), self.scaling)])
            fit_intercept = False
        else:
            self._Xfit = self.X
            fit_intercept = self.fit_intercept
        self.model = LogisticRegression(
            C=estimator.C,
            l1_ratio=0.0,
            fit_intercept=fit_intercept,
            class_weight=estimator.class_weight,
            solver="newton-cholesky",
            tol=ORACLE_TOL,
            max_iter=ORACLE_MAX_ITER,
        )
        self.classes_ = None

    # -- refits ---------------------------------------------------------------------
    def refit(self, sample_weight, rows=None):
        """(coef (k, d), intercept (k,) or None) of a tight refit.

        ``rows`` restricts the training set (leave-one-out); ``sample_weight`` is then
        the weights of those rows.
        """
        Xf, y = (self._Xfit, self.y) if rows is None else (self._Xfit[rows], self.y[rows])
        m = clone(self.model)
        with warnings.catch_warnings():
            # A refit that does not converge must fail the test, not pass quietly.
            warnings.simplefilter("error", ConvergenceWarning)
            m.fit(Xf, y, sample_weight=np.array(sample_weight, dtype=np.float64))
        if self.classes_ is None:
            self.classes_ = m.classes_
        coef = np.atleast_2d(m.coef_).copy()
        if self.liblinear and self.fit_intercept:
            return coef[:, :-1], self.scaling * coef[:, -1]
        return coef, (m.intercept_.copy() if self.fit_intercept else None)

    def params(self, sample_weight, rows=None):
        coef, intercept = self.refit(sample_weight, rows)
        parts = [coef.ravel()] + ([] if intercept is None else [intercept])
        return np.concatenate(parts)

    def encode(self, y):
        if self.classes_ is None:
            self.refit(self.sample_weight)
        idx = np.searchsorted(self.classes_, y)
        assert np.all(self.classes_[idx] == y)
        return idx

    def test_losses(self, fit, X_test, y_test):
        coef, intercept = fit
        return log_loss_rows(coef, intercept, np.asarray(X_test, float),
                             self.encode(y_test))

    # -- derivatives in the sample weight of one row --------------------------------
    def weight_derivative(self, j, functional, h):
        """n · d functional(refit(s + t e_j)) / dt at t = 0, Richardson-extrapolated.

        ``functional`` maps a refit ``(coef, intercept)`` to a 1-D array.
        """
        def value(t):
            sw = self.sample_weight.copy()
            sw[j] += t
            return np.asarray(functional(self.refit(sw)), dtype=np.float64)

        def central(step):
            return (value(step) - value(-step)) / (2.0 * step)

        if h > self.sample_weight[j]:
            raise ValueError("h must keep the sample weight non-negative")
        return self.n * (4.0 * central(h / 2.0) - central(h)) / 3.0

    def param_derivative(self, j, h):
        def flat(fit):
            coef, intercept = fit
            return np.concatenate([coef.ravel()] + ([] if intercept is None
                                                    else [intercept]))
        return self.weight_derivative(j, flat, h)

    def loss_derivative(self, j, X_test, y_test, h):
        return self.weight_derivative(
            j, lambda fit: self.test_losses(fit, X_test, y_test), h
        )


def max_rel_error(predicted, reference):
    """‖predicted − reference‖∞ / ‖reference‖∞ (one derivative vector)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    scale = np.max(np.abs(reference))
    assert scale > 0, "reference derivative is identically zero: nothing is tested"
    return float(np.max(np.abs(predicted - reference)) / scale)


class EstimatorRefit:
    """Refits of any scikit-learn estimator on (X, y) with changed sample weights.

    Parameters
    ----------
    estimator : estimator (unfitted)
        Refitted by ``clone``; a ``ConvergenceWarning`` fails the refit.
    X, y : training data
    sample_weight : ndarray of shape (n,) or None
        Base sample weights (ones when None).
    """

    def __init__(self, estimator, X, y, sample_weight=None):
        self.estimator, self.X, self.y = estimator, X, y
        self.n = X.shape[0]
        self.sample_weight = (np.ones(self.n) if sample_weight is None
                              else np.asarray(sample_weight, dtype=np.float64).copy())

    def fit(self, sample_weight, rows=None):
        """A refit with ``sample_weight`` (on ``rows`` only when given)."""
        X, y = (self.X, self.y) if rows is None else (self.X[rows], self.y[rows])
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            return clone(self.estimator).fit(
                X, y, sample_weight=np.asarray(sample_weight, dtype=np.float64))

    def derivative(self, j, functional, h, side=0):
        """n · d functional(refit(s + t e_j)) / dt at t = 0, Richardson-extrapolated.

        ``side`` 0: central differences ``(4 D(h/2) − D(h)) / 3``; +1 / −1: one-sided
        differences ``2 D(h/2) − D(h)`` from the right / left (at a kink).
        """
        def value(t):
            sw = self.sample_weight.copy()
            sw[j] += t
            return np.asarray(functional(self.fit(sw)), dtype=np.float64)

        if side == 0:
            def central(step):
                return (value(step) - value(-step)) / (2.0 * step)
            if h >= self.sample_weight[j]:
                raise ValueError("h must keep the sample weight positive")
            return self.n * (4.0 * central(h / 2.0) - central(h)) / 3.0
        base = value(0.0)

        def one_sided(step):
            return side * (value(side * step) - base) / step
        return self.n * (2.0 * one_sided(h / 2.0) - one_sided(h))

    def same_piece(self, j, functional, h):
        """Two derivatives (FD at h and h/4), or None when they disagree: a
        breakpoint of a piecewise-linear solution path (another row reaching a kink)
        lies within reach, so the derivative is one-sided there (not compared)."""
        coarse = self.derivative(j, functional, h)
        fine = self.derivative(j, functional, h / 4)
        if np.abs(coarse - fine).max() > 1e-3 * np.abs(fine).max():
            return None
        return coarse, fine

    def leave_out(self, j):
        """A refit without row j."""
        keep = np.delete(np.arange(self.n), j)
        return self.fit(self.sample_weight[keep], rows=keep)


class TightHuberRegressor(HuberRegressor):
    """HuberRegressor refitted to machine precision (an oracle for finite differences).

    scikit-learn's L-BFGS-B stops at a projected gradient of ``tol``; here its own
    objective ``_huber_loss_and_gradient`` is minimised from the fitted values by
    L-BFGS-B with ``ftol=0`` and a tiny ``gtol``, then polished by Newton steps with
    the Hessian from central differences of that gradient. Same parameters, same
    fitted attributes.
    """

    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight=sample_weight)
        sw = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight)
        theta = np.r_[self.coef_, [self.intercept_] if self.fit_intercept else [],
                      self.scale_]
        theta = huber_minimise(theta, X, y, self.epsilon, self.alpha, sw)
        d = X.shape[1]
        self.coef_ = theta[:d]
        self.intercept_ = theta[d] if self.fit_intercept else 0.0
        self.scale_ = theta[-1]
        self.outliers_ = np.abs(y - X @ self.coef_ - self.intercept_) > \
            self.scale_ * self.epsilon
        return self


def huber_minimise(theta, X, y, epsilon, alpha, sw, newton_steps=6):
    """The minimiser of sklearn's Huber objective from ``theta`` (see above)."""
    def fun(t):
        return _huber_loss_and_gradient(t, X, y, epsilon, alpha, sw)

    bounds = [(None, None)] * (len(theta) - 1) + [(10 * np.finfo(float).eps, None)]
    res = minimize(fun, theta, jac=True, method="L-BFGS-B", bounds=bounds,
                   options=dict(maxiter=100_000, ftol=0.0, gtol=1e-14, maxcor=50))
    theta = res.x
    for _ in range(newton_steps):
        g = fun(theta)[1]
        step = 1e-6 * max(1.0, np.abs(theta).max())
        H = np.empty((len(theta), len(theta)))
        for i in range(len(theta)):
            e = np.zeros(len(theta))
            e[i] = step
            H[:, i] = (fun(theta + e)[1] - fun(theta - e)[1]) / (2 * step)
        delta = np.linalg.solve(0.5 * (H + H.T), g)
        theta = theta - delta
        if np.abs(delta).max() <= 1e-15 * max(1.0, np.abs(theta).max()):
            break
    return theta


def huber_params(model):
    """[coef_, intercept_ (when fitted), scale_]: HuberRegressor's θ."""
    return np.r_[model.coef_, [model.intercept_] if model.fit_intercept else [],
                 model.scale_]


# -- multi-layer perceptrons: scikit-learn's own loss gradient, tight refits ----------
def mlp_params(model):
    """scikit-learn's packing of a fitted MLP: every coefs_ raveled, then intercepts_."""
    return np.concatenate([c.ravel() for c in model.coefs_] + list(model.intercepts_))


def mlp_objective(model, X, y, sample_weight):
    """F(θ) and ∇F(θ) of a fitted MLP on (X, y, sample_weight), from scikit-learn's
    own ``_backprop`` (via ``_loss_grad_lbfgs``; private, fine for an oracle).

    F is scikit-learn's objective (1/S)[Σ s_i L_i + α/2 ‖W‖²]; for several regression
    outputs the value is recomputed as the sum over outputs, the quantity whose
    gradient scikit-learn returns (its reported loss averages over outputs).
    Returns a function θ -> (F, ∇F) working on a private copy of the model.
    """
    import copy

    from sklearn.neural_network import MLPClassifier

    model = copy.deepcopy(model)
    X = np.asarray(X, dtype=np.float64)
    sw = np.asarray(sample_weight, dtype=np.float64)
    units = [X.shape[1]] + [c.shape[1] for c in model.coefs_]
    model._coef_indptr, model._intercept_indptr, start = [], [], 0
    for i in range(len(units) - 1):
        end = start + units[i] * units[i + 1]
        model._coef_indptr.append((start, end, (units[i], units[i + 1])))
        start = end
    for i in range(len(units) - 1):
        model._intercept_indptr.append((start, start + units[i + 1]))
        start += units[i + 1]
    if isinstance(model, MLPClassifier):
        Y = model._label_binarizer.transform(y).astype(np.float64)
    else:
        Y = np.asarray(y, dtype=np.float64).reshape(X.shape[0], -1)
    acts = [X] + [None] * (len(units) - 1)
    deltas = [None] * (len(units) - 1)
    cg = [np.empty((a, b)) for a, b in zip(units[:-1], units[1:], strict=True)]
    ig = [np.empty(b) for b in units[1:]]

    def f(theta):
        loss, grad = model._loss_grad_lbfgs(np.array(theta, dtype=np.float64), X, Y,
                                            sw, acts, deltas, cg, ig)
        if not isinstance(model, MLPClassifier) and Y.shape[1] > 1:
            out = model._forward_pass_fast(X, check_input=False)
            pen = sum(float(np.sum(c * c)) for c in model.coefs_)
            loss = (0.5 * np.sum(sw[:, None] * (Y - out) ** 2)
                    + 0.5 * model.alpha * pen) / sw.sum()
        return float(loss), grad.copy()

    return f


def mlp_refit(model, X, y, sample_weight, theta0=None, newton=3, fd_step=1e-6, *,
              damping=0.0, tilt=None):
    """θ at a tight stationary point of scikit-learn's MLP objective with these
    sample weights, continued from the fitted weights (or ``theta0``).

    L-BFGS-B without its relative-decrease stop, then ``newton`` Newton steps with a
    Hessian from central differences of scikit-learn's gradient: ‖∇F‖ ≈ 1e-15.

    With ``damping`` λ or a vector ``tilt`` g, the stationary point of
    ``(S/n) F(θ) − gᵀθ + (λ/2) ‖θ − θ_fit‖²`` instead (S = Σ s_i, n rows, θ_fit
    the model's weights): a refit held near the fitted weights.
    """
    from scipy.optimize import minimize

    f = mlp_objective(model, X, y, sample_weight)
    if damping or tilt is not None:
        plain, anchor = f, mlp_params(model)
        scale = np.sum(sample_weight) / len(sample_weight)
        g0 = np.zeros(anchor.size) if tilt is None else np.asarray(tilt)

        def f(theta):
            value, grad = plain(theta)
            d = theta - anchor
            return (scale * value - g0 @ theta + 0.5 * damping * d @ d,
                    scale * grad - g0 + damping * d)

    theta = mlp_params(model) if theta0 is None else np.array(theta0, dtype=float)
    res = minimize(f, theta, jac=True, method="L-BFGS-B",
                   options={"ftol": 0.0, "gtol": 1e-13, "maxiter": 20000,
                            "maxfun": 40000, "maxcor": 30})
    theta = res.x
    p = theta.size
    for _ in range(newton):
        H = np.empty((p, p))
        for i in range(p):
            e = np.zeros(p)
            e[i] = fd_step
            H[:, i] = (f(theta + e)[1] - f(theta - e)[1]) / (2 * fd_step)
        # least squares: no step along flat directions (a softmax's shift, a dead
        # ReLU unit's intercept), which no refit moves along either
        H = 0.5 * (H + H.T)
        theta = theta - np.linalg.lstsq(H, f(theta)[1], rcond=1e-10)[0]
    return theta


def mlp_with_params(model, theta):
    """A deep copy of a fitted MLP whose weights are θ (scikit-learn's packing)."""
    import copy

    model = copy.deepcopy(model)
    start = 0
    for i, c in enumerate(model.coefs_):
        model.coefs_[i] = theta[start:start + c.size].reshape(c.shape).copy()
        start += c.size
    for i, b in enumerate(model.intercepts_):
        model.intercepts_[i] = theta[start:start + b.size].copy()
        start += b.size
    return model


def dask_glm_minimise(family, X, y, sample_weight, lam):
    """argmin_β Σ_i s_i ℓ(y_i, x̃_i·β) + λ ½‖β‖², x̃_i = [x_i, 1], by Newton's method.

    dask_glm's objective (dask-ml's GLMs, ``fit_intercept=True``, L2 penalty λ = 1/C
    on every entry of β, the intercept last and penalised; λ = 0 for the "newton"
    solver), written out in numpy. ``family``: "logistic" ℓ = log(1 + e^z) − y z,
    "normal" ℓ = (y − z)², "poisson" ℓ = e^z − y z.
    """
    Xt = np.hstack([X, np.ones((X.shape[0], 1))])
    beta = np.zeros(Xt.shape[1])
    for _ in range(100):
        z = Xt @ beta
        if family == "logistic":
            mu = np.exp(-np.logaddexp(0.0, -z))
            d1, d2 = mu - y, mu * (1.0 - mu)
        elif family == "normal":
            d1, d2 = 2.0 * (z - y), np.full_like(z, 2.0)
        else:
            d1, d2 = np.exp(z) - y, np.exp(z)
        grad = Xt.T @ (sample_weight * d1) + lam * beta
        hess = (Xt * (sample_weight * d2)[:, None]).T @ Xt + lam * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta = beta - step
        if np.max(np.abs(step)) < 1e-15 * max(1.0, np.max(np.abs(beta))):
            break
    return beta
