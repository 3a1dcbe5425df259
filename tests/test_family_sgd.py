"""SGDClassifier / SGDRegressor: influences against exact re-minimisations.

SGD never reaches the optimum of its objective, so refits of SGD itself cannot serve as
an oracle. Instead, the training objective scikit-learn's ``_plain_sgd`` descends is
written out here independently of skinfluence (from ``_sgd_fast.pyx.tp`` and the
documented losses)::

    F(W, b) = (1/n) Σ_i s_i Σ_k c_ik ℓ_k(z_i) + α/2 ‖W‖²

and minimised *exactly* (scipy's trust-exact, polished by Newton steps to a gradient
at round-off level). A fitted SGD model whose ``coef_``/``intercept_`` are overwritten
with that minimiser and wrapped in ``FrozenEstimator`` is then explained, and:

(a) the rebuilt objective's gradient vanishes there (``optimality_`` ≈ 0, no warning);
(b) ``param_influence`` matches central differences (one Richardson step) of exact
    re-minimisations with the sample weight of row j moved by ±h;
(c) ``loss_influence`` matches the same differences of the test losses.

The oracle objective is itself checked: against scikit-learn's ``LogisticRegression``
(C = 1/(n α)) and ``Ridge`` (alpha = n α), which minimise the same objective for
log-loss and squared error, and against long SGD runs, which must approach its
minimiser (class weights, sample weights and α scaling conventions included).

For ``loss="hinge"`` and ``"epsilon_insensitive"`` skinfluence uses a smooth surrogate
with temperature t (``InfluenceExplainer(smoothing=t)``); the exact minimiser and the
test losses are then those of the *smoothed* objective, at the same t.

Measured relative errors ‖predicted − FD‖∞ / ‖FD‖∞, worst of three rows (scikit-learn
1.9.1; param_influence / loss_influence)::

    bc-log_loss-sw                             7e-10  3e-09
    synth2-log_loss-nointercept-dictcw-sw      5e-11  2e-10
    bc-squared_hinge-sw                        5e-11  1e-11
    bc-modified_huber-balanced                 7e-11  4e-11
    synth2-modified_huber-sw                   1e-10  2e-10
    bc-hinge-t0.1-sw                           1e-10  2e-09
    synth2-hinge-t0.01                         5e-11  4e-11
    wine-squared_hinge-dictcw-sw               2e-11  3e-11
    wine-log_loss-balanced-sw                  5e-10  6e-10
    diabetes-squared_error-sw                  1e-09  7e-10
    diabetes-huber-sw                          8e-10  1e-09
    synthreg-huber-nointercept                 1e-11  3e-11
    diabetes-squared_epsilon_insensitive-sw    3e-10  9e-11
    diabetes-epsilon_insensitive-t0.1          1e-09  1e-09
    diabetes-epsilon_insensitive-auto-sw       6e-11  6e-11
    wine-hinge-auto                            3e-09  3e-09
    bc-log_loss-elasticnet-sw                  3e-10  4e-11
    wine-squared_hinge-elasticnet-sw           1e-10  2e-10
    diabetes-squared_error-l1                  2e-10  3e-10

The oracle is exact to round-off (‖∇F‖∞ ≤ 1e-13), so small steps (h = 1e-3) are
usable: the FD then never straddles a kink of a once-differentiable loss (asserted),
and the remaining error is round-off amplified by n/h.
"""

