"""Benchmark: loss_influence of an RBF SVC versus computing its test kernel rows.

Prints, in one run (timed round-robin, best of ``--repeats``):

1. ``InfluenceExplainer.loss_influence(X_test, test_loss="decision")`` for
   ``--n-test`` test points on ``--n-train`` training rows of a synthetic binary
   problem, and ``sklearn.metrics.pairwise.rbf_kernel(X_test, X_train)`` (the kernel
   rows any kernel method needs for those test points), and their ratio.
2. The fit-time costs: the SVC's own fit, and ``InfluenceExplainer.fit`` on the
   fitted SVC (``FrozenEstimator``): the whitened kernel map on the support vectors
   (n × n_support, timed alone) beside the one on every training row (n × n, what
   fit built before and exact removals build for their call), the pinned solver
   and the kernel-space scorer (``hessian_solver_.name``, the scorer's class).
3. Memory: fit's peak traced allocation (``tracemalloc``, which sees numpy's
   buffers) and the largest array the fitted explainer holds, beside n × n float64.

Usage::

    PYTHONPATH=. python benchmarks/bench_kernels.py [--n-train 5000] [--n-test 1000]
"""

import argparse
import functools
import json
import time
import tracemalloc
import types
import warnings

import numpy as np
from sklearn.datasets import make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from skinfluence import InfluenceExplainer
from skinfluence.models._kernel_map import training_kernel_map
from skinfluence.models.kernel_svm import kernel_function


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def held_arrays(root):
    """Every ndarray reachable from ``root`` (attributes, containers, partials)."""
    seen, stack, out = set(), [root], []
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType,
                                                types.FunctionType, str, bytes)):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            out.append(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif isinstance(obj, functools.partial):
            stack.extend(obj.args)
        elif isinstance(obj, types.MethodType):
            stack.append(obj.__self__)
        elif hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--n-features", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default=None, help="write the results as JSON")
    args = parser.parse_args()

    X, y = make_classification(args.n_train + args.n_test, args.n_features,
                               n_informative=10, class_sep=2.0, flip_y=0.01,
                               random_state=0)
    X = StandardScaler().fit_transform(X)
    X_train, y_train = X[: args.n_train], y[: args.n_train]
    X_test = X[args.n_train:]

    t_svc, svc = timed(lambda: SVC(C=1.0).fit(X_train, y_train))
    gamma = 1.0 / (X_train.shape[1] * X_train.var())
    kernel = kernel_function(svc, X_train)
    t_map_all, _ = timed(lambda: training_kernel_map(kernel, X_train))
    t_map, _ = timed(lambda: training_kernel_map(kernel, X_train, svc.support_))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. the loose default tol's optimality
        tracemalloc.start()
        t_fit, explainer = timed(
            lambda: InfluenceExplainer(FrozenEstimator(svc)).fit(X_train, y_train))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    largest = max(held_arrays(explainer), key=lambda a: a.nbytes)

    kernel_times, influence_times = [], []
    for _ in range(args.repeats):  # round-robin: both see the same machine load
        kernel_times.append(timed(lambda: rbf_kernel(X_test, X_train, gamma=gamma))[0])
        influence_times.append(timed(lambda: explainer.loss_influence(
            X_test, test_loss="decision"))[0])
    result = {
        "n_train": args.n_train, "n_test": args.n_test,
        "n_features": args.n_features, "n_support": int(len(svc.support_)),
        "rank": int(explainer.risk_.input_map.rank),
        "pinned": int(explainer.risk_.pinned.sum()),
        "solver": explainer.hessian_solver_.name,
        "scorer": type(explainer._scorer).__name__,
        "svc_fit_s": t_svc, "kernel_map_support_s": t_map,
        "kernel_map_every_row_s": t_map_all, "explainer_fit_s": t_fit,
        "fit_peak_MB": peak / 2**20, "largest_held_shape": list(largest.shape),
        "largest_held_MB": largest.nbytes / 2**20,
        "n_by_n_MB": 8 * args.n_train**2 / 2**20,
        "rbf_kernel_s": min(kernel_times), "loss_influence_s": min(influence_times),
    }
    result["ratio"] = result["loss_influence_s"] / result["rbf_kernel_s"]
    for key, value in result.items():
        print(f"{key:>18}: {value:.3g}" if isinstance(value, float) else
              f"{key:>18}: {value}")
    if args.output:
        with open(args.output, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
