"""The estimator API: meta-estimator behaviour, errors, determinism, input types."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from joblib import parallel_backend
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from skinfluence import InfluenceExplainer, SingularHessianWarning


def tight(**kw):
    return LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000, **kw)


@pytest.fixture(scope="module")
def fitted(binary_data):
    X, y, Xt, yt = binary_data
    return InfluenceExplainer(tight(C=0.5)).fit(X, y), X, y, Xt, yt


# -- contract -------------------------------------------------------------------------
def test_fitted_attributes_and_shapes(fitted):
    explainer, X, y, Xt, yt = fitted
    est = explainer.estimator_
    np.testing.assert_array_equal(
        explainer.params_, np.r_[est.coef_.ravel(), est.intercept_]
    )
    assert explainer.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(explainer.classes_, est.classes_)
    assert explainer.param_influence().shape == (len(y), X.shape[1] + 1)
    assert explainer.param_influence([3, 1]).shape == (2, X.shape[1] + 1)
    assert explainer.loss_influence(Xt, yt).shape == (len(yt), len(y))
    assert explainer.transform(Xt).shape == (len(yt), len(y))
    assert explainer.self_influence().shape == (len(y),)


def test_param_influence_rows_and_negative_indices(fitted):
    explainer, *_ = fitted
    full = explainer.param_influence()
    # the same rows solved in a different batch shape: equal up to round-off
    np.testing.assert_allclose(explainer.param_influence([5, -1]), full[[5, -1]],
                               rtol=1e-13, atol=0)


def test_leave_one_out_scales_loss_influence(binary_data):
    X, y, Xt, yt = binary_data
    sw = np.random.RandomState(0).uniform(0.5, 2, len(y))
    explainer = InfluenceExplainer(tight()).fit(X, y, sample_weight=sw)
    expected = -explainer.loss_influence(Xt, yt) * sw / len(y)
    np.testing.assert_allclose(explainer.leave_one_out(Xt, yt), expected, rtol=1e-12,
                               atol=1e-15 * np.abs(expected).max())


def test_transform_uses_predicted_labels(fitted):
    explainer, _, _, Xt, _ = fitted
    np.testing.assert_allclose(
        explainer.transform(Xt), explainer.loss_influence(Xt, explainer.predict(Xt)),
        rtol=1e-13,
    )


def test_self_influence_is_diagonal_of_loss_influence(multiclass_data):
    X, y, _, _ = multiclass_data
    explainer = InfluenceExplainer(tight(class_weight="balanced")).fit(X, y)
    np.testing.assert_allclose(
        explainer.self_influence(), np.diag(explainer.loss_influence(X, y)),
        rtol=1e-10, atol=1e-13,
    )


def test_delegates_predictions(fitted):
    explainer, _, _, Xt, yt = fitted
    est = explainer.estimator_
    np.testing.assert_array_equal(explainer.predict(Xt), est.predict(Xt))
    np.testing.assert_array_equal(explainer.predict_proba(Xt), est.predict_proba(Xt))
    np.testing.assert_array_equal(
        explainer.decision_function(Xt), est.decision_function(Xt)
    )
    assert explainer.score(Xt, yt) == est.score(Xt, yt)


def test_string_labels_match_integer_labels(binary_data):
    X, y, Xt, yt = binary_data
    names = np.array(["benign", "malignant"])  # sorted: same class order as 0 < 1
    a = InfluenceExplainer(tight()).fit(X, y).loss_influence(Xt, yt)
    b = InfluenceExplainer(tight()).fit(X, names[y]).loss_influence(Xt, names[yt])
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_sparse_input_matches_dense(multiclass_data):
    X, y, Xt, yt = multiclass_data
    dense = InfluenceExplainer(tight()).fit(X, y)
    for fmt in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
        sparse = InfluenceExplainer(tight()).fit(fmt(X), y)
        np.testing.assert_allclose(
            sparse.loss_influence(fmt(Xt), yt), dense.loss_influence(Xt, yt),
            rtol=1e-8, atol=1e-10,
        )
        np.testing.assert_allclose(
            sparse.param_influence(), dense.param_influence(), rtol=1e-8, atol=1e-10
        )


def test_float32_and_list_input(binary_data):
    X, y, Xt, yt = binary_data
    ref = InfluenceExplainer(tight()).fit(X, y).loss_influence(Xt, yt)
    # float32 data: sklearn fits in float32, so θ̂ and the influences carry float32
    # precision; skinfluence computes in float64 from there.
    f32 = InfluenceExplainer(tight()).fit(X.astype(np.float32), y)
    out = f32.loss_influence(Xt.astype(np.float32), yt)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    from_lists = InfluenceExplainer(tight()).fit(X.tolist(), y.tolist())
    np.testing.assert_allclose(from_lists.loss_influence(Xt.tolist(), yt.tolist()),
                               ref, rtol=1e-12)


# -- determinism and parallelism ------------------------------------------------------
@pytest.mark.parametrize("n_jobs", [1, 2, -1])
@pytest.mark.parametrize("batch_size", ["auto", 7])
def test_same_result_for_any_n_jobs_and_batch_size(multiclass_data, n_jobs,
                                                   batch_size):
    X, y, Xt, yt = multiclass_data
    ref = InfluenceExplainer(tight()).fit(X, y)
    other = InfluenceExplainer(tight(), n_jobs=n_jobs, batch_size=batch_size).fit(X, y)
    np.testing.assert_allclose(other.loss_influence(Xt, yt),
                               ref.loss_influence(Xt, yt), rtol=0, atol=1e-12)
    np.testing.assert_allclose(other.param_influence(), ref.param_influence(),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(other.self_influence(), ref.self_influence(),
                               rtol=0, atol=1e-12)


def test_same_result_under_loky_backend(multiclass_data):
    X, y, Xt, yt = multiclass_data
    ref = InfluenceExplainer(tight()).fit(X, y).loss_influence(Xt, yt)
    with parallel_backend("loky", n_jobs=2):
        out = InfluenceExplainer(tight(), batch_size=5).fit(X, y).loss_influence(Xt, yt)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


def test_pickle_round_trip(fitted):
    explainer, _, _, Xt, yt = fitted
    restored = pickle.loads(pickle.dumps(explainer))
    np.testing.assert_array_equal(restored.loss_influence(Xt, yt),
                                  explainer.loss_influence(Xt, yt))


def test_inputs_and_estimator_not_mutated(binary_data):
    X, y, Xt, yt = binary_data
    X, y, Xt = X.copy(), y.copy(), Xt.copy()
    sw = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    for a in (X, y, Xt, sw):
        a.setflags(write=False)
    est = tight(class_weight="balanced")
    params = est.get_params()
    explainer = InfluenceExplainer(est).fit(X, y, sample_weight=sw)
    explainer.loss_influence(Xt, yt)
    explainer.transform(Xt)
    assert not hasattr(est, "coef_")
    assert est.get_params() == params


# -- scikit-learn integration ---------------------------------------------------------
def test_pipeline_last_step_and_transformer_step(binary_data):
    X, y, Xt, yt = binary_data
    pipe = make_pipeline(StandardScaler(), InfluenceExplainer(tight()))
    pipe.fit(X, y)
    assert pipe.score(Xt, yt) > 0.8
    assert pipe.transform(Xt).shape == (len(yt), len(y))
    # as a transformer feeding another model: one feature per training row
    stacked = make_pipeline(InfluenceExplainer(tight()), LogisticRegression())
    stacked.fit(X, y)
    assert stacked.predict(Xt).shape == (len(yt),)


def test_grid_search_over_inner_parameters(binary_data):
    X, y, Xt, yt = binary_data
    search = GridSearchCV(
        InfluenceExplainer(tight()), {"estimator__C": [0.01, 1.0]}, cv=3
    ).fit(X, y)
    assert search.best_params_["estimator__C"] in (0.01, 1.0)
    best = search.best_estimator_
    assert best.estimator_.C == search.best_params_["estimator__C"]
    assert best.loss_influence(Xt, yt).shape == (len(yt), len(y))


def test_frozen_prefit_estimator_is_used_as_is(binary_data):
    X, y, Xt, yt = binary_data
    prefit = tight(C=0.5).fit(X, y)
    coef = prefit.coef_.copy()
    explainer = InfluenceExplainer(FrozenEstimator(prefit)).fit(X, y)
    np.testing.assert_array_equal(prefit.coef_, coef)
    np.testing.assert_array_equal(explainer.params_,
                                  np.r_[coef.ravel(), prefit.intercept_])
    ref = InfluenceExplainer(tight(C=0.5)).fit(X, y)
    np.testing.assert_allclose(explainer.loss_influence(Xt, yt),
                               ref.loss_influence(Xt, yt), rtol=1e-9, atol=1e-12)


def test_weighted_fit_predicts_like_repeated_rows(binary_data):
    """What the expected-failed sample-weight checks would verify beyond transform."""
    X, y, Xt, _ = binary_data
    sw = np.random.RandomState(0).randint(0, 3, len(y))
    weighted = InfluenceExplainer(tight()).fit(X, y, sample_weight=sw)
    repeated = InfluenceExplainer(tight()).fit(np.repeat(X, sw, 0), np.repeat(y, sw))
    np.testing.assert_allclose(weighted.predict_proba(Xt), repeated.predict_proba(Xt),
                               rtol=1e-9)
    np.testing.assert_allclose(weighted.params_, repeated.params_, rtol=1e-8)


# -- errors and warnings --------------------------------------------------------------
@pytest.mark.parametrize(
    "method, args",
    [("param_influence", ()), ("self_influence", ()), ("loss_influence", "Xy"),
     ("transform", "X"), ("leave_one_out", "Xy"), ("predict", "X")],
)
def test_unfitted_raises(binary_data, method, args):
    X, y, *_ = binary_data
    call_args = {"": (), "X": (X,), "Xy": (X, y)}["".join(args)]
    with pytest.raises(NotFittedError):
        getattr(InfluenceExplainer(tight()), method)(*call_args)


@pytest.mark.parametrize(
    "estimator, message",
    [(RandomForestClassifier(n_estimators=3),
      "does not support RandomForestClassifier.*Supported estimators:.*"
      "LogisticRegression"),
     (KNeighborsClassifier(), "does not support KNeighborsClassifier")],
)
def test_unsupported_estimator_lists_supported(binary_data, estimator, message):
    X, y, *_ = binary_data
    with pytest.raises(TypeError, match=message):
        InfluenceExplainer(estimator).fit(X, y)


def test_logistic_regression_cv_explains_refit_at_selected_c(multiclass_data):
    X, y, Xt, yt = multiclass_data
    cv = LogisticRegressionCV(Cs=[0.05, 0.5, 5.0], cv=3, solver="newton-cholesky",
                              tol=1e-12, max_iter=1000)
    explainer = InfluenceExplainer(cv).fit(X, y)
    C = explainer.estimator_.C_[0]
    ref = InfluenceExplainer(tight(C=C)).fit(X, y)
    np.testing.assert_allclose(explainer.params_, ref.params_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(explainer.loss_influence(Xt, yt),
                               ref.loss_influence(Xt, yt), rtol=1e-6, atol=1e-9)
    with pytest.raises(TypeError, match="refit=False"):
        InfluenceExplainer(LogisticRegressionCV(refit=False)).fit(X, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_rejected(fitted, bad):
    explainer, X, y, Xt, yt = fitted
    Xb = X.copy()
    Xb[3, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        InfluenceExplainer(tight()).fit(Xb, y)
    Xtb = Xt.copy()
    Xtb[0, 0] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        explainer.loss_influence(Xtb, yt)


def test_wrong_number_of_features(fitted):
    explainer, _, _, Xt, yt = fitted
    with pytest.raises(ValueError, match="X has 7 features, but InfluenceExplainer "
                                         "is expecting 8 features"):
        explainer.loss_influence(Xt[:, :7], yt)


def test_unseen_and_misshaped_labels(fitted):
    explainer, _, _, Xt, yt = fitted
    bad = yt.copy()
    bad[0] = 5
    with pytest.raises(ValueError, match=r"labels not seen during fit: \[5\]"):
        explainer.loss_influence(Xt, bad)
    with pytest.raises(ValueError, match="one label per row"):
        explainer.loss_influence(Xt, yt[:-1])


def test_index_errors(fitted):
    explainer, X, *_ = fitted
    with pytest.raises(IndexError, match="out of range"):
        explainer.param_influence([0, len(X)])
    with pytest.raises(TypeError, match="integer"):
        explainer.param_influence([0.5])


@pytest.mark.parametrize("damping", [-1.0, "big"])
def test_invalid_damping(binary_data, damping):
    X, y, *_ = binary_data
    with pytest.raises(InvalidParameterError, match="damping"):
        InfluenceExplainer(tight(), damping=damping).fit(X, y)


def test_single_class_and_sample_weight_length(binary_data):
    X, y, *_ = binary_data
    with pytest.raises(ValueError, match="only one class"):
        InfluenceExplainer(tight()).fit(X, np.zeros(len(y), dtype=int))
    with pytest.raises(ValueError, match="sample_weight"):
        InfluenceExplainer(tight()).fit(X, y, sample_weight=np.ones(len(y) - 1))


def test_not_converged_warns(binary_data):
    X, y, *_ = binary_data
    with pytest.warns(ConvergenceWarning, match="not at an optimum"):
        explainer = InfluenceExplainer(
            LogisticRegression(max_iter=2, tol=1e-12)
        ).fit(X, y)
    assert explainer.optimality_ > 1e-3


def test_converged_does_not_warn(binary_data):
    X, y, *_ = binary_data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer = InfluenceExplainer(tight()).fit(X, y)
    assert explainer.optimality_ < 1e-8


def test_unpenalised_separable_names_damping():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.warns(ConvergenceWarning, match="damping"):
        InfluenceExplainer(LogisticRegression(C=np.inf, max_iter=500)).fit(X, y)


def test_collinear_unpenalised_names_damping():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((60, 2))
    y = (rng.rand(60) > 0.5).astype(int)
    model = LogisticRegression(C=np.inf, max_iter=1000)
    exact = np.c_[X, X[:, 0]]
    with pytest.raises(ValueError, match="singular.*damping"):
        InfluenceExplainer(model).fit(exact, y)
    noise = rng.standard_normal(60)
    # 1-norm condition number ≈ 6e10: warned; ≈ 6e14 (> 1e-2/eps): refused
    with pytest.warns(SingularHessianWarning, match="damping"):
        near = InfluenceExplainer(model).fit(np.c_[X, X[:, 0] + 1e-5 * noise], y)
    assert 1e10 < near.hessian_solver_.condition_number_ < 1e12
    with pytest.raises(ValueError, match="numerically singular.*damping"):
        InfluenceExplainer(model).fit(np.c_[X, X[:, 0] + 1e-7 * noise], y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingularHessianWarning)
        InfluenceExplainer(model, damping=1e-3).fit(exact, y)


def test_clone_keeps_parameters():
    explainer = InfluenceExplainer(tight(C=3.0), damping=0.1, n_jobs=2, batch_size=10)
    cloned = clone(explainer)
    assert cloned.get_params()["estimator__C"] == 3.0
    assert cloned.damping == 0.1 and cloned.batch_size == 10


@pytest.mark.parametrize("kind", ["harmful", "helpful", "abs"])
def test_most_influential_matches_full_matrix(multiclass_data, kind):
    X, y, Xt, yt = multiclass_data
    explainer = InfluenceExplainer(tight(), batch_size=4).fit(X, y)
    full = explainer.loss_influence(Xt, yt)
    key = {"harmful": full, "helpful": -full, "abs": np.abs(full)}[kind]
    idx, scores = explainer.most_influential(Xt, yt, k=5, kind=kind)
    assert idx.shape == scores.shape == (len(yt), 5)
    np.testing.assert_array_equal(idx, np.argsort(-key, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(scores, np.take_along_axis(full, idx, axis=1),
                               rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="k must be"):
        explainer.most_influential(Xt, yt, k=0)
    with pytest.raises(ValueError, match="kind must be"):
        explainer.most_influential(Xt, yt, kind="worst")