import functools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from _checks import expected_failed_checks
from _oracle import max_rel_error, split
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.base import clone
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_wine,
    make_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import (
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.estimator_checks import parametrize_with_checks

from skinfluence import InfluenceExplainer
from skinfluence._hessian import SingularHessianWarning
from skinfluence.models.sgd import (
    HuberLoss,
    OneVsRestLogLoss,
    SmoothEpsilonInsensitiveLoss,
    SquaredEpsilonInsensitiveLoss,
)

RTOL = 1e-5  # required accuracy of every influence against exact re-minimisations
H = 1e-3  # Richardson: central differences at h = 1e-3 and 5e-4


# -- data ---------------------------------------------------------------------------
@functools.cache
def dataset(name):
    """(X_train, y_train, X_test, y_test)."""
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
        return split(StandardScaler().fit_transform(X), y, 200)
    if name == "synthetic_2class":  # noisy labels: rows deep on the wrong side
        X, y = make_classification(
            n_samples=300, n_features=6, n_informative=4, n_redundant=0,
            class_sep=1.5, flip_y=0.1, random_state=0,
        )
        return split(X, y, 200)
    if name == "wine":  # 3 classes: one-vs-rest, 3 × 14 parameters
        X, y = load_wine(return_X_y=True)
        return split(StandardScaler().fit_transform(X), y, 140)
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        return split(StandardScaler().fit_transform(X), (y - y.mean()) / y.std(), 300)
    if name == "synthetic_regression":  # heavy-tailed noise: Huber's linear branch
        X, y = make_regression(n_samples=260, n_features=5, noise=0.0, random_state=0)
        y = y / y.std() + np.random.default_rng(0).standard_t(2, len(y))
        return split(X, y, 200)
    raise KeyError(name)


def weights(kind, n):
    if kind == "uniform":
        return np.ones(n)
    return np.random.default_rng(1).uniform(0.5, 2.0, n)


# -- the oracle: scikit-learn's SGD objective, written out independently --------------
def margin_phi(loss, m, t):
    """φ(m), φ'(m), φ''(m) of SGDClassifier's losses at the margin m = ỹ z."""
    if loss == "log_loss":  # CyHalfBinomialLoss: log(1 + e^z) − y z = log(1 + e^{−m})
        s = expit(-m)
        return -log_expit(m), -s, s * (1.0 - s)
    if loss == "squared_hinge":  # SquaredHinge(threshold=1): max(0, 1 − m)²
        slack = np.maximum(0.0, 1.0 - m)
        return slack**2, -2.0 * slack, 2.0 * (m < 1.0)
    if loss == "modified_huber":  # (1 − m)² on [−1, 1), −4m below −1, 0 above 1
        slack = np.maximum(0.0, 1.0 - m)
        quad = m >= -1.0
        return (np.where(quad, slack**2, -4.0 * m), np.where(quad, -2.0 * slack, -4.0),
                2.0 * (quad & (m < 1.0)))
    if loss == "hinge":  # max(0, 1 − m), smoothed: t·log(1 + exp((1 − m)/t))
        u = (1.0 - m) / t
        s = expit(u)
        return -t * log_expit(-u), -s, s * (1.0 - s) / t
    raise KeyError(loss)


def residual_psi(loss, r, eps, t):
    """ψ(r), ψ'(r), ψ''(r) of SGDRegressor's losses at the residual r = z − y."""
    if loss == "squared_error":  # CyHalfSquaredError: ½ r²
        return 0.5 * r**2, r, np.ones_like(r)
    if loss == "huber":  # CyHuberLoss(delta=epsilon)
        a = np.abs(r)
        inside = a <= eps
        return (np.where(inside, 0.5 * r**2, eps * (a - 0.5 * eps)),
                np.clip(r, -eps, eps), inside * 1.0)
    if loss == "squared_epsilon_insensitive":  # max(0, |r| − ε)²
        slack = np.maximum(0.0, np.abs(r) - eps)
        return slack**2, 2.0 * np.sign(r) * slack, 2.0 * (slack > 0)
    if loss == "epsilon_insensitive":  # max(0, |r| − ε), both sides smoothed
        total = [0.0, 0.0, 0.0]
        for sign in (1.0, -1.0):
            u = (sign * r - eps) / t
            s = expit(u)
            for i, v in enumerate((-t * log_expit(-u), sign * s, s * (1 - s) / t)):
                total[i] = total[i] + v
        return tuple(total)
    raise KeyError(loss)


class ExactObjective:
    """F(θ) = (1/n) Σ_i s_i Σ_k c_ik ℓ_k(z_i) + α((1 − r)/2 ‖W‖² + r ‖W‖₁), minimised.

    ``fun``/``hess`` are the smooth part (without r ‖W‖₁).

    θ = [W.ravel(), b] (the ``params_`` layout). Classifiers: one output when binary
    (ỹ = +1 for ``classes_[1]``, class weights c_1 / c_0), else one-vs-rest outputs
    (ỹ_k = +1 on the row's own class; its class weight on that output, 1 elsewhere).
    Class weights from plain class counts, as ``SGDClassifier`` computes them.
    """

    def __init__(self, estimator, X, y, sample_weight, smoothing):
        p = estimator.get_params()
        r = {"l2": 0.0, "l1": 1.0, "elasticnet": p["l1_ratio"]}[p["penalty"]]
        self.loss, self.t = p["loss"], smoothing
        self.quad, self.l1 = p["alpha"] * (1.0 - r), p["alpha"] * r
        self.eps = p["epsilon"]
        self.classifier = isinstance(estimator, SGDClassifier)
        self.X = np.asarray(X, dtype=np.float64)
        n, d = self.X.shape
        self.n, self.d = n, d
        self.fit_intercept = p["fit_intercept"]
        self.base_weight = np.asarray(sample_weight, dtype=np.float64)
        if self.classifier:
            self.classes = np.unique(y)
            K = len(self.classes)
            self.k = 1 if K == 2 else K
            y_index = np.searchsorted(self.classes, y)
            cw = (np.ones(K) if p["class_weight"] is None else compute_class_weight(
                p["class_weight"], classes=self.classes, y=y))
            if self.k == 1:
                self.cw = cw[y_index][:, None]
            else:
                own = y_index[:, None] == np.arange(K)
                self.cw = np.where(own, cw[y_index][:, None], 1.0)
        else:
            self.k = 1
            self.cw = np.ones((n, 1))
        self.targets = self._targets(y)

    # -- layout -----------------------------------------------------------------------
    @property
    def n_params(self):
        return self.k * self.d + (self.k if self.fit_intercept else 0)

    def split(self, theta):
        W = theta[: self.k * self.d].reshape(self.k, self.d)
        b = theta[self.k * self.d:] if self.fit_intercept else np.zeros(self.k)
        return W, b

    def _targets(self, y):
        if not self.classifier:
            return np.asarray(y, dtype=np.float64)[:, None]
        y_index = np.searchsorted(self.classes, y)
        if self.k == 1:
            return np.where(y_index == 1, 1.0, -1.0)[:, None]
        return np.where(y_index[:, None] == np.arange(self.k), 1.0, -1.0)

    # -- loss in decision space ---------------------------------------------------
    def _loss(self, Z, T):
        """Per row and output: ℓ, dℓ/dz, d²ℓ/dz² (T: ỹ for classifiers, y else)."""
        if self.classifier:
            v, d1, d2 = margin_phi(self.loss, T * Z, self.t)
            return v, T * d1, d2
        return residual_psi(self.loss, Z - T, self.eps, self.t)

    def pattern(self, theta):
        """Which branch of a piecewise loss every row sits on (empty if smooth)."""
        W, b = self.split(theta)
        Z = self.X @ W.T + b
        if self.classifier:
            m = self.targets * Z
            if self.loss == "squared_hinge":
                return m < 1
            if self.loss == "modified_huber":
                return np.stack([m < 1, m >= -1])
        else:
            r = np.abs(Z - self.targets)
            if self.loss == "huber":
                return r <= self.eps
            if self.loss == "squared_epsilon_insensitive":
                return r > self.eps
        return np.zeros(0, dtype=bool)

    # -- F, ∇F, ∇²F -----------------------------------------------------------------
    def fun(self, theta, sw):
        W, b = self.split(theta)
        v, d1, _ = self._loss(self.X @ W.T + b, self.targets)
        rw = sw[:, None] * self.cw / self.n
        dZ = rw * d1
        gW = dZ.T @ self.X + self.quad * W
        grad = np.concatenate([gW.ravel()] + ([dZ.sum(axis=0)] if self.fit_intercept
                                              else []))
        return float((rw * v).sum() + 0.5 * self.quad * (W**2).sum()), grad

    def hess(self, theta, sw):
        W, b = self.split(theta)
        _, _, d2 = self._loss(self.X @ W.T + b, self.targets)
        rw = sw[:, None] * self.cw / self.n
        Xt = np.hstack([self.X, np.ones((self.n, 1))]) if self.fit_intercept else self.X
        Hm = np.zeros((self.n_params, self.n_params))
        for a in range(self.k):
            idx = list(range(a * self.d, (a + 1) * self.d))
            if self.fit_intercept:
                idx.append(self.k * self.d + a)
            Hm[np.ix_(idx, idx)] = (Xt * (rw[:, a] * d2[:, a])[:, None]).T @ Xt
        Hm[np.arange(self.k * self.d), np.arange(self.k * self.d)] += self.quad
        return Hm

    def minimise(self, sw, theta0=None):
        """Exact minimiser: trust-exact, then Newton steps to a round-off gradient."""
        if self.l1 > 0:
            return self.minimise_l1(sw, theta0)
        theta0 = np.zeros(self.n_params) if theta0 is None else theta0
        res = minimize(self.fun, theta0, args=(sw,), jac=True, hess=self.hess,
                       method="trust-exact", options={"gtol": 1e-12, "maxiter": 500})
        theta = res.x
        best = np.max(np.abs(self.fun(theta, sw)[1]))
        for _ in range(20):
            step = np.linalg.solve(self.hess(theta, sw), self.fun(theta, sw)[1])
            g = np.max(np.abs(self.fun(theta - step, sw)[1]))
            if g >= best:
                break
            theta, best = theta - step, g
        assert best <= 1e-13, f"oracle minimisation stopped at ‖∇F‖∞ = {best:.1e}"
        return theta

    def minimise_l1(self, sw, theta0=None):
        """Exact minimiser with an L1 part, certified by its optimality conditions.

        The support and signs come from proximal gradient (FISTA) when ``theta0`` is
        None, else from ``theta0``. The smooth problem on that support (plus
        r α sign·θ) is then solved by Newton steps, and the result must satisfy the
        full problem's conditions strictly: |∂_j f| < r α off the support (so that a
        small re-weighting keeps it there) and unchanged signs on it.
        """
        kd = self.k * self.d
        if theta0 is None:
            theta0 = self._fista(sw)
        coef_on = np.abs(theta0[:kd]) > 1e-6 * np.abs(theta0[:kd]).max()
        free = np.concatenate([coef_on, np.ones(self.n_params - kd, dtype=bool)])
        sign = np.where(np.arange(self.n_params) < kd, np.sign(theta0), 0.0)
        theta = np.where(free, theta0, 0.0)
        for _ in range(50):
            g = (self.fun(theta, sw)[1] + self.l1 * sign)[free]
            if np.max(np.abs(g)) <= 1e-15:
                break
            step = np.linalg.solve(self.hess(theta, sw)[np.ix_(free, free)], g)
            theta[free] -= step
            if np.max(np.abs(step)) <= 1e-15 * max(1.0, np.abs(theta).max()):
                break
        g = self.fun(theta, sw)[1]
        assert np.max(np.abs((g + self.l1 * sign)[free])) <= 1e-13
        off = ~free[:kd]
        assert np.all(np.abs(g[:kd][off]) < 0.999 * self.l1), "not an L1 optimum"
        assert np.all(np.sign(theta[:kd][~off]) == sign[:kd][~off]), "sign flipped"
        return theta

    def _fista(self, sw, n_iter=20_000):
        """Approximate minimiser of F by accelerated proximal gradient."""
        kd = self.k * self.d
        step = 1.0 / np.linalg.eigvalsh(self.hess(np.zeros(self.n_params), sw)).max()
        theta = y = np.zeros(self.n_params)
        tk = 1.0
        for _ in range(n_iter):
            z = y - step * self.fun(y, sw)[1]
            z[:kd] = np.sign(z[:kd]) * np.maximum(0.0, np.abs(z[:kd]) - step * self.l1)
            tk1 = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * tk**2))
            y, theta, tk = z + (tk - 1.0) / tk1 * (z - theta), z, tk1
        return theta

    def row_gradient(self, theta, j):
        """n·∂∇F/∂s_j = Σ_k c_jk ℓ_k'(z_j) [x_j, 1] in the θ layout (F is linear in s)."""
        W, b = self.split(theta)
        x = self.X[j]
        _, d1, _ = self._loss((x @ W.T + b)[None, :], self.targets[j][None, :])
        dz = (self.cw[j] * d1[0])[:, None]
        return np.concatenate([(dz * x).ravel()]
                              + ([dz.ravel()] if self.fit_intercept else []))

    def test_losses(self, theta, X, y):
        """Plain per-sample loss (no weights), summed over outputs."""
        W, b = self.split(theta)
        return self._loss(np.asarray(X) @ W.T + b, self._targets(y))[0].sum(axis=1)


