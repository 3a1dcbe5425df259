"""InfluenceDisplay: every kind draws, sets its attributes, and checks its inputs."""

import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, Ridge

from skinfluence import InfluenceExplainer
from skinfluence.plotting import InfluenceDisplay, refit_loo

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _model():
    return LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12)


@pytest.fixture(scope="module")
def fitted(binary_data):
    X, y, X_te, y_te = binary_data
    return InfluenceExplainer(_model()).fit(X, y), X, y, X_te[:10], y_te[:10]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(n_class=2, return_X_y=True)
    return X[:150] / 16, y[:150], X[150:160] / 16, y[150:160]


def _check_axes(display, ax=None):
    assert isinstance(display, InfluenceDisplay)
    assert isinstance(display.ax_, mpl.axes.Axes)
    assert isinstance(display.figure_, mpl.figure.Figure)
    assert display.figure_ is display.ax_.figure
    if ax is not None:
        assert display.ax_ is ax


@pytest.mark.parametrize("given_ax", [False, True])
def test_top_bars(fitted, given_ax):
    explainer, X, y, X_te, y_te = fitted
    ax = plt.subplots()[1] if given_ax else None
    display = InfluenceDisplay.from_explainer(explainer, X_te, y_te, kind="top",
                                              test_index=2, k=4, y_train=y, ax=ax)
    _check_axes(display, ax)
    assert display.kind_ == "top"
    assert len(display.bars_) == 8 and display.image_ is None
    influence = explainer.loss_influence(X_te[[2]], y_te[[2]])[0]
    np.testing.assert_allclose(display.influence, influence)
    order = np.argsort(influence)
    expected = np.concatenate([order[::-1][:4], order[:4][::-1]])  # harmful first
    widths = [bar.get_width() for bar in display.bars_]
    np.testing.assert_allclose(widths, influence[expected])
    labels = [t.get_text() for t in display.ax_.get_yticklabels()]
    assert labels[0] == f"#{expected[0]} (y={y[expected[0]]})"


@pytest.mark.parametrize("image_shape", [(8, 8), "auto"])
def test_top_images(digits, image_shape):
    X, y, X_te, y_te = digits
    fig, ax = plt.subplots()
    display = InfluenceDisplay.from_estimator(
        _model(), X, y, X_te, y_te, kind="top", k=3, image_shape=image_shape, ax=ax
    )
    _check_axes(display, ax)
    assert display.bars_ is None
    mosaic = display.image_.get_array()
    assert mosaic.shape == (2 * (8 + 7), (8 + 4) + 3 * 9)  # test column, gap, 3 tiles
    assert mosaic[:, 8:12].mask.all()  # the test image stands apart from the rows
    assert len(display.text_) == 7  # the test image, 3 helpful, 3 harmful
    assert display.text_[0].get_text().startswith("test")
    assert "pred" in display.text_[0].get_text()
    assert "predicted" in ax.get_title()
    # the first helpful tile is the most helpful training image
    j = int(np.argmin(display.influence))
    assert display.text_[1].get_text().startswith(f"#{j} y={y[j]}")


def test_image_errors(fitted, digits):
    explainer, X, y, X_te, y_te = fitted
    with pytest.raises(ValueError, match="perfect|square"):
        InfluenceDisplay.from_explainer(explainer, X_te, y_te, X_train=X,
                                        image_shape="auto")
    with pytest.raises(ValueError, match="does not match the 8 features"):
        InfluenceDisplay.from_explainer(explainer, X_te, y_te, X_train=X,
                                        image_shape=(3, 3))
    with pytest.raises(ValueError, match="pass X_train"):
        InfluenceDisplay.from_explainer(explainer, X_te, y_te, image_shape=(2, 4))


