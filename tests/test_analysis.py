"""skinfluence.analysis: mislabel search, validation by refits, approximate LOO CV.

Oracles are refits of the real scikit-learn estimator: true leave-one-out refits
(validate) and LeaveOneOut cross-validation (loo_score). The mislabel tests flip 10% of
the labels on purpose (fixed seed) and measure how fast each ranking finds them.
"""

import time

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, make_scorer
from sklearn.model_selection import LeaveOneOut, cross_val_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer
from skinfluence.analysis import (
    MISLABEL_STRATEGIES,
    accuracy_after_fixing,
    approximate_loo_cv,
    loo_score,
    mislabel_curve,
    mislabel_ranking,
    validate,
)


def _tight(C=1.0):
    return LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10)


def _breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def noisy():
    """Breast cancer, shuffled (seed 0); 70% train with 10% of its labels flipped."""
    X, y = _breast_cancer()
    rng = np.random.RandomState(0)
    perm = rng.permutation(len(y))
    X, y = X[perm], y[perm]
    n = int(0.7 * len(y))  # 398 training rows, 39 flipped
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, n // 10, replace=False)] = True
    y_noisy = np.where(flipped, 1 - y[:n], y[:n])
    explainer = InfluenceExplainer(_tight()).fit(X[:n], y_noisy)
    return explainer, flipped, y[:n], X[n:], y[n:]


def _found_at(ranking, flipped, fractions=(0.1, 0.2, 0.3)):
    checked, found = mislabel_curve(ranking, flipped)
    n = len(flipped)
    return [found[int(round(f * n))] for f in fractions]


# -- mislabel search ---------------------------------------------------------------------
def test_mislabel_rankings_find_flips_faster_than_random(noisy):
    explainer, flipped, *_ = noisy
    found = {s: _found_at(mislabel_ranking(explainer, s, random_state=0), flipped)
             for s in MISLABEL_STRATEGIES}
    print("\nfraction of 39 flipped labels found after checking 10/20/30% "
          "(breast cancer, 398 rows, LogisticRegression C=1):")
    for s, f in found.items():
        print(f"  {s:>20}: " + " / ".join(f"{v:.2f}" for v in f))
    # measured (seed 0): self_influence 0.82 / 0.97 / 1.00; leverage_corrected
    # 0.79 / 0.97 / 1.00; loss 0.87 / 0.97 / 1.00; random 0.15 / 0.28 / 0.33.
    # Over seeds 0-2 and C in {0.1, 1, 10} (and digits 1 vs 7) self-influence found
    # 0.92-1.00 at 20%; the training loss did as well or slightly better (0.95-1.00):
    # with randomly flipped labels on well-separated data, the paper's "influence
    # beats loss" did not reproduce here. Not asserted either way.
    for s in ("self_influence", "leverage_corrected", "loss"):
        assert found[s][1] >= 0.9
        assert found[s][1] >= found["random"][1] + 0.5
    assert found["random"][1] <= 0.4


def test_self_influence_ranking_is_by_magnitude(noisy):
    explainer = noisy[0]
    si = explainer.self_influence()
    assert np.all(si <= 1e-12)  # PSD Hessian: I_up,loss(z_j, z_j) ≤ 0
    ranking = mislabel_ranking(explainer, "self_influence")
    np.testing.assert_array_equal(ranking, np.argsort(-np.abs(si), kind="stable"))


def test_leverage_corrected_tracks_newton_loo_diagonal(noisy):
    from scipy.stats import spearmanr

    explainer = noisy[0]
    X, y = explainer.risk_.X, explainer.classes_[explainer.risk_.y]
    diag = np.diag(explainer.leave_one_out(X, y, method="newton"))
    key = explainer.self_influence() / (1 - explainer.leverages())
    # one output: the scalar correction ranks as the diagonal (measured 0.9999)
    assert spearmanr(-key, diag)[0] > 0.999
    ranking = mislabel_ranking(explainer, "leverage_corrected")
    np.testing.assert_array_equal(ranking, np.argsort(-diag, kind="stable"))


def test_loss_ranking_is_training_log_loss(noisy):
    explainer = noisy[0]
    X, y = explainer.risk_.X, explainer.classes_[explainer.risk_.y]
    P = explainer.predict_proba(X)
    per_row = -np.log(P[np.arange(len(y)), y])
    ranking = mislabel_ranking(explainer, "loss")
    np.testing.assert_allclose(per_row[ranking], np.sort(per_row)[::-1], rtol=1e-10)


