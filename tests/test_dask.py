"""Scoring under joblib's Dask backend gives the same results as in-process."""

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceExplainer

# dask is an optional extra of the package; the test extra installs it, so CI runs this
distributed = pytest.importorskip("distributed")


@pytest.mark.slow
def test_dask_local_cluster_matches_in_process(tmp_path):
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(solver="newton-cholesky", tol=1e-10)
    explainer = InfluenceExplainer(model, batch_size=7).fit(X, y)
    reference = explainer.loss_influence(X, y)
    newton = explainer.leave_one_out(X, y, method="newton")
    top = explainer.most_influential(X, y, k=3)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  local_directory=tmp_path,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_backend("dask"):
        np.testing.assert_allclose(explainer.loss_influence(X, y), reference,
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(explainer.leave_one_out(X, y, method="newton"),
                                   newton, rtol=0, atol=1e-12)
        idx, scores = explainer.most_influential(X, y, k=3)
    np.testing.assert_array_equal(idx, top[0])
    np.testing.assert_allclose(scores, top[1], rtol=0, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["cg", "woodbury"])
def test_dask_local_cluster_matches_in_process_sparse_solvers(solver, tmp_path):
    """The iterative solvers' batches solved on Dask workers: same answers."""
    rng = np.random.RandomState(0)
    X = sp.random(150, 500, density=0.03, random_state=rng, format="csr") * 3
    y = (np.asarray(X[:, :30].sum(axis=1)).ravel() > 0.1).astype(int)
    model = LogisticRegression(solver="newton-cholesky", tol=1e-10)
    explainer = InfluenceExplainer(model, hessian_solver=solver,
                                   batch_size=9).fit(X[:120], y[:120])
    reference = explainer.loss_influence(X[120:], y[120:])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  local_directory=tmp_path,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_backend("dask"):
        out = explainer.loss_influence(X[120:], y[120:])
    np.testing.assert_allclose(out, reference, rtol=0,
                               atol=1e-12 * np.abs(reference).max())


@pytest.mark.slow
def test_dask_ships_the_explainer_once_per_call_not_per_batch(tmp_path):
    """The batch function closes over the explainer (here ≈ 20 MB pickled): joblib's
    Dask backend must scatter it, not embed it in every task's graph (distributed
    warns "Sending large graph" above 10 MB per graph)."""
    import warnings

    from sklearn.datasets import make_classification

    X, y = make_classification(6100, 200, random_state=0)
    model = LogisticRegression(solver="newton-cholesky", tol=1e-10)
    explainer = InfluenceExplainer(model, batch_size=20).fit(X[:6000], y[:6000])
    reference = explainer.loss_influence(X[6000:], y[6000:])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  local_directory=tmp_path,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_backend("dask"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = explainer.loss_influence(X[6000:], y[6000:])
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-12)
    large = [w for w in caught if "Sending large graph" in str(w.message)]
    assert not large, f"{len(large)} task graphs carried the explainer"


# -- training rows in dask chunks on a cluster -----------------------------------------
ROWS, COLS, CHUNK = 4_000_000, 32, 25_000
ALPHA = 5.0


def _chunk_rows(i):
    """Training rows of chunk i (and their targets), generated from its index."""
    rng = np.random.default_rng(i)
    X = rng.random((CHUNK, COLS)) - 0.5
    y = X @ np.linspace(-1, 1, COLS) + 0.5 + rng.standard_normal(CHUNK)
    return X, y


def _rss_peak(fn):
    """fn() and the client's peak resident memory above its level before (bytes)."""
    import threading

    import psutil  # a dependency of distributed

    proc = psutil.Process()
    base = proc.memory_info().rss
    peak, done = [base], threading.Event()

    def sample():
        while not done.wait(0.01):
            peak[0] = max(peak[0], proc.memory_info().rss)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        out = fn()
    finally:
        done.set()
        thread.join()
    return out, max(peak[0], proc.memory_info().rss) - base


@pytest.mark.slow
def test_chunked_training_rows_on_a_local_cluster(tmp_path):
    """4M × 32 rows (1 GB, never in one process; workers limited to 700 MB each,
    about 250 MB of which scikit-learn's imports take; memory pausing off, so that a
    worker over its budget fails the test instead of hanging it):
    fit + top-10 for 100 test points, checked against numpy chunk by chunk; the
    client's peak memory stays below 8 bytes per training row."""
    import dask
    import dask.array as da
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import Ridge

    n_chunks = ROWS // CHUNK
    X = da.map_blocks(lambda block_id=None: _chunk_rows(block_id[0])[0],
                      dtype=float, chunks=((CHUNK,) * n_chunks, (COLS,)))
    y = da.map_blocks(lambda block_id=None: _chunk_rows(block_id[0])[1],
                      dtype=float, chunks=((CHUNK,) * n_chunks,))
    rng = np.random.default_rng(12345)
    Xt = rng.standard_normal((100, COLS))
    yt = Xt @ np.linspace(-1, 1, COLS) + 0.5 + rng.standard_normal(100)
    with dask.config.set({"distributed.worker.memory.pause": False}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                     processes=True, memory_limit="700MB",
                                     local_directory=tmp_path,
                                     dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        # the exact Ridge optimum from the normal equations (a reduction by dask)
        XtX, Xty, col_sums, y_sum = da.compute(X.T @ X, X.T @ y, X.sum(axis=0),
                                               y.sum())
        gram = np.block([[XtX, col_sums[:, None]], [col_sums[None, :], ROWS]])
        rhs = np.r_[Xty, y_sum]
        theta = np.linalg.solve(gram + np.diag(np.r_[np.full(COLS, ALPHA), 0.0]), rhs)
        model = Ridge(alpha=ALPHA).fit(Xt, yt)  # then set to the optimum on X
        model.coef_, model.intercept_ = theta[:-1], theta[-1]

        def explain():
            explainer = InfluenceExplainer(FrozenEstimator(model)).fit(X, y)
            return explainer.most_influential(Xt, yt, k=10)

        (idx, scores), client_peak = _rss_peak(explain)
    # nothing per training row reaches the client: less than y alone (8 bytes per
    # row); gathering y and the weights there took 155 MB (77 bytes per row)
    assert client_peak < 8 * ROWS, client_peak / 2**20
    # independent: R = (1/n) Σ (y − z)² + (α/n) ‖w‖², scores −g_tᵀ H⁻¹ g_j
    H = 2 * (gram + np.diag(np.r_[np.full(COLS, ALPHA), 0.0])) / ROWS
    Xta = np.c_[Xt, np.ones(100)]
    V = -(2 * (Xta @ theta - yt))[:, None] * Xta @ np.linalg.inv(H)
    best_idx = np.empty((100, 0), dtype=int)
    best = np.empty((100, 0))
    for i in range(n_chunks):
        Xc, yc = _chunk_rows(i)
        Xca = np.c_[Xc, np.ones(CHUNK)]
        S = V @ (2 * (Xca @ theta - yc)[:, None] * Xca).T
        top = np.argpartition(-S, 9, axis=1)[:, :10]
        best_idx = np.hstack([best_idx, top + i * CHUNK])
        best = np.hstack([best, np.take_along_axis(S, top, axis=1)])
        order = np.argsort(-best, axis=1)[:, :10]
        best_idx = np.take_along_axis(best_idx, order, axis=1)
        best = np.take_along_axis(best, order, axis=1)
    np.testing.assert_array_equal(idx, best_idx)
    np.testing.assert_allclose(scores, best, rtol=1e-9)


def _small_rows(i):
    rng = np.random.default_rng(i)
    X = rng.standard_normal((2000, 5))
    return X, (X[:, 0] + rng.standard_normal(2000) > 0).astype(int)


def _rows_killing_once(i, flag):
    """``_small_rows(i)``; the first time chunk 3 is built, its worker process dies
    (the file ``flag`` records that it happened)."""
    import os

    if i == 3 and os.path.exists(flag + ".armed") and not os.path.exists(flag):
        open(flag, "w").close()
        os._exit(1)
    return _small_rows(i)


@pytest.mark.slow
def test_chunked_results_exact_after_a_worker_dies(tmp_path):
    """A worker lost mid-computation: Dask reruns its tasks, the results are exact."""
    import os

    import dask.array as da
    from sklearn.frozen import FrozenEstimator

    flag = str(tmp_path / "killed")
    X_mem = np.vstack([_small_rows(i)[0] for i in range(8)])
    y_mem = np.concatenate([_small_rows(i)[1] for i in range(8)])
    sw = np.linspace(0.5, 2.0, len(y_mem))  # numpy: sent to the workers once
    model = LogisticRegression(solver="newton-cholesky", tol=1e-12).fit(
        X_mem, y_mem, sample_weight=sw)
    reference = InfluenceExplainer(model).fit(X_mem, y_mem, sample_weight=sw)
    X = da.map_blocks(lambda block_id=None: _rows_killing_once(block_id[0], flag)[0],
                      dtype=float, chunks=((2000,) * 8, (5,)))
    y = da.map_blocks(lambda block_id=None: _rows_killing_once(block_id[0], flag)[1],
                      dtype=int, chunks=((2000,) * 8,))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  local_directory=tmp_path,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        explainer = InfluenceExplainer(FrozenEstimator(model)).fit(X, y,
                                                                   sample_weight=sw)
        open(flag + ".armed", "w").close()  # the death comes while scoring
        idx, scores = explainer.most_influential(X_mem[:20], y_mem[:20], k=5)
        self_inf = explainer.self_influence().compute()
    assert os.path.exists(flag)  # a worker did die
    np.testing.assert_allclose(explainer.hessian_, reference.hessian_, rtol=1e-12)
    ref_idx, ref_scores = reference.most_influential(X_mem[:20], y_mem[:20], k=5)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-10)
    np.testing.assert_allclose(self_inf, reference.self_influence(), rtol=1e-10)
