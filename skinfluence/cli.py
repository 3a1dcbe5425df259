"""Command-line interface: ``skinfluence demo`` and ``skinfluence explain``.

Also available as ``python -m skinfluence``.
"""

import argparse
import csv
import io
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


#: Cells read as missing values (besides empty ones), as most spreadsheet and
#: statistics exports write them.
MISSING = frozenset({"", "NA", "N/A", "#N/A", "NaN", "nan", "NULL", "null"})

#: Separators tried, in order of preference, when ``--sep`` is not given.
SEPARATORS = (",", ";", "\t")
SNIFF_BYTES = 1 << 16


class Table:
    """A CSV file's header and non-blank rows (lists of stripped strings).

    ``numbers[i]`` is the data row number of ``rows[i]``: records are numbered from 0
    in file order, the header not counted; blank lines are skipped but keep their
    number, so the numbering is the one the user sees in the file (row k on line
    k + 2 when no quoted field spans lines).
    """

    def __init__(self, path, what, header, rows, numbers, n_records, sep):
        self.path, self.what = path, what
        self.header, self.rows, self.numbers = header, rows, numbers
        self.n_records, self.sep = n_records, sep

    def __len__(self):
        return len(self.rows)

    def column(self, name):
        """The cells of column ``name``; a clear error listing the columns if absent."""
        if name not in self.header:
            raise CLIError(f"column {name!r} not found in {self.path}; its columns "
                           f"are: {_names(self.header)}")
        j = self.header.index(name)
        return [row[j] for row in self.rows]


def _names(values, limit=12, noun="columns"):
    shown = ", ".join(repr(c) for c in values[:limit])
    return shown + (f", ... ({len(values)} {noun})" if len(values) > limit else "")


def _sep_name(sep):
    return {"\t": "tab", ",": "','", ";": "';'"}.get(sep, repr(sep))


def _sniff_separator(sample, complete, path, what):
    """The separator of ``SEPARATORS`` that splits the sample into the most columns.

    A candidate must give at least two columns in the header; one that gives every
    non-blank line of the sample the header's number of fields is preferred
    (quotes are honoured: a separator inside a quoted field does not count).
    """
    best = None
    for rank, sep in enumerate(SEPARATORS):
        try:
            records = [r for r in csv.reader(io.StringIO(sample, newline=""),
                                             delimiter=sep)
                       if any(cell.strip() for cell in r)]
        except csv.Error:
            continue
        if not complete:
            records = records[:-1]  # the sample may end inside a record
        if not records or len(records[0]) < 2:
            continue
        consistent = all(len(r) == len(records[0]) for r in records)
        key = (consistent, len(records[0]), -rank)
        if best is None or key > best[0]:
            best = key, sep
    if best is None:
        raise CLIError(
            f"{what} {path} does not look like a table: its first line has no ',', "
            "';' or tab between column names (a header row of column names is "
            "expected; pass --sep for another separator)"
        )
    return best[1]


def _read_table(path, what="data file", sep=None):
    """Read a delimited text file into a :class:`Table`; clear errors if unusable.

    The separator is ``sep``, or sniffed among ``,``, ``;`` and tab; quoted fields
    and a UTF-8 byte order mark are handled.
    """
    import numpy as np

    if os.path.isdir(path):
        raise CLIError(f"{what} {path} is a directory, not a CSV file")
    if not os.path.isfile(path):
        raise CLIError(f"{what} not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path}: {exc}") from None
    except UnicodeDecodeError:
        raise CLIError(f"{what} {path} is not a UTF-8 text file (a CSV table is "
                       "expected; re-save it as CSV UTF-8)") from None
    if "\0" in text:
        raise CLIError(f"{what} {path} is a binary file, not a CSV table")
    if not text.strip():
        raise CLIError(f"{what} {path} is empty (a header row of column names is "
                       "expected)")
    if sep is None:
        sep = _sniff_separator(text[:SNIFF_BYTES], len(text) <= SNIFF_BYTES, path,
                               what)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
        header = next(reader)
        records = list(reader)
    except csv.Error as exc:
        raise CLIError(f"cannot read {what} {path}: {exc}") from None
    header = [name.strip() for name in header]
    _check_header(header, path, what)
    numbers = [i for i, row in enumerate(records) if any(c.strip() for c in row)]
    if not numbers:
        raise CLIError(f"{what} {path} has a header but no data rows")
    for i in numbers:
        if len(records[i]) != len(header):
            raise CLIError(
                f"{what} {path}: data row {i} has {len(records[i])} fields but the "
                f"header has {len(header)} (separator {_sep_name(sep)}; pass --sep "
                "if it is another one)"
            )
    rows = [[cell.strip() for cell in records[i]] for i in numbers]
    return Table(path, what, header, rows, np.asarray(numbers), len(records), sep)


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


