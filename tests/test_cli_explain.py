"""`skinfluence explain`: output against the explainer computed directly, and errors."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer
from skinfluence.cli import main

N_ROWS, N_FEATURES = 150, 6


@pytest.fixture(scope="module")
def data():
    X, y = load_breast_cancer(return_X_y=True)
    return X[:N_ROWS, :N_FEATURES], y[:N_ROWS]


def _write_csv(path, X, y, names=None, target="diagnosis", labels=None):
    names = names or [f"f{i}" for i in range(X.shape[1])]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names[:2], target, *names[2:]])  # target not last
        for row, label in zip(X, y if labels is None else labels, strict=True):
            writer.writerow([*map(float, row[:2]), label, *map(float, row[2:])])
    return path


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _standardise(X_train, X_test):
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    return (X_train - mean) / std, (X_test - mean) / std


def _logistic(C=1.0):
    return LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10, max_iter=1000)


def _expected(explainer, X_test, y_test, k, train_rows, test_ids):
    """Rows the CLI should write, from most_influential, keyed by (test, kind, rank)."""
    n = len(train_rows)
    out = {}
    for kind, sign in (("helpful", -1), ("harmful", 1)):
        idx, scores = explainer.most_influential(X_test, y_test, k=k, kind=kind)
        for t, test_id in enumerate(test_ids):
            for rank in range(k):
                if sign * scores[t, rank] > 0:
                    out[(test_id, kind, rank + 1)] = (
                        train_rows[idx[t, rank]], scores[t, rank], -scores[t, rank] / n
                    )
    return out


def _check_records(records, expected):
    got = {(int(r["test_row"]), r["kind"], int(r["rank"])):
           (int(r["train_row"]), float(r["score"]), float(r["loss_change"]))
           for r in records}
    assert got.keys() == expected.keys()
    for key, (row, score, change) in expected.items():
        assert got[key][0] == row, key
        np.testing.assert_allclose(got[key][1:], (score, change), rtol=1e-9,
                                   atol=1e-300)


def test_test_rows_csv_output_matches_most_influential(data, tmp_path, capsys):
    X, y = data
    path = _write_csv(tmp_path / "data.csv", X, y)
    out = tmp_path / "out.csv"
    test_ids = [0, 5, 9, 40]
    code = main(["explain", str(path), "--target", "diagnosis", "--test-rows",
                 "0,5,9,40", "--top", "4", "--C", "0.5", "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "test_row" in printed and "train_row" in printed
    assert "LogisticRegression on 146 training rows" in printed

    train_rows = np.setdiff1d(np.arange(N_ROWS), test_ids)
    X_tr, X_te = _standardise(X[train_rows], X[test_ids])
    explainer = InfluenceExplainer(_logistic(0.5)).fit(X_tr, y[train_rows])
    records = _read_csv(out)
    assert list(records[0]) == ["test_row", "test_label", "kind", "rank", "train_row",
                                "train_label", "score", "loss_change"]
    _check_records(records, _expected(explainer, X_te, y[test_ids], 4, train_rows,
                                      test_ids))
    for r in records:  # labels are those of the data file's rows
        assert int(r["train_label"]) == y[int(r["train_row"])]
        assert int(r["test_label"]) == y[int(r["test_row"])]
        assert int(r["train_row"]) not in test_ids


def test_test_file_json_string_labels(data, tmp_path):
    X, y = data
    labels = np.where(y == 1, "benign", "malignant")
    path = _write_csv(tmp_path / "train.csv", X[:120], y[:120], labels=labels[:120])
    test = _write_csv(tmp_path / "test.csv", X[120:130], y[120:130],
                      labels=labels[120:130])
    out = tmp_path / "out.json"
    assert main(["explain", str(path), "--target", "diagnosis", "--test-file",
                 str(test), "--top", "3", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "logistic" and result["n_train"] == 120
    assert result["features"] == [f"f{i}" for i in range(N_FEATURES)]

    X_tr, X_te = _standardise(X[:120], X[120:130])
    explainer = InfluenceExplainer(_logistic()).fit(X_tr, labels[:120])
    expected = _expected(explainer, X_te, labels[120:130], 3, np.arange(120),
                         range(10))
    _check_records(result["results"], expected)
    assert {r["train_label"] for r in result["results"]} <= {"benign", "malignant"}


def test_newton_method_and_linear_svc(data, tmp_path):
    X, y = data
    path = _write_csv(tmp_path / "data.csv", X, y)
    out = tmp_path / "out.csv"
    # test rows inside the margin (outside it the squared hinge is flat: no influence)
    Xs = _standardise(X, X)[0]
    margin = LinearSVC().fit(Xs, y).decision_function(Xs) * (2 * y - 1)
    test_ids = sorted(np.argsort(np.abs(margin - 0.5))[:3].tolist())
    assert main(["explain", str(path), "--target", "diagnosis", "--test-rows",
                 ",".join(map(str, test_ids)), "--model", "linear-svc", "--method",
                 "newton", "--top", "3", "--output", str(out)]) == 0
    train_rows = np.setdiff1d(np.arange(N_ROWS), test_ids)
    X_tr, X_te = _standardise(X[train_rows], X[test_ids])
    model = LinearSVC(C=1.0, tol=1e-10, max_iter=100_000)
    explainer = InfluenceExplainer(model).fit(X_tr, y[train_rows])
    delta = explainer.leave_one_out(X_te, y[test_ids], method="newton")
    records = _read_csv(out)
    assert len(records) >= 6
    n = len(train_rows)
    for r in records:
        t = test_ids.index(int(r["test_row"]))
        j = np.searchsorted(train_rows, int(r["train_row"]))
        np.testing.assert_allclose(float(r["loss_change"]), delta[t, j], rtol=1e-9)
        np.testing.assert_allclose(float(r["score"]), -n * delta[t, j], rtol=1e-9)
        # helpful: removing the row raises the loss, ranked by how much
        sign = 1 if r["kind"] == "helpful" else -1
        assert sign * delta[t, j] > 0
        rank = int(r["rank"])
        assert sign * delta[t, j] == pytest.approx(np.sort(sign * delta[t])[::-1][
            rank - 1])


def test_ridge_without_standardising(data, tmp_path):
    X, y = data
    target = X[:, 0] * 0.3 + y
    path = _write_csv(tmp_path / "data.csv", X[:, 1:], target,
                      names=[f"g{i}" for i in range(N_FEATURES - 1)], target="value")
    out = tmp_path / "out.csv"
    assert main(["explain", str(path), "--target", "value", "--model", "ridge",
                 "--C", "0.1", "--test-rows", "2", "--top", "5", "--no-standardize",
                 "--output", str(out)]) == 0
    train_rows = np.setdiff1d(np.arange(N_ROWS), [2])
    explainer = InfluenceExplainer(Ridge(alpha=10.0)).fit(X[train_rows, 1:],
                                                          target[train_rows])
    _check_records(_read_csv(out), _expected(explainer, X[[2], 1:], target[[2]], 5,
                                             train_rows, [2]))


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("skinfluence explain: error: ")
    return err


def test_errors(data, tmp_path, capsys):
    X, y = data
    path = str(_write_csv(tmp_path / "data.csv", X[:30], y[:30]))
    base = ["explain", path, "--target", "diagnosis"]

    err = _error(capsys, ["explain", str(tmp_path / "missing.csv"), "--target", "y",
                          "--test-rows", "0"])
    assert "not found" in err and "missing.csv" in err
    err = _error(capsys, ["explain", path, "--target", "label", "--test-rows", "0"])
    assert "column 'label' not found" in err and "'diagnosis'" in err
    err = _error(capsys, [*base, "--test-rows", "0,99"])
    assert "out of range" in err and "[99]" in err
    err = _error(capsys, [*base, "--test-rows", "a,b"])
    assert "comma-separated" in err
    err = _error(capsys, [*base, "--test-rows", "0", "--output", "out.txt"])
    assert ".csv or .json" in err

    lines = (tmp_path / "data.csv").read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[0], "abc", 1)
    bad = tmp_path / "text.csv"
    bad.write_text("\n".join(lines[:4]) + "\n")
    err = _error(capsys, [*base, "--test-file", str(bad)])  # f0 numeric in training
    assert "column 'f0' is numeric in the data file but row 2 of" in err
    assert "holds 'abc'" in err

    test = tmp_path / "test.csv"
    test.write_text("f0,f1\n1,2\n")
    err = _error(capsys, [*base, "--test-file", str(test)])
    assert "lacks column(s)" in err and "'diagnosis'" in err

    one_class = str(_write_csv(tmp_path / "one.csv", X[:10], np.zeros(10, int)))
    err = _error(capsys, ["explain", one_class, "--target", "diagnosis",
                          "--test-rows", "0"])
    assert "cannot explain LogisticRegression" in err

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "is empty" in _error(capsys, ["explain", str(empty), "--target", "y",
                                         "--test-rows", "0"])

    with pytest.raises(SystemExit) as exc:  # argparse: --target is required
        main(["explain", path, "--test-rows", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:  # one of --test-rows / --test-file
        main(["explain", path, "--target", "diagnosis"])
    assert exc.value.code == 2


def test_help_has_an_example():
    result = subprocess.run(
        [sys.executable, "-m", "skinfluence", "explain", "--help"],
        capture_output=True, text=True, check=True,
    )
    assert "example:" in result.stdout and "--test-rows P-001,P-017" in result.stdout
    assert "standardised" in result.stdout and "loss_change" in result.stdout
    assert "one-hot" in result.stdout and "--impute" in result.stdout
