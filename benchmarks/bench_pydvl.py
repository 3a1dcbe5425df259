"""Peer comparison: skinfluence versus pyDVL's influence functions (torch).

The question a user asks: "should I use pyDVL on a torch copy of my logistic
regression instead?" This script builds the same binary ``LogisticRegression`` both
ways and checks, in one run on one machine, that the two give the same influence
matrix and how long each takes to produce it.

Problem. ``make_classification`` data, standardised on the training rows, fitted tightly
with ``LogisticRegression(C=1, solver="newton-cholesky", tol=1e-10)``. Sizes
(n_train x n_features, n_test): 2,000 x 50, 200; 20,000 x 200, 1,000 and 100;
10,000 x 1,000, 200.

skinfluence. ``InfluenceExplainer(FrozenEstimator(model)).fit(X, y)`` then
``loss_influence(X_test, y_test)`` (FrozenEstimator: the estimator is not refitted, so
neither side pays for training).

pyDVL. The same model in torch (float64): ``nn.Linear(d, 1)`` holding ``coef_`` and
``intercept_``; the loss is the mean log-loss (``binary_cross_entropy_with_logits``).
The L2 penalty of scikit-learn's objective, divided by ``C n`` as in skinfluence's
R(theta), must reach pyDVL's Hessian but not its per-sample gradients (Koh & Liang's
I_up,loss uses the plain loss gradients). pyDVL's ``loss(outputs, targets)`` never
sees the parameters, so the model returns a second output column holding
``0.5 ||w - w_hat||^2 / (C n)`` (``w_hat``: the fitted coefficients, a buffer; the
intercept is not penalised) and the loss adds its mean. At theta = theta_hat this term
has zero gradient and Hessian ``diag(1, ..., 1, 0) / (C n)``, so pyDVL's Hessian
(``use_hessian_avg``: the mean of the batch losses' Hessians) is exactly
skinfluence's ``hessian_`` (checked: ``hessian_rel_diff``) and its gradients are the
plain log-loss gradients, for the Hessian-vector products of CG as well as for the
direct solve. (``regularization=lambda`` in pyDVL adds ``lambda I`` to the whole
Hessian, intercept included, so it cannot express an unpenalised intercept.)

Conversion. pyDVL's ``influences(x_test, y_test, x, y, mode=InfluenceMode.Up)``
returns ``<H^-1 grad L(z_test), grad L(z_j)>`` with no minus sign, with the same H
(mean-loss Hessian, no factor n), so
``skinfluence.loss_influence(X_test, y_test) == -pydvl.influences(...)``.

Compared: ``DirectInfluence`` (explicit Hessian, direct solve), ``CgInfluence``
(block conjugate gradients over Hessian-vector products, ``rtol=1e-12``,
``solve_simultaneously=True``) and ``DirectInfluence`` with a float32 model (torch's
default dtype; accuracy shown for information). The torch model and tensors are built
outside the timed region, as the fitted estimator is for skinfluence; a pyDVL call is
``fit(DataLoader(batch_size=n_train))`` followed by ``influences`` on the whole
training set. Times are best-of-``--repeats``, round-robin (see
``bench_loss_influence.time_round_robin``). Difference: ``max |ours - theirs| /
max |ours|`` over the whole (n_test, n_train) matrix.

Usage (pyDVL and torch are not dependencies of skinfluence: use a separate venv)::

    python3 -m venv /tmp/vpydvl && . /tmp/vpydvl/bin/activate
    pip install torch==2.13.0                 # the CPU wheel; before pyDVL
    pip install pydvl==0.10.0 dask distributed "zarr>=3,<3.1"   # pydvl[influence]
    pip install -e .                          # this checkout
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/bench_pydvl.py [--quick] [--output]

(``pydvl.influence`` imports ``distributed`` at import time; zarr >= 3.1 needs
numpy >= 2 while pyDVL 0.10 pins numpy < 2, hence the zarr pin.)
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling benchmark's timing and machine helpers
import bench_loss_influence  # noqa: E402
from bench_loss_influence import (  # noqa: E402
    InfluenceExplainer,
    fmt_s,
    machine_facts,
    time_round_robin,
)

try:
    import torch
    import torch.nn.functional as F
    from pydvl.influence import InfluenceMode
    from pydvl.influence.torch import CgInfluence, DirectInfluence
    from pydvl.influence.torch.functional import hessian as pydvl_hessian
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
except ImportError as exc:  # pragma: no cover - depends on the venv
    sys.exit(f"bench_pydvl needs torch and pyDVL ({exc}); see the docstring.")

DEFAULT_OUTPUT = HERE / "results" / "bench_pydvl.json"
SIZES = [(2_000, 50, 200), (20_000, 200, 1_000), (20_000, 200, 100), (10_000, 1_000, 200)]
QUICK_SIZES = [(2_000, 50, 200)]
C = 1.0


# -- problem ------------------------------------------------------------------------
def make_problem(n_train, n_features, n_test, seed):
    X, y = make_classification(n_samples=n_train + n_test, n_features=n_features,
                               n_informative=n_features // 2, random_state=seed)
    X = StandardScaler().fit(X[:n_train]).transform(X)
    model = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10, max_iter=1000)
    model.fit(X[:n_train], y[:n_train])
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:], model


class PenalisedLinear(nn.Module):
    """``nn.Linear(d, 1)``; output column 1 carries 0.5 ||w - w_hat||^2 / (C n)."""

    def __init__(self, coef, intercept, penalty_scale, dtype):
        super().__init__()
        self.linear = nn.Linear(coef.shape[1], 1, dtype=dtype)
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(coef, dtype=dtype))
            self.linear.bias.copy_(torch.as_tensor(intercept, dtype=dtype))
        self.register_buffer("w_hat", self.linear.weight.detach().clone())
        # a tensor, not a Python float: under torch.func's transforms (torch 2.13) a
        # Python scalar here makes a float32 model's backward mix float64 in
        self.register_buffer("penalty_scale", torch.tensor(penalty_scale, dtype=dtype))

    def forward(self, x):
        z = self.linear(x)
        pen = 0.5 * self.penalty_scale * ((self.linear.weight - self.w_hat) ** 2).sum()
        return torch.cat([z, pen.expand(z.shape)], dim=1)


def penalised_log_loss(outputs, targets):
    """Mean log-loss of column 0 plus the penalty column (same value in every row)."""
    return (F.binary_cross_entropy_with_logits(outputs[:, 0], targets)
            + outputs[:, 1].mean())


def torch_setup(model, X, y, X_test, y_test, dtype):
    n = X.shape[0]
    tm = PenalisedLinear(model.coef_, model.intercept_, 1.0 / (C * n), dtype).eval()
    t = [torch.as_tensor(a, dtype=dtype) for a in (X, y, X_test, y_test)]
    loader = DataLoader(TensorDataset(t[0], t[1]), batch_size=n)
    return tm, loader, t


def pydvl_runner(make_influence, tm, loader, tensors):
    x, y, x_test, y_test = tensors
    out = {}

    def run():
        t0 = time.perf_counter()
        infl = make_influence(tm).fit(loader)
        t1 = time.perf_counter()
        out["matrix"] = infl.influences(x_test, y_test, x, y,
                                        mode=InfluenceMode.Up).numpy()
        t2 = time.perf_counter()
        return {"fit": t1 - t0, "influences": t2 - t1}

    return run, out


def skinfluence_runner(model, X, y, X_test, y_test):
    out = {}

    def run():
        t0 = time.perf_counter()
        expl = InfluenceExplainer(FrozenEstimator(model)).fit(X, y)
        t1 = time.perf_counter()
        out["matrix"] = expl.loss_influence(X_test, y_test)
        t2 = time.perf_counter()
        out["hessian"] = expl.hessian_
        return {"fit": t1 - t0, "loss_influence": t2 - t1}

    return run, out


PEERS = {
    "pydvl_direct": (torch.float64, lambda tm: DirectInfluence(tm, penalised_log_loss)),
    "pydvl_cg": (torch.float64, lambda tm: CgInfluence(
        tm, penalised_log_loss, rtol=1e-12, atol=1e-14, maxiter=1000,
        solve_simultaneously=True)),
    "pydvl_direct_float32": (torch.float32,
                             lambda tm: DirectInfluence(tm, penalised_log_loss)),
}


def rel_diff(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(ours)))


def bench_size(n_train, n_features, n_test, repeats, seed, peers):
    X, y, X_test, y_test, model = make_problem(n_train, n_features, n_test, seed)
    fns, outs = {}, {}
    fns["skinfluence"], outs["skinfluence"] = skinfluence_runner(
        model, X, y, X_test, y_test)
    hess = {}
    for name in peers:
        dtype, make = PEERS[name]
        tm, loader, tensors = torch_setup(model, X, y, X_test, y_test, dtype)
        fns[name], outs[name] = pydvl_runner(make, tm, loader, tensors)
        if dtype == torch.float64:
            hess[name] = pydvl_hessian(tm, penalised_log_loss, loader).numpy()
    timings = time_round_robin(fns, repeats)
    ours = outs["skinfluence"]["matrix"]
    ref_h = outs["skinfluence"]["hessian"]
    row = {"n_train": n_train, "n_features": n_features, "n_test": n_test,
           "n_params": n_features + 1, "max_abs_influence": float(np.abs(ours).max()),
           "skinfluence": timings["skinfluence"], "peers": {}}
    best_ours = timings["skinfluence"]["best_s"]
    for name in peers:
        theirs = -outs[name]["matrix"].astype(np.float64)  # pyDVL has no minus sign
        peer = dict(timings[name])
        peer["max_rel_diff"] = rel_diff(ours, theirs)
        peer["max_rel_diff_unnegated"] = rel_diff(ours, -theirs)
        if name in hess:
            peer["hessian_rel_diff"] = rel_diff(ref_h, hess[name])
        peer["speedup"] = peer["best_s"] / best_ours
        row["peers"][name] = peer
    return row


def print_table(rows):
    print(f"{'size (n x d, n_test)':>24} {'peer':>21} {'max rel diff':>12} "
          f"{'H rel diff':>10} {'skinfluence':>12} {'pyDVL':>12} {'ratio':>7}")
    for r in rows:
        size = f"{r['n_train']:,} x {r['n_features']}, {r['n_test']:,}"
        for name, p in r["peers"].items():
            h = p.get("hessian_rel_diff")
            h = f"{h:10.1e}" if h is not None else f"{'-':>10}"
            print(f"{size:>24} {name:>21} {p['max_rel_diff']:12.1e} {h} "
                  f"{fmt_s(r['skinfluence']['best_s']):>12} {fmt_s(p['best_s']):>12} "
                  f"{p['speedup']:6.1f}x")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small size only")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settle", type=float, default=1.0,
                    help="idle seconds before each timed turn (torch's OpenMP and "
                         "OpenBLAS worker threads go to sleep)")
    ap.add_argument("--sizes", default=None,
                    help="semicolon-separated n_train,n_features,n_test triples "
                         "(default: the sizes above)")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help=f"comma-separated subset of {', '.join(PEERS)}")
    ap.add_argument("--output", nargs="?", const=str(DEFAULT_OUTPUT), default=None,
                    help=f"write JSON results (default path: {DEFAULT_OUTPUT})")
    args = ap.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    unknown = set(peers) - set(PEERS)
    if unknown:
        ap.error(f"unknown peers {sorted(unknown)}")
    warnings.filterwarnings("ignore", category=FutureWarning)  # pyDVL's deprecations
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    bench_loss_influence.SETTLE_S = args.settle
    sizes = QUICK_SIZES if args.quick else SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes.split(";")]
    rows = []
    for n_train, n_features, n_test in sizes:
        print(f"n_train={n_train:,} n_features={n_features} n_test={n_test:,} ...",
              flush=True)
        rows.append(bench_size(n_train, n_features, n_test, args.repeats, args.seed,
                               peers))
    print()
    print_table(rows)
    import pydvl

    result = {
        "config": {**vars(args), "C": C, "solver": "newton-cholesky", "tol": 1e-10,
                   "sizes": sizes},
        "conversion": "skinfluence.loss_influence == -pydvl.influences(mode=Up)",
        "max_rel_diff": "max|ours - theirs| / max|ours| over the influence matrix",
        "speedup": "pyDVL best time / skinfluence best time (fit + influences)",
        "results": rows,
        "machine": {**machine_facts(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(),
                    "pydvl": pydvl.__version__},
    }
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
