"""Benchmark: scoring 1,000 test digits against 1,000 training rows of a 64-32-10 MLP.

``MLPClassifier(hidden_layer_sizes=(32,), activation="tanh", solver="lbfgs")`` on the
first 1,000 rows of ``load_digits`` (scaled to [0, 1]), p = 64·32 + 32 + 32·10 + 10 =
2,410 parameters, fitted once and wrapped in FrozenEstimator. The explainer's "auto"
solver factorises the exact Hessian (p ≤ 4,096). Reported, one run each:

- the smallest eigenvalue of H at the fitted weights (networks: may be negative; the
  damping used is then 2·|λ_min|, else none);
- ``InfluenceExplainer.fit`` (forming H by p R-operator products and factorising it);
- ``loss_influence`` of the last 1,000 rows (797 unseen, 203 also in training) against
  the 1,000 training rows: a (1000, 1000) result;
- one forward–backward pass of the network over the 1,000 training rows
  (scikit-learn's own ``_backprop``, the unit of a training iteration), and the ratio.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_mlp.py
"""

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.neural_network import MLPClassifier

from skinfluence import InfluenceExplainer
from skinfluence.models.mlp import mlp_objective


def forward_backward(model, X, y):
    """Seconds for one scikit-learn forward–backward pass over (X, y) (best of 5)."""
    Y = model._label_binarizer.transform(y).astype(np.float64)
    units = [X.shape[1]] + [c.shape[1] for c in model.coefs_]
    acts = [X] + [None] * (len(units) - 1)
    deltas = [None] * (len(units) - 1)
    cg = [np.empty((a, b)) for a, b in zip(units[:-1], units[1:], strict=True)]
    ig = [np.empty(b) for b in units[1:]]
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        model._backprop(X, Y, None, acts, deltas, cg, ig)
        best = min(best, time.perf_counter() - t)
    return best


def main():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xt, yt, Xs, ys = X[:1000], y[:1000], X[-1000:], y[-1000:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(hidden_layer_sizes=(32,), activation="tanh", alpha=1e-2,
                              solver="lbfgs", max_iter=2000, tol=1e-10,
                              random_state=0).fit(Xt, yt)
    risk = mlp_objective(model, Xt, yt, np.ones(len(yt)))
    t = time.perf_counter()
    H = risk.hessian()
    t_hessian = time.perf_counter() - t
    lam = float(np.linalg.eigvalsh(H)[0])
    damping = 2 * -lam if lam < 0 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = time.perf_counter()
        ex = InfluenceExplainer(FrozenEstimator(model), damping=damping).fit(Xt, yt)
        t_fit = time.perf_counter() - t
    ex.loss_influence(Xs[:10], ys[:10])  # warm-up
    t = time.perf_counter()
    scores = ex.loss_influence(Xs, ys)
    t_score = time.perf_counter() - t
    t_pass = forward_backward(model, Xt, yt)
    print(f"parameters p = {risk.n_params}, solver {ex.hessian_solver_.reason}")
    print(f"smallest Hessian eigenvalue {lam:.3e}; damping used {damping:.3e}; "
          f"optimality_ {ex.optimality_:.2e}")
    print(f"exact Hessian (p R-operator products): {t_hessian:.2f} s; "
          f"explainer fit: {t_fit:.2f} s")
    print(f"loss_influence {scores.shape}: {t_score * 1e3:.1f} ms")
    print(f"one forward-backward pass over 1000 rows: {t_pass * 1e3:.2f} ms")
    print(f"ratio scoring / forward-backward: {t_score / t_pass:.1f}x")


if __name__ == "__main__":
    main()
