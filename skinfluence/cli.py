"""Command-line interface: ``skinfluence demo`` and ``skinfluence explain``.

Also available as ``python -m skinfluence``.
"""

import argparse
import csv
import json
import os
import sys
import time
import warnings

MODELS = ("logistic", "linear-svc", "ridge")
OUTPUT_COLUMNS = ("test_row", "test_label", "kind", "rank", "train_row", "train_label",
                  "score", "loss_change")


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


class CLIError(Exception):
    """A problem with the user's input: reported in one line, exit code 2."""


class Table:
    """A CSV file's header and non-blank rows (lists of stripped strings).

    ``numbers[i]`` is the data row number of ``rows[i]``: records are numbered from 0
    in file order, the header not counted; blank lines are skipped but keep their
    number, so the numbering is the one the user sees in the file (row k on line
    k + 2 when no quoted field spans lines).
    """

    def __init__(self, path, what, header, rows, numbers, n_records):
        self.path, self.what = path, what
        self.header, self.rows, self.numbers = header, rows, numbers
        self.n_records = n_records

    def __len__(self):
        return len(self.rows)


def _read_table(path, what="data file"):
    """Read a CSV file into a :class:`Table`; clear errors for unusable files."""
    import numpy as np

    if os.path.isdir(path):
        raise CLIError(f"{what} {path} is a directory, not a CSV file")
    if not os.path.isfile(path):
        raise CLIError(f"{what} not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            records = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CLIError(f"cannot read {what} {path}: {exc}") from None
    if not header:
        raise CLIError(f"{what} {path} is empty (a header row of column names is "
                       "expected)")
    header = [name.strip() for name in header]
    _check_header(header, path, what)
    numbers = [i for i, row in enumerate(records) if any(c.strip() for c in row)]
    if not numbers:
        raise CLIError(f"{what} {path} has a header but no data rows")
    for i in numbers:
        if len(records[i]) != len(header):
            raise CLIError(
                f"{what} {path}: data row {i} has {len(records[i])} fields but the "
                f"header has {len(header)}"
            )
    rows = [[cell.strip() for cell in records[i]] for i in numbers]
    return Table(path, what, header, rows, np.asarray(numbers), len(records))


def _check_header(header, path, what):
    """Refuse unnamed or repeated column names (a column would be read twice)."""
    seen, repeated = set(), []
    for name in header:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    if repeated:
        raise CLIError(f"{what} {path} has duplicated column name(s) "
                       f"{', '.join(map(repr, repeated[:10]))}; rename them so that "
                       "every column has its own name")
    if "" in seen:
        raise CLIError(f"{what} {path}: column {header.index('') + 1} of the header "
                       "has no name")


def _column(table, name):
    if name not in table.header:
        shown = ", ".join(repr(c) for c in table.header[:12])
        more = (f", ... ({len(table.header)} columns)" if len(table.header) > 12
                else "")
        raise CLIError(f"column {name!r} not found in {table.path}; its columns are: "
                       f"{shown}{more}")
    j = table.header.index(name)
    return [row[j] for row in table.rows]


def _numeric_matrix(table, names):
    """The named columns as a float matrix; clear errors for missing or text cells."""
    import numpy as np

    X = np.empty((len(table), len(names)))
    for c, name in enumerate(names):
        for i, cell in enumerate(_column(table, name)):
            if cell == "":
                raise CLIError(
                    f"missing value in {table.path}: row {table.numbers[i]}, column "
                    f"{name!r} is empty; fill it in or drop the row or column"
                )
            try:
                X[i, c] = float(cell)
            except ValueError:
                raise CLIError(
                    f"non-numeric feature column {name!r} in {table.path} (row "
                    f"{table.numbers[i]}: {cell!r}); only numeric features are "
                    "supported (drop or encode this column first)"
                ) from None
    if not np.all(np.isfinite(X)):
        i, c = np.argwhere(~np.isfinite(X))[0]
        raise CLIError(f"non-finite value in {table.path}, column {names[c]!r}, row "
                       f"{table.numbers[i]}")
    return X


def _labels(table, target, model):
    """The target column: numbers when they all parse, else strings (classes)."""
    import numpy as np

    values = _column(table, target)
    empty = [i for i, v in enumerate(values) if v == ""]
    if empty:
        raise CLIError(f"target column {target!r} of {table.path} has a missing "
                       f"value (row {table.numbers[empty[0]]})")
    try:
        y = np.array([float(v) for v in values])
    except ValueError:
        if model == "ridge":
            raise CLIError(f"target column {target!r} of {table.path} must be numeric "
                           "for --model ridge") from None
        return np.array(values, dtype=object).astype(str)
    if model == "ridge":
        return y
    if not np.all(np.isfinite(y)):
        raise CLIError(f"target column {target!r} of {table.path} has a non-finite "
                       "value")
    if not np.all(y == np.round(y)):
        raise CLIError(
            f"--model {model} needs class labels, but the target {target!r} of "
            f"{table.path} looks continuous ({len(np.unique(y))} distinct numeric "
            "values, not all whole numbers); use --model ridge for regression"
        )
    return y.astype(np.int64)


def _parse_rows(text, table):
    """Positions in ``table.rows`` of the row numbers listed in ``--test-rows``."""
    import numpy as np

    rows = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            rows.append(int(part))
        except ValueError:
            raise CLIError(f"--test-rows must be comma-separated row numbers, e.g. "
                           f"0,5,9; got {text!r}") from None
    if not rows:
        raise CLIError("--test-rows is empty")
    n = table.n_records
    out = [r for r in rows if not 0 <= r < n]
    if out:
        raise CLIError(f"--test-rows out of range (the data file has {n} rows, "
                       f"numbered 0 to {n - 1}): {out[:10]}")
    rows = np.unique(rows)
    pos = np.searchsorted(table.numbers, rows)
    blank = rows[table.numbers[np.minimum(pos, len(table) - 1)] != rows]
    if blank.size:
        raise CLIError(f"--test-rows {blank[:10].tolist()} of {table.path} are blank "
                       "lines (blank lines are skipped but keep their row number)")
    if len(pos) >= len(table):
        raise CLIError("--test-rows holds out every row: nothing is left to train on")
    return pos


def _check_output(args):
    """Refuse an output that would overwrite an input, or any file without --force."""
    if args.output is None:
        return None
    fmt = os.path.splitext(args.output)[1].lower().lstrip(".")
    if fmt not in ("csv", "json"):
        raise CLIError(f"--output must end in .csv or .json; got {args.output!r}")
    if os.path.isdir(args.output):
        raise CLIError(f"--output {args.output} is a directory; give a file name")
    if not os.path.exists(args.output):
        return fmt
    for what, path in (("data file", args.data), ("test file", args.test_file)):
        if path is not None and os.path.exists(path) and \
                os.path.samefile(args.output, path):
            raise CLIError(f"--output {args.output} is the {what}: writing the results "
                           "would destroy it; choose another output file")
    if not args.force:
        raise CLIError(f"--output {args.output} already exists; pass --force to "
                       "overwrite it, or choose another file")
    return fmt


def _build_model(name, C):
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.svm import LinearSVC

    if name == "logistic":
        return LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10,
                                  max_iter=1000)
    if name == "linear-svc":
        return LinearSVC(C=C, tol=1e-10, max_iter=100_000)
    return Ridge(alpha=1.0 / C)


