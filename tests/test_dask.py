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
