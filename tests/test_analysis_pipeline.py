"""The refitting analyses on an explainer of a Pipeline: the whole pipeline is
refitted on the user's training data (the influence holds the earlier steps fixed,
so the check measures that approximation too). Oracle: refits written out here."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.analysis import accuracy_after_fixing, mislabel_ranking, validate
from skinfluence.plotting import refit_loo


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :6] * 10 + 5  # raw scale: the scaler matters
    return X[:150], y[:150], X[150:170], y[150:170]


def _pipeline():
    return make_pipeline(StandardScaler(),
                         LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12))


def _loss(model, X, y):
    p = model.predict_proba(X)[np.arange(len(y)), y]
    return -np.log(p)


def test_validate_refits_the_whole_pipeline(data):
    X, y, Xt, yt = data
    sw = np.linspace(0.5, 1.5, len(y))
    ex = InfluenceExplainer(_pipeline()).fit(X, y, sample_weight=sw)
    result = validate(ex, Xt, yt, k=4, method="newton", X_train=X, y_train=y)
    base = clone(_pipeline()).fit(X, y, logisticregression__sample_weight=sw)
    for i, j in enumerate(result.indices):
        keep = np.arange(len(y)) != j
        refit = clone(_pipeline()).fit(X[keep], y[keep],
                                       logisticregression__sample_weight=sw[keep])
        actual = (_loss(refit, Xt, yt) - _loss(base, Xt, yt)).mean()
        np.testing.assert_allclose(result.actual[i], actual, rtol=1e-6, atol=1e-10)
    # the prediction holds the scaler fixed; refits move it by O(1/n) too
    assert result.pearson > 0.9


def test_pipeline_analyses_need_the_training_inputs(data):
    X, y, Xt, yt = data
    ex = InfluenceExplainer(_pipeline()).fit(X, y)
    with pytest.raises(ValueError, match="X_train=..., y_train="):
        validate(ex, Xt, yt, k=3)
    with pytest.raises(ValueError, match="not the data the explainer was fitted on"):
        validate(ex, Xt, yt, k=3, X_train=X * 2, y_train=y)
    with pytest.raises(ValueError, match="rows"):
        validate(ex, Xt, yt, k=3, X_train=X[:-1], y_train=y[:-1])


def test_accuracy_after_fixing_refits_the_pipeline(data):
    X, y, Xt, yt = data
    y_noisy = y.copy()
    y_noisy[::6] = 1 - y_noisy[::6]
    ex = InfluenceExplainer(_pipeline()).fit(X, y_noisy)
    ranking = mislabel_ranking(ex, "leverage_corrected")
    res = accuracy_after_fixing(ex, ranking, y, Xt, yt, fractions=[0.0, 0.2],
                                X_train=X)
    for f, acc in zip([0.0, 0.2], res["accuracy"], strict=True):
        y_fixed = y_noisy.copy()
        top = ranking[: int(np.ceil(f * len(y) - 1e-9))]
        y_fixed[top] = y[top]
        expected = clone(_pipeline()).fit(X, y_fixed).score(Xt, yt)
        assert acc == pytest.approx(expected)


def test_display_refits_route_sample_weights_to_the_last_step(data):
    X, y, Xt, yt = data
    sw = np.linspace(0.5, 1.5, len(y))
    ex = InfluenceExplainer(_pipeline()).fit(X, y, sample_weight=sw)
    actual = refit_loo(ex, Xt, yt, [0, 5], X_train=X, y_train=y)
    base = clone(_pipeline()).fit(X, y, logisticregression__sample_weight=sw)
    keep = np.arange(len(y)) != 5
    refit = clone(_pipeline()).fit(X[keep], y[keep],
                                   logisticregression__sample_weight=sw[keep])
    np.testing.assert_allclose(actual[:, 1], _loss(refit, Xt, yt) - _loss(base, Xt, yt),
                               rtol=1e-6, atol=1e-10)


def test_validate_on_a_dataframe_with_text_columns():
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    n = 140
    df = pd.DataFrame({"age": rng.normal(40, 10, n), "income": rng.normal(50, 20, n),
                       "country": rng.choice(["fr", "de", "us"], n)})
    y = ((df["age"] - 40) / 10 + (df["country"] == "us") + rng.normal(0, 1, n) > 0)
    y = y.astype(int).to_numpy()
    prep = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                              ("cat", OneHotEncoder(), ["country"])])
    model = make_pipeline(prep, LogisticRegression(solver="newton-cholesky",
                                                   tol=1e-12))
    ex = InfluenceExplainer(model).fit(df[:120], y[:120])
    result = validate(ex, df[120:], y[120:], k=3, method="newton",
                      X_train=df[:120], y_train=y[:120])
    assert np.isfinite(result.actual).all()
    assert np.corrcoef(result.predicted, result.actual)[0, 1] > 0.9
