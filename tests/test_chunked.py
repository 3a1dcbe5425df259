"""Training data in dask chunks: the same influences as in memory, never gathered.

The in-memory explainer is checked against refits elsewhere; here every chunked
result is compared with it (≤ 1e-10 relative) for two chunkings, and least-squares
leave-one-out on chunks with true refits without the row.
"""

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import (
    GammaRegressor,
    HuberRegressor,
    Lasso,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    MultiTaskElasticNet,
    PoissonRegressor,
    QuantileRegressor,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC, LinearSVC

from skinfluence import InfluenceExplainer
from skinfluence._removal import reweights_on_removal

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

N, D = 600, 5
CHUNKINGS = [97, 250]  # uneven last chunks


@pytest.fixture(autouse=True)
def _threads():
    with dask.config.set(scheduler="threads"):
        yield


def _data(kind, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(N + 40, D)
    z = X @ np.array([1.0, -0.5, 0.25, 0.0, 0.7]) + 0.3
    if kind == "binary":
        y = (z + rng.randn(N + 40) > 0).astype(int)
    elif kind == "count":
        y = rng.poisson(np.exp(0.3 * z))
    else:
        y = z + rng.randn(N + 40)
    sw = rng.uniform(0.5, 2.0, N + 40)
    return X[:N], y[:N], sw[:N], X[N:], y[N:]


FAMILIES = {
    "logistic": (LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-12,
                                    class_weight={0: 1.0, 1: 2.0}), "binary"),
    "ridge": (Ridge(alpha=3.0), "real"),
    "linear": (LinearRegression(), "real"),
    "poisson": (PoissonRegressor(alpha=0.1, solver="newton-cholesky", tol=1e-12),
                "count"),
}


def _pair(name, chunks, weighted=True):
    model, kind = FAMILIES[name]
    X, y, sw, Xt, yt = _data(kind)
    sw = sw if weighted else None
    fitted = model.fit(X, y, sample_weight=sw)
    ref = InfluenceExplainer(FrozenEstimator(fitted)).fit(X, y, sample_weight=sw)
    Xd = da.from_array(X, chunks=(chunks, 2))  # column chunks are merged
    yd = da.from_array(y, chunks=chunks + 13)  # not X's chunking
    swd = None if sw is None else da.from_array(sw, chunks=chunks)
    chunked = InfluenceExplainer(FrozenEstimator(fitted)).fit(Xd, yd,
                                                               sample_weight=swd)
    return ref, chunked, Xt, yt


def _close(lazy, reference, rtol=1e-10):
    assert isinstance(lazy, da.Array)
    got = lazy.compute()
    scale = np.nanmax(np.abs(reference))
    assert scale > 0
    np.testing.assert_allclose(got, reference, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_chunked_equals_in_memory(name, chunks):
    ref, chunked, Xt, yt = _pair(name, chunks)
    assert chunked.risk_.X.chunks[0][0] == chunks
    np.testing.assert_allclose(chunked.hessian_, ref.hessian_, rtol=1e-12)
    assert chunked.optimality_ < 1e-8
    _close(chunked.loss_influence(Xt, yt), ref.loss_influence(Xt, yt))
    _close(chunked.leave_one_out(Xt, yt), ref.leave_one_out(Xt, yt))
    _close(chunked.self_influence(), ref.self_influence())
    _close(chunked.leverages(), ref.leverages())
    _close(chunked.test_set_influence(Xt, yt), ref.test_set_influence(Xt, yt))
    _close(chunked.transform(Xt), ref.transform(Xt))
    rows = [5, 599, 0, 311]
    np.testing.assert_allclose(chunked.param_influence(rows),
                               ref.param_influence(rows), rtol=0,
                               atol=1e-10 * np.abs(ref.param_influence(rows)).max())
    for kind in ("harmful", "helpful", "abs"):
        idx, scores = chunked.most_influential(Xt, yt, k=7, kind=kind)
        ref_idx, ref_scores = ref.most_influential(Xt, yt, k=7, kind=kind)
        assert isinstance(idx, np.ndarray) and idx.shape == (len(yt), 7)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-10)
    if name != "poisson":  # normalised weights: refused below
        _close(chunked.leave_one_out(Xt, yt, method="newton"),
               ref.leave_one_out(Xt, yt, method="newton"))
        np.testing.assert_allclose(chunked.param_change(rows),
                                   ref.param_change(rows), rtol=1e-10, atol=1e-15)
        frame = chunked.most_influential(Xt, yt, k=2, as_frame=True, method="newton")
        expected = ref.most_influential(Xt, yt, k=2, as_frame=True, method="newton")
        np.testing.assert_allclose(frame["loo_change"], expected["loo_change"],
                                   rtol=1e-9)


def test_what_every_task_receives_holds_no_training_rows():
    """The family's objective and recipe sent with every task (one key per pass)
    carry no row, not even X's graph: a numpy X wrapped by da.from_array would
    otherwise travel with them in each pass."""
    import pickle

    _, chunked, _, _ = _pair("logistic", 97)
    rows = chunked.risk_.rows
    sent = len(pickle.dumps((rows.recipe, rows.shell)))
    assert sent < 8 * N, sent  # X alone is 8·N·D bytes, y and the weights 16·N
    assert rows.shell.X is None and rows.shell.y is None


def test_two_chunkings_agree_and_test_set_may_be_dask(monkeypatch):
    import skinfluence._chunked

    # each chunk's top-k is then found in blocks of 7 training rows
    monkeypatch.setattr(skinfluence._chunked, "TOP_BLOCK_BYTES", 8 * 40 * 7)
    _, a, Xt, yt = _pair("logistic", 97)
    _, b, _, _ = _pair("logistic", 250)
    Xtd = da.from_array(Xt, chunks=9)
    np.testing.assert_allclose(a.loss_influence(Xtd, da.from_array(yt)).compute(),
                               b.loss_influence(Xt, yt).compute(), rtol=1e-11)
    ia, sa = a.most_influential(Xtd, yt, k=3)
    ib, sb = b.most_influential(Xt, yt, k=3)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_allclose(sa, sb, rtol=1e-11)


def test_least_squares_newton_leave_one_out_on_chunks_is_the_refit():
    """Independent oracle: Ridge refitted without row j (closed form, exact)."""
    _, chunked, Xt, yt = _pair("ridge", 97)
    X, y, sw, _, _ = _data("real")
    delta = chunked.leave_one_out(Xt, yt, method="newton")[:, [3, 400]].compute()
    base = Ridge(alpha=3.0).fit(X, y, sample_weight=sw)
    for col, j in enumerate([3, 400]):
        keep = np.arange(N) != j
        refit = Ridge(alpha=3.0).fit(X[keep], y[keep], sample_weight=sw[keep])
        truth = (yt - refit.predict(Xt)) ** 2 - (yt - base.predict(Xt)) ** 2
        np.testing.assert_allclose(delta[:, col], truth, rtol=1e-8, atol=1e-12)


def test_unknown_chunk_sizes_name_the_remedy():
    X, y, _, _, _ = _data("binary")
    model = LogisticRegression().fit(X, y)
    Xd = da.from_array(X, chunks=100)
    Xd = Xd[Xd[:, 0] > -np.inf]  # boolean indexing: unknown chunk sizes
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        InfluenceExplainer(FrozenEstimator(model)).fit(Xd, y)


def test_nan_found_while_computing_is_a_clear_error():
    X, y, _, _, _ = _data("binary")
    model = LogisticRegression().fit(X, y)
    bad = da.from_array(X, chunks=100).map_blocks(
        lambda b, block_info=None: np.where(
            (block_info[0]["array-location"][0][0] == 300)
            & (np.arange(len(b)) == 7)[:, None], np.nan, b),
        dtype=float)
    with pytest.raises(ValueError, match=r"NaN or infinity \(training row 307"):
        InfluenceExplainer(FrozenEstimator(model)).fit(bad, y)


def test_mismatched_lengths_and_unfitted_estimator():
    X, y, _, _, _ = _data("binary")
    model = LogisticRegression().fit(X, y)
    Xd = da.from_array(X, chunks=100)
    with pytest.raises(ValueError, match="X has 600 rows but y has 599"):
        InfluenceExplainer(FrozenEstimator(model)).fit(Xd, y[:-1])
    with pytest.raises(TypeError, match="FrozenEstimator"):
        InfluenceExplainer(LogisticRegression()).fit(Xd, y)
    with pytest.raises(NotImplementedError, match="hessian_solver='cg'"):
        InfluenceExplainer(FrozenEstimator(model), hessian_solver="cg").fit(Xd, y)
    y_odd = np.where(y == 1, "b", "a").astype(object)
    y_odd[433] = "c"  # labels are checked chunk by chunk (one pass over y)
    string = LogisticRegression().fit(X, np.where(y == 1, "b", "a"))
    with pytest.raises(ValueError, match=r"not seen during fit: \['c'\]"):
        InfluenceExplainer(FrozenEstimator(string)).fit(Xd, da.from_array(y_odd, 50))
    y_nan = np.where(y == 1, 1.0, 0.0)
    y_nan[250] = np.nan
    ridge = Ridge().fit(X, y)
    with pytest.raises(ValueError, match="y contains NaN"):
        InfluenceExplainer(FrozenEstimator(ridge)).fit(Xd, da.from_array(y_nan, 50))
    yd = da.from_array(y, 50)
    with pytest.raises(ValueError, match="y is a dask array with unknown chunk"):
        InfluenceExplainer(FrozenEstimator(model)).fit(Xd, yd[yd >= 0])
    sw = np.ones(N)
    sw[7] = -1.0
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        InfluenceExplainer(FrozenEstimator(model)).fit(Xd, y, sample_weight=sw)


def test_methods_needing_rows_in_memory_refuse_clearly():
    ref, chunked, Xt, yt = _pair("poisson", 250)
    for call, what in [
        (lambda: chunked.leave_one_out(Xt, yt, method="exact"), "exact"),
        (lambda: chunked.leave_one_out(Xt, yt, method="newton"), "newton"),
        (lambda: chunked.group_influence([[0, 1]], Xt, yt), "group_influence"),
        (lambda: chunked.summary_frame(), "summary_frame"),
        (lambda: chunked.perturbation_influence(Xt, yt), "perturbation"),
        (lambda: chunked.param_change([0]), "param_change"),
        (lambda: chunked.most_influential(Xt, yt, as_frame=True, method="newton"),
         "param_change"),
    ]:
        with pytest.raises(NotImplementedError, match=f"{what}.*chunked"):
            call()
    # the first-order param_change only gathers the rows asked for
    np.testing.assert_allclose(chunked.param_change([0, 9], method="influence"),
                               ref.param_change([0, 9], method="influence"),
                               rtol=1e-10)


def test_unpenalised_logistic_newton_refused_cv_model_explained():
    X, y, _, Xt, yt = _data("binary")
    Xd = da.from_array(X, chunks=150)
    free = LogisticRegression(C=np.inf, solver="newton-cholesky").fit(X, y)
    chunked = InfluenceExplainer(FrozenEstimator(free)).fit(Xd, y)
    with pytest.raises(NotImplementedError, match="unpenalised"):
        chunked.leave_one_out(Xt, yt, method="newton")
    cv = LogisticRegressionCV(Cs=3, l1_ratios=(0.0,), scoring="neg_log_loss",
                              use_legacy_attributes=False, solver="newton-cholesky",
                              tol=1e-10).fit(X, y)
    ref = InfluenceExplainer(FrozenEstimator(cv)).fit(X, y)
    got = InfluenceExplainer(FrozenEstimator(cv)).fit(Xd, y).loss_influence(Xt, yt)
    _close(got, ref.loss_influence(Xt, yt))


@pytest.mark.parametrize("model, kind, options", [
    (RidgeClassifier(alpha=1.0), "binary", {}),
    (SGDClassifier(loss="log_loss", alpha=0.01, tol=1e-12, max_iter=5000,
                   random_state=0), "binary", {}),
    (Lasso(alpha=0.05, tol=1e-12, max_iter=100000), "real", {}),
    (GammaRegressor(alpha=0.1, solver="newton-cholesky", tol=1e-12), "count", {}),
    (LinearSVC(C=0.5, tol=1e-10, max_iter=100000), "binary", {"smoothing": 0.1}),
], ids=lambda v: type(v).__name__ if hasattr(v, "fit") else None)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::skinfluence.FlatTestLossWarning")
def test_other_families_through_the_generic_path(model, kind, options):
    X, y, _, Xt, yt = _data(kind)
    if kind == "count":  # Gamma: positive targets
        y, yt = y + 0.5, yt + 0.5
    fitted = model.fit(X, y)
    ref = InfluenceExplainer(FrozenEstimator(fitted), **options).fit(X, y)
    chunked = InfluenceExplainer(FrozenEstimator(fitted), **options).fit(
        da.from_array(X, chunks=77), y)
    _close(chunked.loss_influence(Xt, yt), ref.loss_influence(Xt, yt))
    idx, scores = chunked.most_influential(Xt, yt, k=4, kind="abs")
    ref_idx, ref_scores = ref.most_influential(Xt, yt, k=4, kind="abs")
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-10)