# -- configurations -----------------------------------------------------------------
# id: (dataset, estimator, sample weights, smoothing t)
CONFIGS = {
    "bc-log_loss-sw": (
        "breast_cancer", SGDClassifier(loss="log_loss", alpha=1e-2), "random", None),
    "synth2-log_loss-nointercept-dictcw-sw": (
        "synthetic_2class",
        SGDClassifier(loss="log_loss", alpha=1e-3, fit_intercept=False,
                      class_weight={0: 2.0, 1: 0.5}),
        "random", None),
    "bc-squared_hinge-sw": (
        "breast_cancer", SGDClassifier(loss="squared_hinge", alpha=1e-2), "random",
        None),
    "bc-modified_huber-balanced": (
        "breast_cancer",
        SGDClassifier(loss="modified_huber", alpha=1e-2, class_weight="balanced"),
        "uniform", None),
    "synth2-modified_huber-sw": (
        "synthetic_2class", SGDClassifier(loss="modified_huber", alpha=1e-3), "random",
        None),
    "bc-hinge-t0.1-sw": (
        "breast_cancer", SGDClassifier(loss="hinge", alpha=1e-2), "random", 0.1),
    "synth2-hinge-t0.01": (
        "synthetic_2class", SGDClassifier(loss="hinge", alpha=1e-2), "uniform", 0.01),
    "wine-squared_hinge-dictcw-sw": (
        "wine",
        SGDClassifier(loss="squared_hinge", alpha=1e-2,
                      class_weight={0: 1.0, 1: 2.0, 2: 0.5}),
        "random", None),
    "wine-log_loss-balanced-sw": (
        "wine", SGDClassifier(loss="log_loss", alpha=1e-2, class_weight="balanced"),
        "random", None),
    "diabetes-squared_error-sw": (
        "diabetes", SGDRegressor(loss="squared_error", alpha=1e-2), "random", None),
    "diabetes-huber-sw": (
        "diabetes", SGDRegressor(loss="huber", alpha=1e-2, epsilon=1.0), "random",
        None),
    "synthreg-huber-nointercept": (
        "synthetic_regression",
        SGDRegressor(loss="huber", alpha=1e-3, epsilon=1.0, fit_intercept=False),
        "uniform", None),
    "diabetes-squared_epsilon_insensitive-sw": (
        "diabetes",
        SGDRegressor(loss="squared_epsilon_insensitive", alpha=1e-2, epsilon=0.3),
        "random", None),
    "diabetes-epsilon_insensitive-t0.1": (
        "diabetes",
        SGDRegressor(loss="epsilon_insensitive", alpha=1e-2, epsilon=0.3),
        "uniform", 0.1),
    "diabetes-epsilon_insensitive-auto-sw": (
        "diabetes",
        SGDRegressor(loss="epsilon_insensitive", alpha=1e-2, epsilon=0.3),
        "random", None),
    "wine-hinge-auto": (
        "wine", SGDClassifier(loss="hinge", alpha=1e-2), "uniform", None),
    # L1 parts: influence on the active set (zero coefficients stay zero)
    "bc-log_loss-elasticnet-sw": (
        "breast_cancer",
        SGDClassifier(loss="log_loss", penalty="elasticnet", l1_ratio=0.5, alpha=2e-2),
        "random", None),
    "wine-squared_hinge-elasticnet-sw": (
        "wine",
        SGDClassifier(loss="squared_hinge", penalty="elasticnet", l1_ratio=0.7,
                      alpha=2e-2),
        "random", None),
    "diabetes-squared_error-l1": (
        "diabetes", SGDRegressor(loss="squared_error", penalty="l1", alpha=2e-2),
        "uniform", None),
}
L1 = [k for k, v in CONFIGS.items() if v[1].penalty != "l2"]