def _split_names(text, option):
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise CLIError(f"{option} is empty; give comma-separated column names")
    return names


def _feature_columns(args, table):
    """The feature columns: all but target and ID, or as chosen by --features/--drop."""
    special = [args.target] + ([args.id_column] if args.id_column else [])
    for name in special:
        table.column(name)  # exists
    if args.id_column == args.target:
        raise CLIError("--id-column and --target name the same column")
    option = "--features" if args.features is not None else "--drop"
    text = args.features if args.features is not None else args.drop
    chosen = [] if text is None else _split_names(text, option)
    unknown = [c for c in chosen if c not in table.header]
    if unknown:
        raise CLIError(f"{option}: unknown column(s) {', '.join(map(repr, unknown))} "
                       f"in {table.path}; its columns are: {_names(table.header)}")
    if args.features is not None:
        clash = [c for c in chosen if c in special]
        if clash:
            raise CLIError(f"--features lists {clash[0]!r}, the "
                           f"{'target' if clash[0] == args.target else 'ID'} column; "
                           "it cannot be a feature")
        features = [c for c in table.header if c in chosen]  # in file order
    else:
        features = [c for c in table.header if c not in special and c not in chosen]
    if not features:
        raise CLIError(f"{table.path} has no feature columns left besides the target "
                       f"{args.target!r}")
    return features


def _parse_number(cell, decimal):
    if decimal == ",":
        cell = cell.replace(",", ".")
    return float(cell)


def _is_number(cell, decimal):
    try:
        _parse_number(cell, decimal)
    except ValueError:
        return False
    return True


def _column_kinds(table, features, decimal):
    """"numeric" for columns whose present cells all parse as numbers, else
    "categorical"; an error for numbers written with a decimal comma."""
    kinds = []
    for name in features:
        present = [c for c in table.column(name) if c not in MISSING]
        numeric = all(_is_number(c, decimal) for c in present)
        if not numeric and decimal == "." and present and \
                all(_is_number(c, ",") for c in present):
            raise CLIError(f"column {name!r} of {table.path} holds numbers with a "
                           f"decimal comma (e.g. {present[0]!r}); pass --decimal ,")
        kinds.append("numeric" if numeric else "categorical")
    return kinds


def _feature_matrix(table, features, kinds, decimal, impute):
    """The feature cells as an object array: floats in numeric columns, strings in
    categorical ones, NaN where missing (an error naming the first missing cell
    unless ``impute``)."""
    import numpy as np

    X = np.empty((len(table), len(features)), dtype=object)
    for c, (name, kind) in enumerate(zip(features, kinds, strict=True)):
        for i, cell in enumerate(table.column(name)):
            if cell in MISSING:
                X[i, c] = np.nan
            elif kind == "categorical":
                X[i, c] = cell
            else:
                try:
                    X[i, c] = value = _parse_number(cell, decimal)
                except ValueError:
                    raise CLIError(
                        f"column {name!r} is numeric in the data file but row "
                        f"{table.numbers[i]} of {table.path} holds {cell!r}"
                    ) from None
                if not np.isfinite(value):
                    raise CLIError(f"non-finite value in {table.path}, column "
                                   f"{name!r}, row {table.numbers[i]}")
    missing = np.array([[isinstance(v, float) and v != v for v in row] for row in X],
                       dtype=bool).reshape(X.shape)
    if missing.any() and impute is None:
        i, c = np.argwhere(missing)[0]  # the first in file order
        raise CLIError(
            f"missing value in {table.path}: row {table.numbers[i]}, column "
            f"{features[c]!r} is empty; fill it in, drop the row or the column "
            "(--drop), or pass --impute mean|median|most_frequent"
        )
    return X