def test_flat_test_losses_warned_for_lazy_results_too():
    from skinfluence import FlatTestLossWarning

    X, y, _, Xt, yt = _data("binary")
    svm = LinearSVC(C=0.5, tol=1e-10, max_iter=100000).fit(X, y)
    ref = InfluenceExplainer(FrozenEstimator(svm), smoothing=0.1).fit(X, y)
    chunked = InfluenceExplainer(FrozenEstimator(svm), smoothing=0.1).fit(
        da.from_array(X, chunks=77), y)
    for method in ("loss_influence", "leave_one_out"):
        with pytest.warns(FlatTestLossWarning) as expected:
            getattr(ref, method)(Xt, yt)
        with pytest.warns(FlatTestLossWarning) as got:
            getattr(chunked, method)(Xt, yt)
        assert str(got[0].message) == str(expected[0].message)
        assert str(got[0].message).startswith("8 of 40")


@pytest.mark.parametrize("model, kind, options, match", [
    (SVC(kernel="linear", C=0.5), "binary", {"smoothing": 0}, "SVM's dual coefficients"),
    (SVC(kernel="rbf", C=0.5), "binary", {"smoothing": 0.1}, "SVM's dual coefficients"),
    (LinearSVC(loss="hinge", C=0.5, max_iter=100000), "binary", {"smoothing": 0.1},
     "reads the training rows' features"),
    (KernelRidge(alpha=1.0, kernel="rbf"), "real", {},
     "reads the training rows' features"),
    (MLPClassifier(hidden_layer_sizes=(2,), max_iter=30, random_state=0), "binary",
     {}, "reads the training rows' features"),
    (HuberRegressor(), "real", {}, "reads the training rows' features"),
    (QuantileRegressor(alpha=0.01), "real", {}, "reads the training rows' features"),
], ids=lambda v: type(v).__name__ if hasattr(v, "fit") else None)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_models_needing_every_row_refused_on_chunks(model, kind, options, match):
    """Their objective refers to every training row (dual coefficients, a kernel map,
    a dual recovery, Huber's scale at its bound, quantile kinks): refused before any
    pass over X, naming the reason."""
    X, y, _, _, _ = _data(kind)
    model.fit(X, y)
    with pytest.raises(NotImplementedError, match=f"{type(model).__name__} cannot be "
                       f"explained on chunked.*{match}"):
        InfluenceExplainer(FrozenEstimator(model), **options).fit(
            da.from_array(X, chunks=100), y)