class Case:
    """One configuration: data, exact minimiser, explainer of the frozen SGD model."""

    def __init__(self, config_id):
        name, estimator, sw_kind, t = CONFIGS[config_id]
        self.id = config_id
        self.X, self.y, X_test, y_test = dataset(name)
        self.X_test, self.y_test = X_test[:40], y_test[:40]
        self.n = len(self.y)
        self.sw = weights(sw_kind, self.n)
        self.smoothing = "auto" if t is None else t
        # "auto" is t = 1e-3 for SGD's smoothed losses
        t_oracle = 1e-3 if t is None else t
        self.oracle = ExactObjective(estimator, self.X, self.y, self.sw, t_oracle)
        self.theta = self.oracle.minimise(self.sw)
        self.model = frozen_at(estimator, self.X, self.y, self.sw, self.theta)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no ConvergenceWarning at the optimum
            self.explainer = InfluenceExplainer(
                FrozenEstimator(self.model), smoothing=self.smoothing
            ).fit(self.X, self.y, sample_weight=self.sw)
        self._derivatives = {}

    def rows(self, k=3):
        """Rows with a non-zero loss gradient (others have zero influence)."""
        W, b = self.oracle.split(self.theta)
        _, d1, _ = self.oracle._loss(self.X @ W.T + b, self.oracle.targets)
        active = np.flatnonzero(np.abs(d1).max(axis=1) > 1e-3)
        return np.sort(np.random.default_rng(3).choice(active, k, replace=False))

    def derivatives(self, j):
        """n·∂θ̂/∂s_j and n·∂L(z_test)/∂s_j, Richardson-extrapolated central FD."""
        if j not in self._derivatives:
            self._derivatives[j] = self._fd(j)
        return self._derivatives[j]

    def _fd(self, j):
        base_pattern = self.oracle.pattern(self.theta)

        def value(step):
            sw = self.sw.copy()
            sw[j] += step
            theta = self.oracle.minimise(sw, self.theta)
            # the FD must not straddle a kink of a once-differentiable loss
            assert np.array_equal(self.oracle.pattern(theta), base_pattern), (
                f"[{self.id}] row {j}: a loss branch changed within ±{step}")
            return np.concatenate(
                [theta, self.oracle.test_losses(theta, self.X_test, self.y_test)])

        def central(step):
            return (value(step) - value(-step)) / (2.0 * step)

        fd = self.n * (4.0 * central(H / 2.0) - central(H)) / 3.0
        p = self.oracle.n_params
        return fd[:p], fd[p:]