def test_random_ranking_reproducible(noisy):
    explainer = noisy[0]
    a = mislabel_ranking(explainer, "random", random_state=3)
    b = mislabel_ranking(explainer, "random", random_state=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.sort(a), np.arange(len(a)))


def test_mislabel_curve_shape_and_errors():
    checked, found = mislabel_curve(np.array([1, 0, 2]), np.array([True, False, False]))
    np.testing.assert_allclose(checked, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(found, [0, 0, 1, 1])
    with pytest.raises(ValueError, match="permutation"):
        mislabel_curve([0, 0, 1], np.array([True, False, False]))
    with pytest.raises(TypeError, match="boolean"):
        mislabel_curve([0, 1, 2], [1, 0, 0])
    with pytest.raises(ValueError, match="no row"):
        mislabel_curve([0, 1, 2], np.zeros(3, dtype=bool))


def test_bad_strategy(noisy):
    with pytest.raises(ValueError, match="strategy must be one of"):
        mislabel_ranking(noisy[0], "influence")


@pytest.mark.slow
def test_accuracy_after_fixing(noisy):
    explainer, flipped, y_clean, X_test, y_test = noisy
    fractions = [0.0, 0.1, 0.2, 0.3]
    out = {}
    for s in ("self_influence", "loss", "random"):
        ranking = mislabel_ranking(explainer, s, random_state=0)
        out[s] = accuracy_after_fixing(explainer, ranking, y_clean, X_test, y_test,
                                       fractions=fractions)
        print(f"\n{s:>15}: fixed {out[s]['n_fixed'].tolist()} -> test accuracy "
              + " / ".join(f"{a:.3f}" for a in out[s]["accuracy"]))
    clean = clone(explainer.estimator).fit(explainer.risk_.X, y_clean)
    print(f"    clean labels: test accuracy {clean.score(X_test, y_test):.3f}")
    # the number of labels fixed is the number of flipped rows in the checked prefix
    for s, res in out.items():
        ranking = mislabel_ranking(explainer, s, random_state=0)
        n = len(flipped)
        expected = [int(flipped[ranking[: int(np.ceil(f * n - 1e-9))]].sum())
                    for f in fractions]
        assert res["n_fixed"].tolist() == expected
    # at 0% nothing changes: the refit is the noisy model
    assert out["self_influence"]["accuracy"][0] == pytest.approx(
        explainer.score(X_test, y_test))
    # fixing the influence-ranked 30% (all 39 flips) recovers the clean model
    assert out["self_influence"]["accuracy"][-1] == pytest.approx(
        clean.score(X_test, y_test))
    assert out["self_influence"]["n_fixed"][-1] > out["random"]["n_fixed"][-1]


# -- validate ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    X, y = _breast_cancer()
    return X[:150], y[:150], X[150:160], y[150:160]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["influence", "newton"])