def test_builder_needing_more_than_row_totals_is_refused(monkeypatch):
    """A family whose objective depends on the rows beyond per-row values and their
    totals (here: a penalty scaled by the mean label; a row weight relative to the
    others) is detected from the first rows and refused, not explained wrongly."""
    import skinfluence.explainer
    from skinfluence.models.ridge import ridge_objective

    def mean_scaled(est, X, y, sample_weight, **options):
        risk = ridge_objective(est, X, y, sample_weight)
        risk.quad_penalty = risk.quad_penalty * np.mean(y)
        return risk

    def relative_weight(est, X, y, sample_weight, **options):
        return ridge_objective(est, X, y, sample_weight / sample_weight.sum())

    X, y, sw, _, _ = _data("real")
    model = Ridge(alpha=3.0).fit(X, y + 5.0)
    Xd = da.from_array(X, chunks=100)
    for builder, match in [(mean_scaled, "'quad_penalty' depends on the training"),
                           (relative_weight, "row's 'sample_weight' depends on the "
                            "other rows")]:
        monkeypatch.setattr(skinfluence.explainer, "objective_builder",
                            lambda est, builder=builder: builder)
        with pytest.raises(NotImplementedError, match=match):
            InfluenceExplainer(FrozenEstimator(model)).fit(Xd, y + 5.0,
                                                           sample_weight=sw)