def _top_rows(explainer, X_test, y_test, k, method):
    """(indices, scores, loss changes) of shape (n_test, k) per kind."""
    import numpy as np

    n = len(explainer.sample_weight_)
    if method == "influence":
        out = {}
        for kind in ("helpful", "harmful"):
            idx, scores = explainer.most_influential(X_test, y_test, k=k, kind=kind)
            out[kind] = idx, scores, -scores / n  # removal: −(s_j/n)·I_up,loss
        return out
    # "newton": rank by the predicted change on removal, in batches of test rows
    chunk = max(1, 2**22 // n)
    parts = {"helpful": [], "harmful": []}
    for start in range(0, len(y_test), chunk):
        sl = slice(start, start + chunk)
        delta = explainer.leave_one_out(X_test[sl], y_test[sl], method="newton")
        order = np.argsort(delta, axis=1, kind="stable")
        for kind, idx in (("helpful", order[:, ::-1][:, :k]),  # removal raises loss
                          ("harmful", order[:, :k])):          # removal lowers it
            change = np.take_along_axis(delta, idx, axis=1)
            parts[kind].append((idx, -n * change, change))
    return {kind: tuple(np.concatenate(p, axis=0) for p in zip(*chunks, strict=True))
            for kind, chunks in parts.items()}


def _explain(args):
    try:
        return _run_explain(args)
    except CLIError as exc:
        print(f"skinfluence explain: error: {exc}", file=sys.stderr)
        return 2


def _run_explain(args):
    import numpy as np

    from .explainer import InfluenceExplainer

    if args.top < 1:
        raise CLIError(f"--top must be at least 1; got {args.top}")
    if not args.C > 0:
        raise CLIError(f"--C must be positive; got {args.C}")
    fmt = _check_output(args)
    regression = args.model == "ridge"

    data = _read_table(args.data)
    y_all = _labels(data, args.target, args.model)
    features = [c for c in data.header if c != args.target]
    if not features:
        raise CLIError(f"{args.data} has no feature columns besides {args.target!r}")
    X_all = _numeric_matrix(data, features)

    if args.test_file is not None:
        test = _read_table(args.test_file, "test file")
        missing = [c for c in [*features, args.target] if c not in test.header]
        if missing:
            raise CLIError(f"test file {args.test_file} lacks column(s) "
                           f"{', '.join(map(repr, missing[:10]))} of {args.data}")
        X_test = _numeric_matrix(test, features)
        y_test = _labels(test, args.target, args.model)
        train_rows = np.arange(len(y_all))
        test_ids = test.numbers
    else:
        test_pos = _parse_rows(args.test_rows, data)
        train_rows = np.setdiff1d(np.arange(len(y_all)), test_pos)
        X_test, y_test = X_all[test_pos], y_all[test_pos]
        test_ids = data.numbers[test_pos]
    X_train, y_train = X_all[train_rows], y_all[train_rows]
    if not regression:
        unseen = sorted(set(np.unique(y_test).tolist()) - set(y_train.tolist()))
        if unseen:
            raise CLIError(f"test label(s) {unseen[:10]} do not occur in the training "
                           "rows")
    if args.top > len(y_train):
        raise CLIError(f"--top {args.top} exceeds the {len(y_train)} training rows")

    if args.standardize:
        mean, std = X_train.mean(axis=0), X_train.std(axis=0)
        std[std == 0] = 1.0
        X_train, X_test = (X_train - mean) / std, (X_test - mean) / std

    model = _build_model(args.model, args.C)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            explainer = InfluenceExplainer(model).fit(X_train, y_train)
            top = _top_rows(explainer, X_test, y_test, args.top, args.method)
        except (ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise CLIError(f"cannot explain {type(model).__name__}: {first}") from None
    for w in caught:
        if not issubclass(w.category, DeprecationWarning):
            message = str(w.message).strip().splitlines()[0]
            print(f"skinfluence explain: warning: {message}", file=sys.stderr)

    records = []
    for t, test_id in enumerate(test_ids):
        for kind in ("helpful", "harmful"):
            idx, scores, changes = top[kind]
            sign = -1.0 if kind == "helpful" else 1.0
            for rank in range(idx.shape[1]):
                if not sign * scores[t, rank] > 0:  # no effect of this sign left
                    break
                j = int(idx[t, rank])
                records.append({
                    "test_row": int(test_id), "test_label": _plain(y_test[t]),
                    "kind": kind, "rank": rank + 1,
                    "train_row": int(data.numbers[train_rows[j]]),
                    "train_label": _plain(y_train[j]),
                    "score": float(scores[t, rank]),
                    "loss_change": float(changes[t, rank]),
                })

    source = (f"rows of {args.test_file}" if args.test_file is not None else
              f"held-out rows of {args.data}")
    print(f"{type(model).__name__} on {len(y_train)} training rows x {len(features)} "
          f"features{' (standardised)' if args.standardize else ''}; explaining "
          f"{len(test_ids)} {source} (method={args.method}).")
    print("score: influence on the test loss (> 0 harmful, < 0 helpful); "
          "loss_change: predicted change of the test loss if the training row is "
          "removed.")
    _print_table(records, limit=args.top * 2 * 5)
    if args.output is not None:
        _write(records, args.output, fmt, {
            "data": args.data, "target": args.target, "model": args.model,
            "C": args.C, "method": args.method, "standardized": args.standardize,
            "n_train": len(y_train), "features": features,
        })
        print(f"Wrote {len(records)} rows to {args.output}.")
    return 0


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _print_table(records, limit):
    cols = OUTPUT_COLUMNS
    cells = [[str(r[c]) if c not in ("score", "loss_change") else f"{r[c]:+.4g}"
              for c in cols] for r in records[:limit]]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    if len(records) > limit:
        print(f"... {len(records) - limit} more rows (use --output to save them all)")


def _write(records, path, fmt, meta):
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            if fmt == "csv":
                writer = csv.DictWriter(f, fieldnames=OUTPUT_COLUMNS)
                writer.writeheader()
                writer.writerows(records)
            else:
                json.dump({**meta, "results": records}, f, indent=1)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc}") from None


EXPLAIN_EPILOG = """\
example:
  skinfluence explain patients.csv --target diagnosis --test-rows 0,5,9 --top 5 \\
      --output influence.csv

  fits a logistic regression on every row of patients.csv except rows 0, 5 and 9
  (rows are numbered from 0, the header not counted; a blank line is skipped but
  keeps its number, so row k is on line k + 2), then lists, for each of
  those three rows, the 5 training rows that most helped and the 5 that most
  harmed its prediction, and saves them to influence.csv (an existing file is
  overwritten only with --force; the data file never).

output columns:
  test_row      the explained row (of the data file, or of --test-file)
  test_label    its target value
  kind          helpful (lowers the test loss) or harmful (raises it)
  rank          1 = most helpful / most harmful
  train_row     the training row (numbered as in the data file)
  train_label   its target value
  score         influence of the training row on the test loss (Koh & Liang's
                I_up,loss: > 0 harmful, < 0 helpful); with --method newton,
                -n * loss_change (n = number of training rows)
  loss_change   predicted change of the test loss if the training row is
                removed and the model refit (< 0 for harmful rows)

All columns but the target must be numeric. Features are standardised (zero mean,
unit variance over the training rows) before fitting unless --no-standardize is
given; the model is explained on the standardised features. Only rows with an
effect of the listed sign are given, so fewer than --top rows may appear (e.g. for a
test point outside a LinearSVC's margin, whose loss is flat: no row influences it).
"""


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

    explain = sub.add_parser(
        "explain",
        help="which training rows of a CSV file helped or harmed the predictions "
        "for some test rows",
        description="Fit a linear model on a CSV file and, for each test row, list\n"
        "the training rows that most helped and most harmed its prediction\n"
        "(influence functions, Koh & Liang 2017: computed without refitting).",
        epilog=EXPLAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("data", help="CSV file with a header row: numeric feature "
                         "columns and the target column")
    explain.add_argument("--target", required=True, metavar="COLUMN",
                         help="name of the target (label) column")
    explain.add_argument("--model", choices=MODELS, default="logistic",
                         help="logistic: LogisticRegression (classification); "
                         "linear-svc: LinearSVC (classification, squared hinge); "
                         "ridge: Ridge with alpha = 1/C (regression) "
                         "(default: logistic)")
    explain.add_argument("--C", type=float, default=1.0,
                         help="inverse regularisation strength; smaller = stronger "
                         "regularisation (default: 1.0)")
    where = explain.add_mutually_exclusive_group(required=True)
    where.add_argument("--test-rows", metavar="ROWS",
                       help="comma-separated rows of the data file to explain, "
                       "e.g. 0,5,9 (numbered from 0, header not counted); they are "
                       "held out of training")
    where.add_argument("--test-file", metavar="CSV",
                       help="CSV file of test rows to explain, with the same feature "
                       "and target columns (all rows of the data file train)")
    explain.add_argument("--top", type=int, default=5,
                         help="helpful and harmful training rows listed per test row "
                         "(default: 5)")
    explain.add_argument("--method", choices=("influence", "newton"),
                         default="influence",
                         help="influence: first-order influence functions (Koh & "
                         "Liang); newton: one Newton step per removed row, closer to "
                         "actual refits, slower (default: influence)")
    explain.add_argument("--output", metavar="FILE",
                         help="write all results to FILE: .csv or .json")
    explain.add_argument("--force", action="store_true",
                         help="overwrite --output if it exists (never the data or "
                         "test file)")
    explain.add_argument("--no-standardize", dest="standardize",
                         action="store_false",
                         help="fit on the raw features instead of standardised ones")
    explain.set_defaults(func=_explain)
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