def test_validate_matches_refit_oracle(small, method):
    X, y, Xt, yt = small
    explainer = InfluenceExplainer(_tight()).fit(X, y)
    res = validate(explainer, Xt, yt, k=15, method=method)
    # oracle, written independently: refit without each row, mean test log-loss
    def mean_loss(model):
        P = model.predict_proba(Xt)
        return -np.log(P[np.arange(len(yt)), yt]).mean()
    base = mean_loss(clone(_tight()).fit(X, y))
    actual = [mean_loss(clone(_tight()).fit(np.delete(X, j, 0), np.delete(y, j)))
              - base for j in res.indices]
    np.testing.assert_allclose(res.actual, actual, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(res.actual_per_point.mean(axis=0), res.actual,
                               rtol=1e-12)
    pred = explainer.leave_one_out(Xt, yt, method=method).mean(axis=0)
    assert np.all(np.abs(pred[res.indices][:-1]) >= np.abs(pred[res.indices][1:]))
    print(f"\nvalidate({method}): {res}")
    # measured: influence Pearson 0.9727 / Spearman 0.9929 (first order shrinks
    # high-leverage removals); newton Pearson 0.9995 / Spearman 0.9964
    assert res.pearson > (0.999 if method == "newton" else 0.95)
    assert res.spearman > (0.99 if method == "newton" else 0.98)


@pytest.mark.slow
def test_validate_drops_sample_weight_and_parallel_is_identical(small):
    X, y, Xt, yt = small
    sw = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    explainer = InfluenceExplainer(_tight()).fit(X, y, sample_weight=sw)
    res = validate(explainer, Xt, yt, k=6, method="newton", n_jobs=1)
    res2 = validate(explainer, Xt, yt, k=6, method="newton", n_jobs=2)
    np.testing.assert_allclose(res2.actual, res.actual, rtol=1e-12)
    j = res.indices[0]
    keep = np.arange(len(y)) != j
    full = clone(_tight()).fit(X, y, sample_weight=sw)
    drop = clone(_tight()).fit(X[keep], y[keep], sample_weight=sw[keep])

    def mean_loss(m):
        return -np.log(m.predict_proba(Xt)[np.arange(len(yt)), yt]).mean()
    assert res.actual[0] == pytest.approx(mean_loss(drop) - mean_loss(full), rel=1e-6)
    assert res.pearson > 0.999  # weighted Newton LOO tracks weighted refits


def test_validate_other_families(small):
    X, y, Xt, yt = small
    Xd, yd = load_diabetes(return_X_y=True)
    explainer = InfluenceExplainer(Ridge(alpha=1.0)).fit(Xd[:100], yd[:100])
    res = validate(explainer, Xd[100:110], yd[100:110], k=5, method="newton")
    np.testing.assert_allclose(res.predicted, res.actual, rtol=1e-7)  # exact for LS
    Xi, yi = load_iris(return_X_y=True)
    Xi = StandardScaler().fit_transform(Xi)
    explainer = InfluenceExplainer(_tight()).fit(Xi[::2], yi[::2])  # multinomial
    res = validate(explainer, Xi[1::2], yi[1::2], k=5, method="newton")
    assert res.pearson > 0.99


def test_validate_errors(small):
    X, y, Xt, yt = small
    frozen = FrozenEstimator(_tight().fit(X, y))
    explainer = InfluenceExplainer(frozen).fit(X, y)
    with pytest.raises(TypeError, match="FrozenEstimator.*cannot be refitted"):
        validate(explainer, Xt, yt, k=3)
    with pytest.raises(TypeError, match="FrozenEstimator"):
        accuracy_after_fixing(explainer, np.arange(len(y)), y, Xt, yt)
    explainer = InfluenceExplainer(_tight()).fit(X, y)
    with pytest.raises(ValueError, match="k must be"):
        validate(explainer, Xt, yt, k=1)
    with pytest.raises(TypeError, match="InfluenceExplainer"):
        validate(_tight().fit(X, y), Xt, yt)


# -- model selection ---------------------------------------------------------------------
GRID = [0.01, 0.1, 1.0, 3.0, 10.0]


def _true_loo_cv_log_loss(C, X, y):
    scorer = make_scorer(log_loss, response_method="predict_proba",
                         greater_is_better=False, labels=[0, 1])  # 1-row folds
    return -cross_val_score(_tight(C), X, y, cv=LeaveOneOut(), scoring=scorer).mean()


@pytest.mark.slow
def test_approximate_loo_cv_matches_true_loo_cv():
    X, y = _breast_cancer()
    X, y = X[:200], y[:200]
    approximate_loo_cv(_tight(), X, y, {"C": [1.0]})  # warm-up
    t0 = time.perf_counter()
    res = approximate_loo_cv(_tight(), X, y, {"C": GRID})
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    true = np.array([_true_loo_cv_log_loss(C, X, y) for C in GRID])
    t_true = time.perf_counter() - t0
    ours = res["loo_loss"]
    rel = (ours - true) / true
    print("\nLOO log-loss, breast cancer 200 rows, LogisticRegression:")
    for C, a, b, r in zip(GRID, ours, true, rel, strict=True):
        print(f"  C={C:<5} approximate {a:.5f}  true {b:.5f}  rel. error {r:+.1e}")
    print(f"  time: ours {t_ours:.3f} s, true LOO CV {t_true:.2f} s "
          f"({t_true / t_ours:.0f}x faster)")
    # measured (7-value grid 0.01 ... 10): rel. errors +1.2e-4 (C=0.01), +1.8e-3
    # (0.1), +1.1e-2 (1), +5.4e-3 (3), -1.0e-2 (10); both choose C=1.0. Timing
    # varies with machine load: 15x-60x faster (benchmarks/bench_model_selection.py)
    assert res["best_params"] == {"C": GRID[int(np.argmin(true))]}
    assert np.max(np.abs(rel)) < 0.02
    assert res["rank_test_score"][res["best_index"]] == 1
    np.testing.assert_allclose(res["mean_test_score"], -ours)
    assert t_ours < t_true


def test_loo_accuracy_matches_true_loo_cv():
    X, y = _breast_cancer()
    X, y = X[:200], y[:200]
    explainer = InfluenceExplainer(_tight(0.1)).fit(X, y)
    true = cross_val_score(_tight(0.1), X, y, cv=LeaveOneOut()).mean()
    # measured equal (0.965) at C=0.1; over the grid 6 of 7 C agree, one differs by
    # a single row (C=0.3: 0.960 vs 0.965)
    assert loo_score(explainer, "accuracy") == pytest.approx(true)


def test_loo_score_is_press_for_ridge():
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:120], y[:120]
    explainer = InfluenceExplainer(Ridge(alpha=0.5)).fit(X, y)
    Xc = np.c_[X, np.ones(len(y))]
    P = np.diag(np.r_[np.full(X.shape[1], 0.5), 0.0])
    hat = Xc @ np.linalg.solve(Xc.T @ Xc + P, Xc.T)
    resid = y - hat @ y
    press = np.mean((resid / (1 - np.diag(hat))) ** 2)
    assert loo_score(explainer) == pytest.approx(press, rel=1e-8)
    with pytest.raises(ValueError, match="classifier"):
        loo_score(explainer, "accuracy")
    with pytest.raises(ValueError, match="scoring must be"):
        loo_score(explainer, "r2")