def frozen_at(estimator, X, y, sw, theta):
    """A fitted copy of ``estimator`` whose coef_/intercept_ are set to θ."""
    model = estimator.__class__(**estimator.get_params())
    model.set_params(max_iter=3, tol=None, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y, sample_weight=sw)
    k = model.coef_.shape[0] if model.coef_.ndim == 2 else 1
    d = X.shape[1]
    coef = theta[: k * d].reshape(model.coef_.shape)
    intercept = theta[k * d:] if model.fit_intercept else np.zeros(k)
    model.coef_, model.intercept_ = coef.copy(), intercept.copy()
    return model


@functools.cache
def case(config_id):
    return Case(config_id)


# -- (a) the rebuilt objective at the exact minimiser ----------------------------------
@pytest.mark.parametrize("config_id", list(CONFIGS))
def test_gradient_vanishes_at_exact_minimiser(config_id):
    c = case(config_id)  # fitting raised no warning (errors inside Case)
    np.testing.assert_array_equal(c.explainer.params_, c.theta)
    assert c.explainer.optimality_ <= 1e-10, c.explainer.optimality_


# -- (b) parameter influence ----------------------------------------------------------
@pytest.mark.parametrize("config_id", list(CONFIGS))
def test_param_influence_matches_exact_reminimisation(config_id):
    """n·∂θ̂/∂s_j vs finite differences of exact minimisers of F."""
    c = case(config_id)
    rows = c.rows()
    predicted = c.explainer.param_influence(rows)
    errors = [max_rel_error(predicted[i], c.derivatives(int(j))[0])
              for i, j in enumerate(rows)]
    assert max(errors) <= RTOL, f"[{config_id}] rows {rows.tolist()}: {errors}"


# -- (c) loss influence ---------------------------------------------------------------
@pytest.mark.parametrize("config_id", list(CONFIGS))
def test_loss_influence_matches_exact_reminimisation(config_id):
    """n·∂L(z_test)/∂s_j vs finite differences of the re-minimised test losses."""
    c = case(config_id)
    rows = c.rows()
    predicted = c.explainer.loss_influence(c.X_test, c.y_test)
    assert predicted.shape == (len(c.y_test), c.n)
    errors = [max_rel_error(predicted[:, j], c.derivatives(int(j))[1]) for j in rows]
    assert max(errors) <= RTOL, f"[{config_id}] rows {rows.tolist()}: {errors}"


@pytest.mark.parametrize(
    "loss", ["squared_hinge", "modified_huber", "huber", "squared_epsilon_insensitive"])
def test_every_branch_of_piecewise_losses_is_exercised(loss):
    """For each kink, some configuration has training rows on both of its sides."""
    exercised = None
    for config_id in (k for k, v in CONFIGS.items() if v[1].loss == loss):
        c = case(config_id)
        pattern = c.oracle.pattern(c.theta)
        pattern = pattern.reshape(pattern.shape[0] if pattern.ndim == 3 else 1, -1)
        both = np.array([0 < b.sum() < b.size for b in pattern])
        exercised = both if exercised is None else exercised | both
    assert exercised is not None and exercised.all(), (loss, exercised)


@pytest.mark.parametrize("config_id", L1)
def test_l1_zero_coefficients_have_zero_influence(config_id):
    c = case(config_id)
    zero = c.theta == 0
    assert zero.any() and not zero[: c.oracle.k * c.oracle.d].all()
    np.testing.assert_array_equal(c.explainer.param_influence()[:, zero], 0.0)