def test_newton_removal_without_refit_is_nan_with_a_warning_as_in_memory():
    """Row 0 is the only row of class 1: removing it leaves one class."""
    from skinfluence import NoOptimumWarning

    X, _, _, Xt, _ = _data("binary")
    y = np.zeros(N, dtype=int)
    y[0] = 1
    model = LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-12).fit(X, y)
    ref = InfluenceExplainer(FrozenEstimator(model)).fit(X, y)
    chunked = InfluenceExplainer(FrozenEstimator(model)).fit(
        da.from_array(X, chunks=97), y)
    yt = np.zeros(len(Xt), dtype=int)
    with pytest.warns(NoOptimumWarning, match="row 0: class 1"):
        expected = ref.leave_one_out(Xt, yt, method="newton")
    with pytest.warns(NoOptimumWarning, match="row 0: class 1"):
        got = chunked.leave_one_out(Xt, yt, method="newton")
    assert np.isnan(expected[:, 0]).all()
    _close(got, expected)
    with pytest.warns(NoOptimumWarning, match="row 0: class 1"):
        steps = chunked.param_change([3, 0])
    assert np.isnan(steps[1]).all() and np.isfinite(steps[0]).all()


def test_verbose_shows_dasks_progress_bar(capsys):
    X, y, _, Xt, yt = _data("binary")
    model = LogisticRegression().fit(X, y)
    explainer = InfluenceExplainer(FrozenEstimator(model), verbose=1).fit(
        da.from_array(X, chunks=100), y)
    explainer.most_influential(Xt, yt, k=2)
    assert "100% Completed" in capsys.readouterr().out