def test_loo_score_frozen_and_multiclass_and_svm():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    frozen = InfluenceExplainer(FrozenEstimator(_tight().fit(X, y))).fit(X, y)
    plain = InfluenceExplainer(_tight()).fit(X, y)
    assert loo_score(frozen) == pytest.approx(loo_score(plain), rel=1e-6)
    acc = loo_score(plain, "accuracy")
    true = cross_val_score(_tight(), X, y, cv=LeaveOneOut()).mean()
    assert abs(acc - true) <= 2 / len(y)  # measured: equal
    Xb, yb = _breast_cancer()
    svc = InfluenceExplainer(LinearSVC(C=0.5, dual=False, tol=1e-10)).fit(
        Xb[:150], yb[:150])
    assert 0.9 < loo_score(svc, "accuracy") <= 1.0
    assert np.isfinite(loo_score(svc))


def test_loo_score_weighted_is_weighted_mean():
    X, y = _breast_cancer()
    X, y = X[:120, :8], y[:120]
    sw = np.r_[np.full(60, 2.0), np.ones(60)]
    ex = InfluenceExplainer(_tight()).fit(X, y, sample_weight=sw)
    obj = ex.risk_
    diag = np.diag(ex.leave_one_out(X, y, method="newton"))
    expected = np.average(obj.test_loss(obj.X, obj.y) + diag, weights=sw)
    assert loo_score(ex) == pytest.approx(expected, rel=1e-12)


def test_mislabel_search_on_digits():
    """Second dataset: digits 1 vs 7 with 10% of labels flipped on purpose.

    Measured (found after checking 10 / 20 / 30%): self-influence 0.97 / 1.0 / 1.0,
    leverage-corrected the same, training loss 1.0 / 1.0 / 1.0, random 0.08 / 0.25 /
    0.31. (The flips use a different seed from the random ranking: RandomState(0)'s
    choice() is its permutation()'s prefix.)
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, (1, 7))
    X, y = X[keep] / 16.0, (y[keep] == 7).astype(int)
    flipped = np.zeros(len(y), dtype=bool)
    flipped[np.random.RandomState(42).choice(len(y), len(y) // 10, replace=False)] = 1
    y_noisy = np.where(flipped, 1 - y, y)
    model = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-10)
    explainer = InfluenceExplainer(model).fit(X, y_noisy)
    n = len(y)
    found = {s: mislabel_curve(mislabel_ranking(explainer, s, random_state=0),
                               flipped)[1][int(0.2 * n)]
             for s in ("self_influence", "leverage_corrected", "loss", "random")}
    for strategy in ("self_influence", "leverage_corrected", "loss"):
        assert found[strategy] >= 0.9
        assert found[strategy] >= found["random"] + 0.5
