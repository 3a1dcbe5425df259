"""Reliability: pipelines, stale models, memory guard, persistence, and properties
that must hold for any data (hypothesis), each checked against refits or exact
identities of the documented convention."""

import io
import warnings

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer


def tight(**kw):
    return LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000, **kw)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X[:200, :10], y[:200], X[200:260, :10], y[200:260]


# -- pipelines ------------------------------------------------------------------------
def test_pipeline_explains_its_last_step(cancer):
    X, y, Xt, yt = cancer
    sw = np.random.RandomState(0).uniform(0.5, 2, len(y))
    explainer = InfluenceExplainer(make_pipeline(StandardScaler(), tight())).fit(
        X, y, sample_weight=sw)
    scaler = explainer.estimator_[0]
    ref = InfluenceExplainer(tight()).fit(scaler.transform(X), y, sample_weight=sw)
    np.testing.assert_allclose(explainer.loss_influence(Xt, yt),
                               ref.loss_influence(scaler.transform(Xt), yt),
                               rtol=1e-10, atol=1e-13)
    assert explainer.n_features_in_ == X.shape[1]
    with pytest.raises(ValueError, match="X has 9 features"):
        explainer.loss_influence(Xt[:, :9], yt)


def test_pipeline_with_nonlinear_last_step_lists_supported(cancer):
    X, y, *_ = cancer
    pipe = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=2))
    with pytest.raises(TypeError, match="RandomForestClassifier.*Supported estimators"):
        InfluenceExplainer(pipe).fit(X, y)


# -- stale models, memory, persistence -----------------------------------------------
def test_model_changed_after_fit_is_refused(cancer):
    X, y, Xt, yt = cancer
    Xs = StandardScaler().fit_transform(X)
    explainer = InfluenceExplainer(tight()).fit(Xs, y)
    explainer.estimator_.fit(Xs[:100], y[:100])  # the user refits the inner model
    for call in (lambda: explainer.loss_influence(Xs[:5], y[:5]),
                 explainer.param_influence, explainer.self_influence):
        with pytest.raises(ValueError, match="changed after InfluenceExplainer.fit"):
            call()


def test_memory_guard_points_to_streaming(cancer):
    X, y, Xt, yt = cancer
    Xs = StandardScaler().fit_transform(X)
    small = InfluenceExplainer(tight(), max_result_bytes=8 * 200 * 10).fit(Xs, y)
    with pytest.raises(MemoryError, match="most_influential"):
        small.loss_influence(Xs[:11], y[:11])
    assert small.loss_influence(Xs[:10], y[:10]).shape == (10, 200)
    idx, _ = small.most_influential(Xs, y, k=3)  # streams: not limited
    assert idx.shape == (200, 3)
    unlimited = InfluenceExplainer(tight(), max_result_bytes=None).fit(Xs, y)
    assert unlimited.loss_influence(Xs, y).shape == (200, 200)


def test_joblib_round_trip(cancer):
    X, y, Xt, yt = cancer
    explainer = InfluenceExplainer(make_pipeline(StandardScaler(), tight())).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(explainer, buffer)
    buffer.seek(0)
    restored = joblib.load(buffer)
    np.testing.assert_array_equal(restored.loss_influence(Xt, yt),
                                  explainer.loss_influence(Xt, yt))
    np.testing.assert_array_equal(restored.leave_one_out(Xt, yt, method="newton"),
                                  explainer.leave_one_out(Xt, yt, method="newton"))


@pytest.mark.parametrize("labels", [np.array([3, 7, 11]), np.array(["b", "a", "c"])])
def test_non_contiguous_and_string_labels(labels):
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ref = InfluenceExplainer(tight()).fit(X, y).loss_influence(X[:10], y[:10])
    order = np.argsort(labels)  # classes_ are sorted: map so the class order matches
    mapped = labels[order][y]
    out = InfluenceExplainer(tight()).fit(X, mapped).loss_influence(X[:10], mapped[:10])
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("X", [np.empty((0, 3)), np.arange(5.0)])
def test_empty_and_1d_X(X):
    with pytest.raises(ValueError, match="0 sample|Expected 2D array"):
        InfluenceExplainer(tight()).fit(X, np.arange(len(X)) % 2)