def test_results_do_not_depend_on_the_scheduler_or_its_workers():
    """The reduction tree is fixed by the chunking: bitwise the same results with
    one thread (synchronous) and a pool of 4 threads."""
    from concurrent.futures import ThreadPoolExecutor

    X, y, sw, Xt, yt = _data("binary")
    model = LogisticRegression(C=0.5, solver="newton-cholesky").fit(X, y, sw)
    Xd = da.from_array(X, chunks=41)
    out = []
    with ThreadPoolExecutor(4) as pool:
        for config in ({"scheduler": "synchronous"}, {"pool": pool}):
            with dask.config.set(**config):
                explainer = InfluenceExplainer(FrozenEstimator(model)).fit(
                    Xd, y, sample_weight=sw)
                out.append((explainer.hessian_, explainer.optimality_,
                            explainer.most_influential(Xt, yt, k=5)[1]))
    for a, b in zip(*out, strict=True):
        np.testing.assert_array_equal(a, b)


def _sorted_data(kind, seed=1):
    """Training rows sorted by label: most chunks hold one class only, so every
    total a recipe needs ("balanced" weights) must come from all the chunks."""
    rng = np.random.RandomState(seed)
    X = rng.randn(N + 40, D)
    Z = X @ rng.randn(D, 3)
    if kind == "three":
        y = np.argmax(Z + rng.randn(N + 40, 3), axis=1)
    elif kind == "binary":
        y = (Z[:, 0] + rng.randn(N + 40) > 0.5).astype(int)
    else:  # two real targets
        y = Z[:, :2] + rng.randn(N + 40, 2)
    sw = rng.uniform(0.5, 2.0, N + 40)
    order = np.argsort(y if y.ndim == 1 else y[:, 0], kind="stable")
    keep = order[order < N]
    return X[keep], y[keep], sw[keep], X[N:], y[N:]