# -- the oracle objective is scikit-learn's -------------------------------------------
def _params(model):
    return np.r_[np.ravel(model.coef_), np.ravel(model.intercept_)]


@pytest.mark.parametrize("class_weight", [None, {0: 2.0, 1: 0.5}])
def test_oracle_log_loss_is_logistic_regression(class_weight):
    """Binary log-loss: F / α is LogisticRegression's objective at C = 1/(n α)."""
    X, y, _, _ = dataset("breast_cancer")
    n, alpha = len(y), 1e-2
    sw = weights("random", n)
    est = SGDClassifier(loss="log_loss", alpha=alpha, class_weight=class_weight)
    theta = ExactObjective(est, X, y, sw, None).minimise(sw)
    lr = LogisticRegression(C=1.0 / (n * alpha), class_weight=class_weight,
                            solver="newton-cholesky", tol=1e-12, max_iter=1000)
    err = max_rel_error(theta, _params(lr.fit(X, y, sample_weight=sw)))
    assert err <= 1e-8, err


def test_oracle_one_vs_rest_is_binary_logistic_regressions():
    """Multiclass log-loss: output k is the binary model of class k against the rest."""
    X, y, _, _ = dataset("wine")
    n, alpha = len(y), 1e-2
    sw = weights("random", n)
    est = SGDClassifier(loss="log_loss", alpha=alpha)
    theta = ExactObjective(est, X, y, sw, None).minimise(sw)
    lr = LogisticRegression(C=1.0 / (n * alpha), solver="newton-cholesky", tol=1e-12)
    fits = [clone(lr).fit(X, y == k, sample_weight=sw) for k in range(3)]
    reference = np.r_[np.vstack([f.coef_ for f in fits]).ravel(),
                      [f.intercept_[0] for f in fits]]
    err = max_rel_error(theta, reference)
    assert err <= 1e-8, err


def test_oracle_squared_error_is_ridge():
    """Squared error: 2n·F is Ridge's objective at alpha = n α (½ and mean undone)."""
    X, y, _, _ = dataset("diabetes")
    n, alpha = len(y), 1e-2
    sw = weights("random", n)
    theta = ExactObjective(SGDRegressor(alpha=alpha), X, y, sw, None).minimise(sw)
    ridge = Ridge(alpha=n * alpha, solver="cholesky").fit(X, y, sample_weight=sw)
    err = max_rel_error(theta, _params(ridge))
    assert err <= 1e-10, err