@pytest.mark.parametrize("given_ax", [False, True])
def test_loo_refits_agree_with_exact(fitted, given_ax):
    explainer, X, y, X_te, y_te = fitted
    ax = plt.subplots()[1] if given_ax else None
    display = InfluenceDisplay.from_explainer(
        explainer, X_te, y_te, kind="loo", k=4, X_train=X, y_train=y,
        method="newton", ax=ax, n_jobs=2,
    )
    _check_axes(display, ax)
    assert display.actual_loo.shape == display.predicted_loo.shape == (40,)
    assert display.pearson_r_ > 0.99
    assert "Pearson R = " in display.scatter_.get_label()
    assert display.line_.get_label() == "y = x"
    labels = [t.get_text() for t in display.ax_.get_legend().get_texts()]
    assert any("Pearson R" in label for label in labels)
    # the refit rows are those of largest predicted effect; refits match "exact"
    predicted = explainer.leave_one_out(X_te, y_te, method="newton")
    rows = np.argsort(-np.abs(predicted).max(axis=0))[:4]
    exact = explainer.leave_one_out(X_te, y_te, method="exact")[:, rows]
    np.testing.assert_allclose(display.actual_loo, exact.ravel(), atol=1e-7)
    np.testing.assert_allclose(display.predicted_loo, predicted[:, rows].ravel())


def test_loo_with_given_actual(fitted):
    explainer, X, y, X_te, y_te = fitted
    rows = [3, 7, 11]
    actual = refit_loo(explainer, X_te, y_te, rows, X_train=X, y_train=y)
    display = InfluenceDisplay.from_explainer(explainer, X_te, y_te, kind="loo",
                                              actual=actual, rows=rows)
    np.testing.assert_allclose(display.actual_loo, actual.ravel())
    predicted = explainer.leave_one_out(X_te, y_te)[:, rows]
    np.testing.assert_allclose(display.predicted_loo, predicted.ravel())
    # a full (n_test, n_train) matrix needs no rows
    full = explainer.leave_one_out(X_te, y_te, method="exact")
    display = InfluenceDisplay.from_explainer(explainer, X_te, y_te, kind="loo",
                                              actual=full)
    assert display.actual_loo.shape == (full.size,)
    with pytest.raises(ValueError, match="pass rows="):
        InfluenceDisplay.from_explainer(explainer, X_te, y_te, kind="loo",
                                        actual=actual)
    with pytest.raises(ValueError, match="shape"):
        InfluenceDisplay.from_explainer(explainer, X_te, y_te, kind="loo",
                                        actual=actual, rows=[1, 2])


def test_loo_refit_errors(fitted):
    explainer, X, y, X_te, y_te = fitted
    with pytest.raises(ValueError, match="pass X_train and y_train"):
        InfluenceDisplay.from_explainer(explainer, X_te, y_te, kind="loo")
    frozen = InfluenceExplainer(FrozenEstimator(_model().fit(X, y))).fit(X, y)
    with pytest.raises(ValueError, match="FrozenEstimator"):
        InfluenceDisplay.from_explainer(frozen, X_te, y_te, kind="loo", X_train=X,
                                        y_train=y)
    with pytest.raises(ValueError, match="needs the test points"):
        InfluenceDisplay.from_explainer(explainer, kind="loo")


def test_loo_regressor_and_sample_weight(binary_data):
    X, y, X_te, y_te = binary_data
    target, target_te = X[:, 0] + 0.1 * y, X_te[:5, 0]
    sw = np.linspace(0.5, 2.0, len(target))
    explainer = InfluenceExplainer(Ridge(alpha=3.0)).fit(X[:, 1:], target, sw)
    display = InfluenceDisplay.from_explainer(
        explainer, X_te[:5, 1:], target_te, kind="loo", k=3, X_train=X[:, 1:],
        y_train=target, method="newton",
    )
    # Newton is exact for least squares: predicted == refits (with sample weights)
    np.testing.assert_allclose(display.predicted_loo, display.actual_loo, atol=1e-10)