MULTI = {
    "softmax balanced": (LogisticRegression(C=0.5, solver="newton-cholesky",
                                            tol=1e-12, class_weight="balanced"),
                         "three"),
    "one-vs-rest balanced": (LinearSVC(C=0.5, dual=False, tol=1e-12,
                                       class_weight="balanced"), "three"),
    "two targets": (Ridge(alpha=[1.0, 4.0]), "two"),
    "counts balanced": (RidgeClassifier(alpha=1.0, class_weight="balanced"), "binary"),
    "group penalty": (MultiTaskElasticNet(alpha=0.02, l1_ratio=0.5, tol=1e-14,
                                          max_iter=100000), "two"),
}


@pytest.mark.parametrize("name", list(MULTI))
@pytest.mark.filterwarnings("ignore::skinfluence.FlatTestLossWarning")
def test_multi_output_and_balanced_models_on_chunks_equal_in_memory(name):
    model, kind = MULTI[name]
    X, y, sw, Xt, yt = _sorted_data(kind)
    if name == "group penalty":  # MultiTask models take no sample weights
        sw = np.ones(len(y))
    fitted = model.fit(X, y, **({} if name == "group penalty" else
                                {"sample_weight": sw}))
    ref = InfluenceExplainer(FrozenEstimator(fitted)).fit(X, y, sample_weight=sw)
    chunked = InfluenceExplainer(FrozenEstimator(fitted)).fit(
        da.from_array(X, chunks=97), da.from_array(y, chunks=60),
        sample_weight=da.from_array(sw, chunks=130))
    np.testing.assert_allclose(chunked.hessian_, ref.hessian_, rtol=1e-12, atol=1e-15)
    assert chunked.optimality_ == pytest.approx(ref.optimality_, rel=1e-6, abs=1e-14)
    _close(chunked.loss_influence(Xt, yt), ref.loss_influence(Xt, yt))
    _close(chunked.leave_one_out(Xt, yt), ref.leave_one_out(Xt, yt))
    _close(chunked.self_influence(), ref.self_influence())
    _close(chunked.leverages(), ref.leverages())
    _close(chunked.transform(Xt), ref.transform(Xt))
    rows = [5, 599, 0, 311]
    np.testing.assert_allclose(chunked.param_influence(rows), ref.param_influence(rows),
                               rtol=0,
                               atol=1e-10 * np.abs(ref.param_influence(rows)).max())
    idx, scores = chunked.most_influential(Xt, yt, k=5, kind="abs")
    ref_idx, ref_scores = ref.most_influential(Xt, yt, k=5, kind="abs")
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-10)
    if reweights_on_removal(chunked.risk_):  # a removal reweighs every row
        with pytest.raises(NotImplementedError, match="reweighs"):
            chunked.leave_one_out(Xt, yt, method="newton")
    else:
        _close(chunked.leave_one_out(Xt, yt, method="newton"),
               ref.leave_one_out(Xt, yt, method="newton"))
        np.testing.assert_allclose(chunked.param_change(rows, method="newton"),
                                   ref.param_change(rows, method="newton"),
                                   rtol=1e-10, atol=1e-15)