def _labels(table, target, model, decimal="."):
    """The target column: numbers when they all parse, else strings (classes)."""
    import numpy as np

    values = table.column(target)
    empty = [i for i, v in enumerate(values) if v in MISSING]
    if empty:
        raise CLIError(f"target column {target!r} of {table.path} has a missing "
                       f"value (row {table.numbers[empty[0]]}); drop such rows first")
    try:
        y = np.array([_parse_number(v, decimal) for v in values])
    except ValueError:
        if model == "ridge":
            raise CLIError(f"target column {target!r} of {table.path} must be numeric "
                           "for --model ridge") from None
        return np.array(values, dtype=object).astype(str)
    if not np.all(np.isfinite(y)):
        raise CLIError(f"target column {target!r} of {table.path} has a non-finite "
                       "value")
    if model == "ridge":
        return y
    if not np.all(y == np.round(y)):
        raise CLIError(
            f"--model {model} needs class labels, but the target {target!r} of "
            f"{table.path} looks continuous ({len(np.unique(y))} distinct numeric "
            "values, not all whole numbers); use --model ridge for regression"
        )
    return y.astype(np.int64)


def _row_ids(table, id_column):
    """The ID column's values (unique, none missing), or None without --id-column."""
    if id_column is None:
        return None
    ids = table.column(id_column)
    empty = [i for i, v in enumerate(ids) if v in MISSING]
    if empty:
        raise CLIError(f"ID column {id_column!r} of {table.path} has a missing value "
                       f"(row {table.numbers[empty[0]]})")
    seen = {}
    for i, v in enumerate(ids):
        if v in seen:
            raise CLIError(f"ID column {id_column!r} of {table.path} repeats {v!r} "
                           f"(rows {table.numbers[seen[v]]} and {table.numbers[i]}); "
                           "IDs must be unique")
        seen[v] = i
    return ids


def _parse_rows(text, table, ids=None):
    """Positions in ``table.rows`` of the rows listed in ``--test-rows``.

    Without IDs the values are row numbers. With IDs (``--id-column``) they are IDs;
    ``#k`` gives row number k in both cases.
    """
    import numpy as np

    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise CLIError("--test-rows is empty")
    index = {v: i for i, v in enumerate(ids)} if ids is not None else {}
    rows, pos = [], []
    for part in parts:
        if ids is not None and not part.startswith("#"):
            if part not in index:
                hint = (f" (to give row number {part}, write #{part})"
                        if part.isdigit() else "")
                raise CLIError(f"--test-rows: no row has ID {part!r}{hint}; IDs in "
                               f"{table.path} include {_names(ids, 5, 'rows')}")
            pos.append(index[part])
            continue
        try:
            rows.append(int(part.removeprefix("#")))
        except ValueError:
            raise CLIError("--test-rows must be comma-separated row numbers, e.g. "
                           f"0,5,9 (or IDs with --id-column); got {text!r}") from None
    n = table.n_records
    out = [r for r in rows if not 0 <= r < n]
    if out:
        raise CLIError(f"--test-rows out of range (the data file has {n} rows, "
                       f"numbered 0 to {n - 1}): {out[:10]}")
    rows = np.asarray(rows, dtype=int)
    found = np.searchsorted(table.numbers, rows)
    blank = rows[table.numbers[np.minimum(found, len(table) - 1)] != rows]
    if blank.size:
        raise CLIError(f"--test-rows {blank[:10].tolist()} of {table.path} are blank "
                       "lines (blank lines are skipped but keep their row number)")
    pos = np.unique(np.concatenate([found, np.asarray(pos, dtype=int)]))
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