def _sgd_limit(estimator, X, y, sw):
    """Where scikit-learn's SGD goes: averaged constant-step runs, bias extrapolated.

    Constant-step SGD with averaging settles at θ* + η·B + o(η); two step sizes
    (η, η/2, same number of updates per unit of η) cancel the O(η) bias.
    """
    n = len(y)

    def run(eta, epochs):
        params = dict(learning_rate="constant", eta0=eta, max_iter=epochs, tol=None,
                      average=n * epochs // 5, random_state=0)
        return _params(clone(estimator).set_params(**params).fit(X, y, sample_weight=sw))

    return 2.0 * run(2e-3, 6000) - run(4e-3, 3000)


def _swap_binary_class_weights(o):
    o.cw = o.cw.copy()
    o.cw[:, 0] = np.where(o.cw[:, 0] == o.cw[:, 0].max(), o.cw.min(), o.cw.max())


def _rest_carries_row_class_weight(o):
    own = np.where(o.targets > 0, o.cw, 0.0).sum(axis=1)
    o.cw = np.repeat(own[:, None], o.k, axis=1)


def _penalty_times_mean_weight(o):
    o.quad = o.quad * o.base_weight.mean()


# id: (dataset, estimator, alternative conventions that SGD must *not* follow)
SGD_LIMIT_CASES = {
    "bc-log_loss-dictcw-sw": (
        "breast_cancer",
        SGDClassifier(loss="log_loss", alpha=1e-2, class_weight={0: 3.0, 1: 0.5}),
        [_swap_binary_class_weights, _penalty_times_mean_weight]),
    "wine-squared_hinge-dictcw-sw": (
        "wine",
        SGDClassifier(loss="squared_hinge", alpha=1e-2,
                      class_weight={0: 1.0, 1: 3.0, 2: 0.5}),
        [_rest_carries_row_class_weight, _penalty_times_mean_weight]),
    "diabetes-huber-sw": (
        "diabetes", SGDRegressor(loss="huber", alpha=1e-2, epsilon=1.0),
        [_penalty_times_mean_weight]),
}


@pytest.mark.parametrize("case_id", list(SGD_LIMIT_CASES))
def test_sgd_converges_to_the_oracle_minimiser(case_id):
    """scikit-learn's own SGD approaches θ* of F — not of nearby conventions.

    Measured (relative ∞-norm distance of the extrapolated SGD limit): 1e-4 (binary
    log-loss), 3e-3 (one-vs-rest squared hinge), 2e-3 (Huber); the alternatives
    (swapped or one-vs-rest-misassigned class weights, penalty scaled by the mean
    sample weight) are 4e-2 to 2.4 away.
    """
    name, estimator, alternatives = SGD_LIMIT_CASES[case_id]
    X, y, _, _ = dataset(name)
    sw = weights("random", len(y))
    theta = ExactObjective(estimator, X, y, sw, None).minimise(sw)
    limit = _sgd_limit(estimator, X, y, sw)
    dist = max_rel_error(limit, theta)
    assert dist <= 1e-2, dist
    for alter in alternatives:
        wrong = ExactObjective(estimator, X, y, sw, None)
        alter(wrong)
        gap = max_rel_error(wrong.minimise(sw), theta)
        assert gap >= 3e-2 and max_rel_error(limit, wrong.minimise(sw)) >= 3 * dist, (
            alter.__name__, gap)


# -- away from the optimum: a Newton step, and the ConvergenceWarning -----------------
@pytest.mark.parametrize("name, estimator, t", [
    ("breast_cancer", SGDClassifier(loss="log_loss", alpha=1e-2, random_state=0), None),
    ("breast_cancer", SGDClassifier(loss="modified_huber", alpha=1e-2, average=True,
                                    class_weight="balanced", random_state=0), None),
    # (at t = 1e-3, SGD's hinge weights leave some output without any row within
    # ~t of its margin: the Hessian is then numerically singular — use t or damping)
    ("wine", SGDClassifier(loss="hinge", alpha=1e-2, random_state=0), 0.1),
    ("diabetes", SGDRegressor(loss="huber", alpha=1e-2, epsilon=1.0, random_state=0),
     None),
], ids=["log_loss", "modified_huber-average", "wine-hinge-t0.1", "huber"])
def test_plain_sgd_fit_warns_and_takes_a_newton_step(name, estimator, t):
    """SGD's own weights: warned about, and explained by the objective's H and ∇ there.

    At θ̃ (not an optimum) param_influence is −H(θ̃)⁻¹ n·∂∇F(θ̃)/∂s_j (a Newton step,
    Koh & Liang's appendix B), with H and ∂∇F/∂s_j from the oracle.
    """
    X, y, _, _ = dataset(name)
    sw = weights("random", len(y))
    with pytest.warns(ConvergenceWarning, match="not at an optimum"):
        ex = InfluenceExplainer(estimator, smoothing=t or "auto").fit(
            X, y, sample_weight=sw)
    assert ex.optimality_ > 1e-3
    oracle = ExactObjective(estimator, X, y, sw, t)
    theta = _params(ex.estimator_)
    if not estimator.fit_intercept:
        theta = theta[: oracle.n_params]
    np.testing.assert_array_equal(ex.params_, theta)
    Hm = oracle.hess(theta, sw)
    np.testing.assert_allclose(ex.hessian_, Hm, rtol=1e-10, atol=1e-12 * np.abs(Hm).max())
    G = np.array([oracle.row_gradient(theta, j) for j in range(len(y))])
    active = np.flatnonzero(np.abs(G).max(axis=1) > 1e-3 * np.abs(G).max())
    rows = active[[0, len(active) // 2, -1]]
    G = G[rows]
    expected = -np.linalg.solve(Hm, G.T).T
    predicted = ex.param_influence(rows)
    for i in range(len(rows)):
        assert max_rel_error(predicted[i], expected[i]) <= 1e-8


def test_damping_on_a_singular_hessian():
    """Unpenalised, with a duplicated column: H is singular; damping λ solves H + λI."""
    X, y, _, _ = dataset("breast_cancer")
    X = np.hstack([X, X[:, :1]])
    sw = weights("random", len(y))
    estimator = SGDClassifier(loss="log_loss", penalty=None, learning_rate="constant",
                              eta0=1e-2, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:  # exactly singular or numerically nearly so, depending on round-off
            InfluenceExplainer(estimator).fit(X, y, sample_weight=sw)
        except ValueError as err:
            assert "damping" in str(err)
        else:
            assert any(w.category is SingularHessianWarning for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", SingularHessianWarning)
        ex = InfluenceExplainer(estimator, damping=1e-3).fit(X, y, sample_weight=sw)
    oracle = ExactObjective(estimator.set_params(penalty="l2", alpha=0.0), X, y, sw,
                            None)
    Hm = oracle.hess(ex.params_, sw) + 1e-3 * np.eye(oracle.n_params)
    for j in (5, 60):
        expected = -np.linalg.solve(Hm, oracle.row_gradient(ex.params_, j))
        assert max_rel_error(ex.param_influence([j])[0], expected) <= 1e-8


# -- refused configurations -----------------------------------------------------------
@pytest.mark.parametrize("estimator, smoothing, match", [
    (SGDClassifier(loss="perceptron"), "auto", "Supported losses: 'log_loss'"),
    (SGDClassifier(loss="squared_error"), "auto", "Supported losses: 'log_loss'"),
    (SGDClassifier(loss="epsilon_insensitive"), "auto", "Supported losses"),
    (SGDClassifier(learning_rate="pa1", eta0=1.0), "auto", "passive-aggressive"),
    (SGDRegressor(loss="epsilon_insensitive", learning_rate="pa2", eta0=1.0), "auto",
     "passive-aggressive"),
    (SGDClassifier(early_stopping=True), "auto", "early_stopping"),
    (SGDRegressor(early_stopping=True), "auto", "early_stopping"),
    (SGDClassifier(loss="hinge"), 0.0, "smoothing > 0"),
    (SGDRegressor(loss="epsilon_insensitive"), 0.0, "smoothing > 0"),
], ids=["perceptron", "clf-squared_error", "clf-epsilon_insensitive", "pa1", "pa2",
        "early_stopping-clf", "early_stopping-reg", "hinge-t0", "eps-t0"])
def test_unsupported_configurations_are_refused(estimator, smoothing, match):
    is_clf = isinstance(estimator, SGDClassifier)
    X, y, _, _ = dataset("breast_cancer" if is_clf else "diabetes")
    estimator.set_params(random_state=0, max_iter=5, tol=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match=match):
            InfluenceExplainer(estimator, smoothing=smoothing).fit(X, y)


# -- input handling -------------------------------------------------------------------
@pytest.mark.parametrize("config_id", ["bc-log_loss-sw", "wine-squared_hinge-dictcw-sw",
                                       "diabetes-huber-sw"])
def test_sparse_input_matches_dense(config_id):
    c = case(config_id)
    sparse = InfluenceExplainer(FrozenEstimator(c.model), smoothing=c.smoothing).fit(
        sp.csr_matrix(c.X), c.y, sample_weight=c.sw)
    dense = c.explainer
    np.testing.assert_allclose(sparse.param_influence(), dense.param_influence(),
                               rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(
        sparse.loss_influence(sp.csr_matrix(c.X_test), c.y_test),
        dense.loss_influence(c.X_test, c.y_test), rtol=1e-10, atol=1e-13)


def test_auto_smoothing_is_1e_3():
    c = case("wine-hinge-auto")
    explicit = InfluenceExplainer(FrozenEstimator(c.model), smoothing=1e-3).fit(
        c.X, c.y, sample_weight=c.sw)
    np.testing.assert_array_equal(explicit.param_influence(),
                                  c.explainer.param_influence())


def test_regressor_transform_is_influence_on_the_prediction():
    """transform for a regressor: n·∂ŷ_t/∂s_j, checked against the same FD."""
    c = case("diabetes-huber-sw")
    out = c.explainer.transform(c.X_test)
    j = int(c.rows()[0])
    d_theta = c.derivatives(j)[0]
    expected = c.X_test @ d_theta[:-1] + d_theta[-1]  # ŷ = x·w + b
    assert max_rel_error(out[:, j], expected) <= RTOL


# -- the module's losses against finite differences -----------------------------------
@pytest.mark.parametrize("loss, targets", [
    (OneVsRestLogLoss(), "classes"),
    (HuberLoss(0.7), "real"),
    (SquaredEpsilonInsensitiveLoss(0.3), "real"),
    (SmoothEpsilonInsensitiveLoss(0.3, 0.05), "real"),
])
def test_loss_derivatives_match_finite_differences(loss, targets):
    rng = np.random.default_rng(0)
    Z = rng.uniform(-3, 3, (50, 3))
    y = rng.integers(0, 3, 50) if targets == "classes" else rng.normal(size=(50, 3))
    value, grad = loss.value_grad(Z, y)
    hess = loss.hessian(Z, y)
    h = 1e-6
    for a in range(3):
        step = np.zeros_like(Z)
        step[:, a] = h
        (vp, gp), (vm, gm) = loss.value_grad(Z + step, y), loss.value_grad(Z - step, y)
        np.testing.assert_allclose(grad[:, a], (vp - vm) / (2 * h), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(hess[:, :, a], (gp - gm) / (2 * h), rtol=1e-5,
                                   atol=1e-5)
    # and the values are the oracle's (scikit-learn's definitions)
    if targets == "classes":
        m = np.where(y[:, None] == np.arange(3), 1.0, -1.0) * Z
        expected = margin_phi("log_loss", m, None)[0].sum(axis=1)
    else:
        name = {HuberLoss: "huber", SquaredEpsilonInsensitiveLoss:
                "squared_epsilon_insensitive", SmoothEpsilonInsensitiveLoss:
                "epsilon_insensitive"}[type(loss)]
        eps = getattr(loss, "delta", getattr(loss, "epsilon", None))
        expected = residual_psi(name, Z - y, eps, getattr(loss, "t", None))[0].sum(axis=1)
    np.testing.assert_allclose(value, expected, rtol=1e-12)


def test_smooth_epsilon_insensitive_tends_to_epsilon_insensitive():
    r = np.linspace(-2, 2, 41)[:, None]
    value = SmoothEpsilonInsensitiveLoss(0.3, 1e-4).value_grad(r, np.zeros_like(r))[0]
    np.testing.assert_allclose(value, np.maximum(0, np.abs(r[:, 0]) - 0.3), atol=2e-4)


# -- scikit-learn's estimator checks --------------------------------------------------
# (SGD's own fits stop short of the optimum: the explainer's ConvergenceWarning is
# expected there and silenced)
# The checks only seed the explainer itself (set_random_state does not reach
# estimator__random_state), so the SGD models carry a fixed random_state: otherwise
# two fits differ and the idempotency/consistency checks fail. On the checks' tiny
# data SGD's classifiers saturate, leaving the unpenalised intercept without
# curvature (condition numbers 1e30–1e110, refused): damping keeps H invertible.
@parametrize_with_checks(
    [
        InfluenceExplainer(SGDClassifier(random_state=0), damping=1e-3),
        InfluenceExplainer(SGDClassifier(loss="log_loss", alpha=1e-2, random_state=0),
                           damping=1e-3),
        InfluenceExplainer(SGDRegressor(random_state=0)),
        InfluenceExplainer(SGDRegressor(loss="huber", random_state=0)),
    ],
    expected_failed_checks=expected_failed_checks(),
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sgd_sklearn_compatible_estimator(estimator, check):
    check(estimator)