# -- damping = an extra ridge term ----------------------------------------------------
def test_damping_is_the_influence_of_an_extra_ridge_term(cancer):
    """An unpenalised model with damping λ at θ̂_C has exactly the influences of the
    model penalised by λ/2‖w‖² (C = 1/(nλ)) — verified by refits of that model."""
    X, y, *_ = cancer
    X = StandardScaler().fit_transform(X)
    n, lam = len(y), 0.02
    penalised = tight(C=1.0 / (n * lam), fit_intercept=False).fit(X, y)
    unpenalised = LogisticRegression(C=np.inf, fit_intercept=False)
    unpenalised.coef_, unpenalised.intercept_ = penalised.coef_, np.zeros(1)
    unpenalised.classes_ = penalised.classes_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # θ̂_C is not its optimum
        damped = InfluenceExplainer(FrozenEstimator(unpenalised), damping=lam).fit(X, y)
    rows = [0, 7, 42]
    h = 1e-3
    for j in rows:
        thetas = []
        for sign in (1, -1):
            sw = np.ones(n)
            sw[j] += sign * h
            thetas.append(clone(penalised).fit(X, y, sample_weight=sw).coef_.ravel())
        fd = n * (thetas[0] - thetas[1]) / (2 * h)
        got = damped.param_influence([j])[0]
        assert np.abs(got - fd).max() / np.abs(fd).max() < 1e-5


# -- properties for any data (hypothesis) ---------------------------------------------
def _dataset(seed, n, d):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, d))
    logits = X @ rng.standard_normal(d)
    y = (logits + rng.logistic(size=n) > 0).astype(int)
    y[:2] = [0, 1]
    return X, y


PROPERTY = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(seed=st.integers(0, 10_000), n=st.integers(30, 80), d=st.integers(2, 5))
def test_permuting_training_rows_permutes_columns(seed, n, d):
    X, y = _dataset(seed, n, d)
    perm = np.random.RandomState(seed + 1).permutation(n)
    a = InfluenceExplainer(tight()).fit(X, y)
    b = InfluenceExplainer(tight()).fit(X[perm], y[perm])
    np.testing.assert_allclose(b.loss_influence(X[:5], y[:5]),
                               a.loss_influence(X[:5], y[:5])[:, perm],
                               rtol=1e-6, atol=1e-9)


@PROPERTY
@given(seed=st.integers(0, 10_000), a=st.floats(0.2, 5.0))
def test_scaling_weights_and_c_follows_the_convention(seed, a):
    """s → a·s with C → C/a is the same model; n·∂θ̂/∂s_j scales by 1/a, and the
    predicted effect of removing a row (−(s_j/n)·I) is unchanged."""
    X, y = _dataset(seed, 60, 3)
    sw = np.random.RandomState(seed).uniform(0.5, 2.0, len(y))
    ref = InfluenceExplainer(tight(C=1.0)).fit(X, y, sample_weight=sw)
    scaled = InfluenceExplainer(tight(C=1.0 / a)).fit(X, y, sample_weight=a * sw)
    np.testing.assert_allclose(scaled.params_, ref.params_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(scaled.param_influence(), ref.param_influence() / a,
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(scaled.leave_one_out(X[:5], y[:5]),
                               ref.leave_one_out(X[:5], y[:5]), rtol=1e-6, atol=1e-10)


@PROPERTY
@given(seed=st.integers(0, 10_000), j=st.integers(0, 39))
def test_duplicate_row_equals_weight_two(seed, j):
    """Duplicating row j fits the same model as giving it weight 2; each copy's
    n·∂θ̂/∂s is (n+1)/n times the weighted row's, and removing both copies is predicted
    the same as removing the weight-2 row."""
    X, y = _dataset(seed, 40, 3)
    n = len(y)
    sw = np.ones(n)
    sw[j] = 2.0
    weighted = InfluenceExplainer(tight()).fit(X, y, sample_weight=sw)
    Xd, yd = np.vstack([X, X[j]]), np.r_[y, y[j]]
    dup = InfluenceExplainer(tight()).fit(Xd, yd)
    np.testing.assert_allclose(dup.params_, weighted.params_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(dup.param_influence([j, n]),
                               np.tile(weighted.param_influence([j]), (2, 1))
                               * (n + 1) / n, rtol=1e-6, atol=1e-9)
    both = dup.leave_one_out(X[:5], y[:5])[:, [j, n]].sum(axis=1)
    np.testing.assert_allclose(both, weighted.leave_one_out(X[:5], y[:5])[:, j],
                               rtol=1e-6, atol=1e-10)


def test_inconsistent_lengths_are_refused(cancer):
    X, y, Xt, yt = cancer
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        InfluenceExplainer(tight()).fit(X, y[:-1])
    explainer = InfluenceExplainer(tight()).fit(StandardScaler().fit_transform(X), y)
    with pytest.raises(ValueError, match="one label per row"):
        explainer.leave_one_out(Xt, yt[:-1], method="newton")


def test_refitting_analyses_refuse_pipelines_clearly(cancer):
    from skinfluence.analysis import mislabel_ranking, validate

    X, y, Xt, yt = cancer
    explainer = InfluenceExplainer(make_pipeline(StandardScaler(), tight())).fit(X, y)
    with pytest.raises(ValueError, match="X_train=..., y_train="):
        validate(explainer, Xt, yt, k=3)
    # ranking scores rows in the explained model's own feature space: fine
    assert mislabel_ranking(explainer, "loss").shape == (len(y),)
