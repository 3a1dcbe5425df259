"""Command-line interface: ``skinfluence demo`` (also ``python -m skinfluence demo``)."""

import argparse
import sys
import time


def _demo(args):
    import numpy as np
    from sklearn.base import clone
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from .explainer import InfluenceExplainer

    start = time.perf_counter()
    digits = load_digits()
    keep = np.isin(digits.target, (1, 7))
    X, y = digits.data[keep] / 16.0, digits.target[keep]
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=args.seed
    )
    model = LogisticRegression(C=args.C, solver="newton-cholesky", tol=1e-12,
                               max_iter=1000)
    explainer = InfluenceExplainer(model).fit(X_tr, y_tr)
    n = len(y_tr)
    print(
        f"Digits 1 vs 7: {n} training, {len(y_te)} test images; "
        f"LogisticRegression(C={args.C}), test accuracy "
        f"{explainer.score(X_te, y_te):.3f}"
    )
    print(
        "Score = influence of up-weighting a training image on the test loss "
        "(I_up,loss; > 0 harmful, < 0 helpful).\n"
    )

    # Explain the test points the model finds hardest (highest log-loss).
    proba = explainer.predict_proba(X_te)
    col = np.searchsorted(explainer.classes_, y_te)
    test_loss = -np.log(proba[np.arange(len(y_te)), col])
    picked = np.argsort(test_loss)[::-1][: args.n_test]
    influence = explainer.loss_influence(X_te[picked], y_te[picked])
    predicted = {
        method: explainer.leave_one_out(X_te[picked], y_te[picked], method=method)
        for method in ("influence", "newton")
    }

    checked = set()
    for row, t in enumerate(picked):
        order = np.argsort(influence[row])
        print(
            f"Test image #{t}: label {y_te[t]}, P(label) = "
            f"{np.exp(-test_loss[t]):.3f}, loss {test_loss[t]:.3f}"
        )
        for title, rows in (("helpful", order[: args.top]),
                            ("harmful", order[::-1][: args.top])):
            cells = ", ".join(
                f"#{j} (label {y_tr[j]}, {influence[row, j]:+.3g})" for j in rows
            )
            print(f"  most {title}: {cells}")
        checked.update(order[: args.check].tolist())
        checked.update(order[::-1][: args.check].tolist())
        print()

    # Check the predictions against actual leave-one-out refits.
    checked = sorted(checked)
    actual = np.empty((len(picked), len(checked)))
    for c, j in enumerate(checked):
        mask = np.ones(n, dtype=bool)
        mask[j] = False
        refit = clone(model).fit(X_tr[mask], y_tr[mask])
        p = refit.predict_proba(X_te[picked])[np.arange(len(picked)), col[picked]]
        actual[:, c] = -np.log(p) - test_loss[picked]
    print(
        f"Leave-one-out check: {len(checked)} training images (the top {args.check} "
        f"helpful and harmful per test image) removed and the model refit; "
        f"predicted vs actual change of the test loss over {actual.size} pairs:"
    )
    for method, label in (("influence", "first-order influence (Koh & Liang)"),
                          ("newton", "one Newton step (method='newton')")):
        pred = predicted[method][:, checked].ravel()
        r = np.corrcoef(pred, actual.ravel())[0, 1]
        slope = np.dot(pred, actual.ravel()) / np.dot(pred, pred)
        print(f"  {label:38s} Pearson r = {r:.4f}, slope actual/predicted = "
              f"{slope:.2f}")
    print(f"Done in {time.perf_counter() - start:.1f} s.")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="skinfluence",
        description="Influence functions (Koh & Liang, 2017) for scikit-learn's "
        "linear models: which training points are responsible for a prediction?",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="explain LogisticRegression predictions on digits 1 vs 7 and check "
        "them against leave-one-out refits",
        description="Fit LogisticRegression on scikit-learn's digits (1 vs 7), show "
        "the most helpful and harmful training images for the hardest test images, "
        "and check the predicted leave-one-out effects against actual refits.",
    )
    demo.add_argument("--C", type=float, default=1.0, help="inverse regularisation "
                      "strength of the LogisticRegression (default: 1.0)")
    demo.add_argument("--n-test", type=int, default=3,
                      help="number of test images to explain (default: 3)")
    demo.add_argument("--top", type=int, default=5,
                      help="training images listed per side (default: 5)")
    demo.add_argument("--check", type=int, default=10, help="training images per "
                      "side and test image checked by refitting (default: 10)")
    demo.add_argument("--seed", type=int, default=0,
                      help="train/test split seed (default: 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