def test_sparse_chunks_equal_in_memory_sparse_rows():
    """A dask array of scipy.sparse CSR blocks: the same results as the in-memory
    explainer on the CSR matrix (whose sparse arithmetic they share)."""
    import scipy.sparse as sp

    rng = np.random.RandomState(3)
    X = sp.random(N, 12, density=0.25, format="csr", random_state=rng) * 3
    y = (np.asarray(X[:, :4].sum(axis=1)).ravel() + 0.3 * rng.randn(N) > 0.6) \
        .astype(int)
    sw = rng.uniform(0.5, 2.0, N)
    Xt, yt = X[:30].toarray() + 0.1, y[:30]
    model = LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-12).fit(
        X, y, sample_weight=sw)
    ref = InfluenceExplainer(FrozenEstimator(model)).fit(X, y, sample_weight=sw)
    bounds = np.r_[0:N:97, N]
    blocks = [da.from_delayed(dask.delayed(X[a:b].tocoo)(), shape=(b - a, 12),
                              dtype=float, meta=sp.coo_matrix((0, 0)))
              for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    chunked = InfluenceExplainer(FrozenEstimator(model)).fit(
        da.concatenate(blocks), y, sample_weight=sw)
    np.testing.assert_allclose(chunked.hessian_, ref.hessian_, rtol=1e-12)
    _close(chunked.loss_influence(Xt, yt), ref.loss_influence(Xt, yt))
    _close(chunked.self_influence(), ref.self_influence())
    _close(chunked.leave_one_out(Xt, yt, method="newton"),
           ref.leave_one_out(Xt, yt, method="newton"))
    rows = [5, 599, 0, 311]
    np.testing.assert_allclose(chunked.param_influence(rows), ref.param_influence(rows),
                               rtol=1e-10)
    idx, scores = chunked.most_influential(Xt, yt, k=4)
    ref_idx, ref_scores = ref.most_influential(Xt, yt, k=4)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-10)
    Xbad = X.copy()
    Xbad.data[Xbad.indptr[400]] = np.nan  # the first stored value of row 400
    with pytest.raises(ValueError, match="training row 400"):
        InfluenceExplainer(FrozenEstimator(model)).fit(
            da.from_array(Xbad, chunks=(97, 12), asarray=False), y)


def test_dask_dataframe_training_rows():
    """A dask DataFrame (and Series): its partitions' lengths, its columns as
    feature_names_in_ (test DataFrames are checked against them, as in
    scikit-learn), its index as training_index_ (labels in as_frame results)."""
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, y, sw, Xt, yt = _data("binary")
    columns = [f"f{i}" for i in range(D)]
    frame = pd.DataFrame(X, columns=columns, index=1000 + np.arange(N))
    model = LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-12).fit(
        frame, y, sample_weight=sw)
    ref = InfluenceExplainer(FrozenEstimator(model)).fit(frame, y, sample_weight=sw)
    ddf = dd.from_pandas(frame, npartitions=4)
    labels = dd.from_pandas(pd.Series(y, index=frame.index), npartitions=3)
    chunked = InfluenceExplainer(FrozenEstimator(model)).fit(ddf, labels,
                                                             sample_weight=sw)
    assert list(chunked.feature_names_in_) == columns
    test = pd.DataFrame(Xt, columns=columns)
    _close(chunked.loss_influence(test, yt), ref.loss_influence(test, yt))
    got = chunked.most_influential(test, yt, k=3, as_frame=True)
    expected = ref.most_influential(test, yt, k=3, as_frame=True)
    pd.testing.assert_frame_equal(got, expected, rtol=1e-10)
    assert got["training_row"].min() >= 1000  # the DataFrame's index labels
    with pytest.raises(ValueError, match="feature names"):
        chunked.loss_influence(test[columns[::-1]], yt)