def _build_pipeline(kinds, model, standardize=True, impute=None):
    """The explained Pipeline: column preprocessing, then the linear model.

    Numeric columns are standardised (unless ``standardize=False``), categorical
    ones one-hot encoded (categories unseen in training encode as all zeros);
    ``impute`` adds a ``SimpleImputer`` with that strategy to numeric columns and
    ``"most_frequent"`` to categorical ones. The preprocessing is fitted on the
    training rows and held fixed by the explainer, which explains the model on the
    transformed features.

    Parameters
    ----------
    kinds : list of {"numeric", "categorical"}
        The kind of each column of the object array the pipeline will receive.
    model : estimator
        The linear model (last step).
    standardize : bool, default=True
        Standardise numeric columns.
    impute : {"mean", "median", "most_frequent"} or None, default=None
        Imputation strategy for numeric columns; None: no imputer.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        ``Pipeline([("columns", ColumnTransformer), ("model", model)])``.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c, kind in enumerate(kinds) if kind == "numeric"]
    categorical = [c for c, kind in enumerate(kinds) if kind == "categorical"]
    num_steps = ([SimpleImputer(strategy=impute)] if impute else []) + \
        ([StandardScaler()] if standardize else [])
    cat_steps = ([SimpleImputer(strategy="most_frequent")] if impute else []) + \
        [OneHotEncoder(handle_unknown="ignore")]
    parts = []
    if numeric:
        parts.append(("numeric", make_pipeline(*num_steps) if num_steps
                      else "passthrough", numeric))
    if categorical:
        parts.append(("categorical", make_pipeline(*cat_steps), categorical))
    columns = ColumnTransformer(parts, verbose_feature_names_out=False)
    return Pipeline([("columns", columns), ("model", model)])


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


def _separator(text):
    if text is None:
        return None
    sep = {"tab": "\t", "\\t": "\t"}.get(text.lower(), text)
    if len(sep) != 1:
        raise CLIError(f"--sep must be one character (or 'tab'); got {text!r}")
    return sep


def _warn_identifiers(table, features, kinds):
    """Warn about text columns with a different value on every row (IDs?)."""
    for name, kind in zip(features, kinds, strict=True):
        values = [v for v in table.column(name) if v not in MISSING]
        if kind == "categorical" and len(values) > 10 and \
                len(set(values)) == len(values):
            print(f"skinfluence explain: warning: column {name!r} has a different "
                  "value on every row, so its one-hot encoding cannot generalise; if "
                  "it identifies rows, pass --id-column or --drop", file=sys.stderr)


def _run_explain(args):
    import numpy as np

    from .explainer import InfluenceExplainer

    if args.top < 1:
        raise CLIError(f"--top must be at least 1; got {args.top}")
    if not args.C > 0:
        raise CLIError(f"--C must be positive; got {args.C}")
    fmt = _check_output(args)
    sep = _separator(args.sep)
    regression = args.model == "ridge"

    data = _read_table(args.data, sep=sep)
    features = _feature_columns(args, data)
    kinds = _column_kinds(data, features, args.decimal)
    y_all = _labels(data, args.target, args.model, args.decimal)
    ids = _row_ids(data, args.id_column)
    X_all = _feature_matrix(data, features, kinds, args.decimal, args.impute)

    if args.test_file is not None:
        test = _read_table(args.test_file, "test file", sep=sep)
        needed = [*features, args.target] + ([args.id_column] if ids else [])
        missing = [c for c in needed if c not in test.header]
        if missing:
            raise CLIError(f"test file {args.test_file} lacks column(s) "
                           f"{', '.join(map(repr, missing[:10]))} of {args.data}")
        X_test = _feature_matrix(test, features, kinds, args.decimal, args.impute)
        y_test = _labels(test, args.target, args.model, args.decimal)
        train_pos = np.arange(len(y_all))
        test_rows = test.numbers
        test_ids = _row_ids(test, args.id_column)
    else:
        test_pos = _parse_rows(args.test_rows, data, ids)
        train_pos = np.setdiff1d(np.arange(len(y_all)), test_pos)
        X_test, y_test = X_all[test_pos], y_all[test_pos]
        test_rows = data.numbers[test_pos]
        test_ids = None if ids is None else [ids[i] for i in test_pos]
    X_train, y_train = X_all[train_pos], y_all[train_pos]
    if not regression:
        unseen = sorted(set(np.unique(y_test).tolist()) - set(y_train.tolist()))
        if unseen:
            n_values = len(np.unique(y_all))
            hint = (f"; the target has {n_values} distinct numeric values: if it is a "
                    "quantity rather than a class, use --model ridge"
                    if y_all.dtype.kind in "iuf" and n_values > 10 else "")
            raise CLIError(f"test label(s) {unseen[:10]} do not occur in the training "
                           f"rows{hint}")
    if args.top > len(y_train):
        raise CLIError(f"--top {args.top} exceeds the {len(y_train)} training rows")
    _warn_identifiers(data, features, kinds)

    model = _build_model(args.model, args.C)
    pipeline = _build_pipeline(kinds, model, args.standardize, args.impute)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            explainer = InfluenceExplainer(pipeline).fit(X_train, y_train)
            top = _top_rows(explainer, X_test, y_test, args.top, args.method)
        except (ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise CLIError(f"cannot explain {type(model).__name__}: {first}") from None
    for w in caught:
        if not issubclass(w.category, DeprecationWarning):
            message = str(w.message).strip().splitlines()[0]
            print(f"skinfluence explain: warning: {message}", file=sys.stderr)

    records = []
    for t, test_row in enumerate(test_rows):
        for kind in ("helpful", "harmful"):
            idx, scores, changes = top[kind]
            sign = -1.0 if kind == "helpful" else 1.0
            for rank in range(idx.shape[1]):
                if not sign * scores[t, rank] > 0:  # no effect of this sign left
                    break
                j = int(idx[t, rank])
                record = {
                    "test_row": int(test_row), "test_label": _plain(y_test[t]),
                    "kind": kind, "rank": rank + 1,
                    "train_row": int(data.numbers[train_pos[j]]),
                    "train_label": _plain(y_train[j]),
                    "score": float(scores[t, rank]),
                    "loss_change": float(changes[t, rank]),
                }
                if ids is not None:
                    record["test_id"] = test_ids[t]
                    record["train_id"] = ids[train_pos[j]]
                records.append(record)

    encoded = explainer.estimator_[:-1].get_feature_names_out(features).tolist()
    columns = _output_columns(ids is not None)
    records = [{c: r[c] for c in columns} for r in records]
    if args.output is not None:  # before printing: a closed pipe must not lose it
        _write(records, columns, args.output, fmt, {
            "data": args.data, "target": args.target, "model": args.model,
            "C": args.C, "method": args.method, "standardized": args.standardize,
            "n_train": len(y_train), "features": features,
            "numeric_features": [f for f, k in zip(features, kinds, strict=True)
                                 if k == "numeric"],
            "categorical_features": [f for f, k in zip(features, kinds, strict=True)
                                     if k == "categorical"],
            "encoded_features": encoded, "id_column": args.id_column,
            "impute": args.impute, "separator": data.sep,
        })
    source = (f"rows of {args.test_file}" if args.test_file is not None else
              f"held-out rows of {args.data}")
    print(f"{type(model).__name__} on {len(y_train)} training rows x "
          f"{_describe(kinds, len(encoded), args)}; explaining {len(test_rows)} "
          f"{source} (method={args.method}).")
    print("score: influence on the test loss (> 0 harmful, < 0 helpful); "
          "loss_change: predicted change of the test loss if the training row is "
          "removed.")
    _print_table(records, columns, limit=args.top * 2 * 5)
    if args.output is not None:
        print(f"Wrote {len(records)} rows to {args.output}.")
    return 0


def _describe(kinds, n_encoded, args):
    """"6 features (4 numeric standardised, 2 categorical one-hot: 9 inputs)"."""
    n_num, n_cat = kinds.count("numeric"), kinds.count("categorical")
    parts = []
    if n_num:
        parts.append(f"{n_num} numeric{' standardised' if args.standardize else ''}")
    if n_cat:
        parts.append(f"{n_cat} categorical one-hot encoded")
    text = f"{len(kinds)} features ({', '.join(parts)}"
    if n_encoded != len(kinds):
        text += f": {n_encoded} model inputs"
    if args.impute:
        text += f"; missing cells imputed ({args.impute})"
    return text + ")"


def _output_columns(with_ids):
    if not with_ids:
        return OUTPUT_COLUMNS
    return ("test_row", "test_id", *OUTPUT_COLUMNS[1:4], "train_row", "train_id",
            *OUTPUT_COLUMNS[5:])


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _print_table(records, columns, limit):
    cells = [[str(r[c]) if c not in ("score", "loss_change") else f"{r[c]:+.4g}"
              for c in columns] for r in records[:limit]]
    widths = [max([len(c), *(len(row[i]) for row in cells)])
              for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    if len(records) > limit:
        print(f"... {len(records) - limit} more rows (use --output to save them all)")


def _write(records, columns, path, fmt, meta):
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            if fmt == "csv":
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                writer.writerows(records)
            else:
                json.dump({**meta, "results": records}, f, indent=1)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc}") from None


EXPLAIN_EPILOG = """\
example:
  patients.csv (any of , ; or tab between columns; a header row of names):

    patient_id,age,smoker,city,diagnosis
    P-001,54,yes,Lyon,malignant
    P-002,61,no,,benign
    ...

  skinfluence explain patients.csv --target diagnosis --id-column patient_id \\
      --test-rows P-001,P-017 --impute most_frequent --top 5 --output influence.csv

  fits a logistic regression of diagnosis on age, smoker and city (text columns
  such as smoker and city are one-hot encoded; the empty city is imputed) on every
  patient except P-001 and P-017, then lists, for each of those two, the 5
  training patients that most helped and the 5 that most harmed its prediction,
  and saves them to influence.csv (overwritten only with --force; the data file
  never).