@pytest.mark.parametrize("given_ax", [False, True])
def test_self_influence(fitted, given_ax):
    explainer = fitted[0]
    ax = plt.subplots()[1] if given_ax else None
    marked = [0, 5, 9]
    display = InfluenceDisplay.from_explainer(explainer, kind="self_influence",
                                              marked=marked, ax=ax)
    _check_axes(display, ax)
    values = explainer.self_influence()
    np.testing.assert_allclose(display.line_.get_ydata(), np.sort(values))
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    np.testing.assert_array_equal(display.scatter_.get_offsets()[:, 0], ranks[marked])
    assert "of 3 in the top 10%" in display.scatter_.get_label()
    # without marked rows: no scatter
    display = InfluenceDisplay.from_explainer(explainer, kind="self_influence")
    assert display.scatter_ is None


def test_plot_from_stored_data_and_replot(fitted):
    explainer = fitted[0]
    display = InfluenceDisplay(self_influence=explainer.self_influence(),
                               influence=explainer.self_influence())
    display.plot(kind="self_influence", color="k")
    assert display.line_.get_color() == "k"
    first_ax = display.ax_
    display.plot(kind="top", k=2)  # a new figure; attributes of the old kind reset
    assert display.ax_ is not first_ax and display.line_ is None
    assert len(display.bars_) == 4
    with pytest.raises(ValueError, match="needs predicted_loo, actual_loo"):
        display.plot(kind="loo")


def test_bad_kind(fitted):
    explainer, X, y, X_te, y_te = fitted
    with pytest.raises(ValueError, match="kind must be one of 'loo', 'top'"):
        InfluenceDisplay.from_explainer(explainer, X_te, y_te, kind="bars")
    with pytest.raises(ValueError, match="kind must be one of"):
        InfluenceDisplay(influence=np.ones(3)).plot(kind="histogram")


def test_matplotlib_missing(fitted, monkeypatch):
    explainer, X, y, X_te, y_te = fitted
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    with pytest.raises(ImportError, match="from_explainer requires matplotlib"):
        InfluenceDisplay.from_explainer(explainer, X_te, y_te)
    with pytest.raises(ImportError, match="from_estimator requires matplotlib"):
        InfluenceDisplay.from_estimator(_model(), X, y, X_te, y_te)
    with pytest.raises(ImportError, match="plot requires matplotlib"):
        InfluenceDisplay(influence=np.ones(3)).plot()


def test_top_bars_on_a_column_transformer_dataframe():
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"age": rng.normal(40, 10, n), "income": rng.normal(50, 20, n),
                       "country": rng.choice(["fr", "de", "us"], n)},
                      index=[f"customer{i}" for i in range(n)])
    y = (df["age"] + rng.normal(0, 10, n) > 40).astype(int)
    prep = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                              ("cat", OneHotEncoder(), ["country"])])
    model = make_pipeline(prep, LogisticRegression(solver="newton-cholesky",
                                                   tol=1e-10))
    explainer = InfluenceExplainer(model).fit(df[:100], y[:100])
    fig, ax = plt.subplots()
    display = InfluenceDisplay.from_explainer(explainer, df[100:], y[100:],
                                              test_index=3, k=2, y_train=y[:100],
                                              ax=ax)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert all(label.startswith("#customer") for label in labels)
    j = int(np.argmax(display.influence))
    assert labels[0].startswith(f"#{df.index[j]} ")
    predicted = explainer.predict(df[103:104])[0]
    assert f"predicted {predicted}" in ax.get_title()
    with pytest.raises(ValueError, match="numeric"):
        InfluenceDisplay.from_explainer(explainer, df[100:], y[100:],
                                        X_train=df[:100], image_shape="auto")
    plt.close(fig)


def test_self_influence_symlog(fitted):
    explainer = fitted[0]
    fig, ax = plt.subplots()
    InfluenceDisplay.from_explainer(explainer, kind="self_influence", ax=ax,
                                    symlog=True)
    assert ax.get_yscale() == "symlog"
    plt.close(fig)