rows:
  Without --id-column, --test-rows takes row numbers: numbered from 0, the header
  not counted; a blank line is skipped but keeps its number (row k is on line
  k + 2). With --id-column, it takes IDs; write #k for row number k.

features:
  All columns but the target and the ID (or those chosen with --features or
  --drop). Columns of numbers are standardised (zero mean, unit variance over the
  training rows) unless --no-standardize; other columns are one-hot encoded
  (a category unseen in training encodes as all zeros). Empty cells and NA, N/A,
  #N/A, NaN, NULL are missing: an error unless --impute. The preprocessing is
  fitted on the training rows and held fixed; the model is explained on the
  encoded features (their names are in the .json output's encoded_features).

output columns:
  test_row      the explained row (of the data file, or of --test-file)
  test_id       its ID (with --id-column)
  test_label    its target value
  kind          helpful (lowers the test loss) or harmful (raises it)
  rank          1 = most helpful / most harmful
  train_row     the training row (numbered as in the data file)
  train_id      its ID (with --id-column)
  train_label   its target value
  score         influence of the training row on the test loss (Koh & Liang's
                I_up,loss: > 0 harmful, < 0 helpful); with --method newton,
                -n * loss_change (n = number of training rows)
  loss_change   predicted change of the test loss if the training row is
                removed and the model refit (< 0 for harmful rows)

Only rows with an effect of the listed sign are given, so fewer than --top rows
may appear (e.g. for a test point outside a LinearSVC's margin, whose loss is
flat: no row influences it).
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
    explain.add_argument("data", help="CSV file with a header row of column names: "
                         "the target column and feature columns")
    explain.add_argument("--target", required=True, metavar="COLUMN",
                         help="name of the target (label) column")
    explain.add_argument("--id-column", metavar="COLUMN",
                         help="column of unique row IDs: not a feature; labels the "
                         "rows in the results and is what --test-rows takes")
    chosen = explain.add_mutually_exclusive_group()
    chosen.add_argument("--features", metavar="COLS",
                        help="comma-separated feature columns (default: all but the "
                        "target and ID)")
    chosen.add_argument("--drop", metavar="COLS",
                        help="comma-separated columns not to use as features")
    explain.add_argument("--impute", choices=("mean", "median", "most_frequent"),
                         help="fill missing feature cells (numeric columns: this "
                         "statistic of the training rows; text columns: the most "
                         "frequent value); default: missing cells are an error")
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
                       "e.g. 0,5,9 (numbered from 0, header not counted), or IDs "
                       "with --id-column; they are held out of training")
    where.add_argument("--test-file", metavar="CSV",
                       help="CSV file of test rows to explain, with the same feature "
                       "and target (and ID) columns; all rows of the data file train")
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
    explain.add_argument("--sep", metavar="CHAR",
                         help="column separator, e.g. ';' or tab (default: detected "
                         "among , ; and tab)")
    explain.add_argument("--decimal", choices=(".", ","), default=".", metavar="MARK",
                         help="decimal mark of the numbers: . or , (default: .)")
    explain.add_argument("--no-standardize", dest="standardize",
                         action="store_false",
                         help="fit on the raw numeric features instead of "
                         "standardised ones")
    explain.set_defaults(func=_explain)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `skinfluence explain ... | head`: stop quietly
        try:  # and keep Python's exit-time flush from raising again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
