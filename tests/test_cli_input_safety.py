"""`skinfluence explain` refuses inputs it would misread and outputs it would destroy.

Regression tests: each case below once exited 0 with wrong results, lost the user's
data, or reported a misleading error.
"""

import csv
import os

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceExplainer
from skinfluence.cli import main


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def table(tmp_path):
    """A small numeric classification table: columns a, b, label."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 2))
    y = (X[:, 0] + 0.5 * rng.normal(size=24) > 0).astype(int)
    rows = [[*map(float, x), int(label)] for x, label in zip(X, y, strict=True)]
    return _write(tmp_path / "data.csv", ["a", "b", "label"], rows), X, y


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("skinfluence explain: error: ")
    return err


def test_output_that_is_the_data_file_is_refused(table, tmp_path, capsys,
                                                 monkeypatch):
    path, _, _ = table
    before = path.read_bytes()
    base = ["explain", str(path), "--target", "label", "--test-rows", "0"]
    # same string, a ./ variant, and a symlink: all the data file, even with --force
    monkeypatch.chdir(tmp_path)
    os.symlink(path, tmp_path / "link.csv")
    for output in (str(path), "./data.csv", "sub/../data.csv", "link.csv"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        err = _error(capsys, [*base, "--output", output, "--force"])
        assert "is the data file" in err and "choose another output" in err
        assert path.read_bytes() == before

    test = _write(tmp_path / "test.csv", ["a", "b", "label"], [[0.1, 0.2, 1]])
    err = _error(capsys, ["explain", str(path), "--target", "label", "--test-file",
                          str(test), "--output", "./test.csv", "--force"])
    assert "is the test file" in err


def test_existing_output_needs_force(table, tmp_path, capsys):
    path, _, _ = table
    out = tmp_path / "out.csv"
    out.write_text("keep me\n")
    base = ["explain", str(path), "--target", "label", "--test-rows", "0",
            "--output", str(out)]
    err = _error(capsys, base)
    assert "already exists" in err and "--force" in err
    assert out.read_text() == "keep me\n"
    assert main([*base, "--force"]) == 0
    assert out.read_text().startswith("test_row,")


def test_directory_as_data_path(tmp_path, capsys):
    err = _error(capsys, ["explain", str(tmp_path), "--target", "y", "--test-rows",
                          "0"])
    assert "is a directory" in err and "not found" not in err


def test_duplicated_column_names(table, tmp_path, capsys):
    _, X, y = table
    rows = [[*x, x[0], label] for x, label in zip(X, y, strict=True)]
    path = _write(tmp_path / "dup.csv", ["a", "b", "a", "label"], rows)
    err = _error(capsys, ["explain", str(path), "--target", "label", "--test-rows",
                          "0"])
    assert "duplicated column name(s) 'a'" in err


def test_blank_lines_keep_row_numbers(table, tmp_path, capsys):
    """Blank lines are skipped; rows keep the number they have in the file."""
    path, X, y = table
    lines = path.read_text().splitlines()
    # a blank line after data row 2 and one after the last row; data rows 3.. move
    # down one line and are numbered 4.. (row k on line k + 2)
    lines = [*lines[:4], "", *lines[4:], ""]
    blank = tmp_path / "blank.csv"
    blank.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    # row 6 of the file is data row 5 of the original
    assert main(["explain", str(blank), "--target", "label", "--test-rows", "6",
                 "--no-standardize", "--top", "3", "--output", str(out)]) == 0
    records = list(csv.DictReader(open(out, newline="")))
    assert {int(r["test_row"]) for r in records} == {6}

    keep = np.setdiff1d(np.arange(24), [5])
    explainer = InfluenceExplainer(LogisticRegression(
        solver="newton-cholesky", tol=1e-10, max_iter=1000)).fit(X[keep], y[keep])
    idx, _ = explainer.most_influential(X[[5]], y[[5]], k=3, kind="harmful")
    file_row = np.where(keep[idx[0]] >= 3, keep[idx[0]] + 1, keep[idx[0]])
    harmful = [int(r["train_row"]) for r in records if r["kind"] == "harmful"]
    assert harmful == file_row[:len(harmful)].tolist() and harmful
    assert 3 not in {int(r["train_row"]) for r in records}  # the blank line

    err = _error(capsys, ["explain", str(blank), "--target", "label", "--test-rows",
                          "3"])
    assert "[3]" in err and "blank" in err


def test_continuous_target_with_a_classifier(table, tmp_path, capsys):
    _, X, _ = table
    rows = [[*x, 2 * x[0] + 0.1] for x in X]
    path = _write(tmp_path / "cont.csv", ["a", "b", "value"], rows)
    for model in ("logistic", "linear-svc"):
        err = _error(capsys, ["explain", str(path), "--target", "value", "--test-rows",
                              "0", "--model", model])
        assert f"--model {model} needs class labels" in err
        assert "24 distinct numeric values" in err and "--model ridge" in err
    assert main(["explain", str(path), "--target", "value", "--test-rows", "0",
                 "--model", "ridge"]) == 0
    capsys.readouterr()

    # whole numbers with many values (an age, a price): a class never seen in training
    rows = [[*x, 20 + i] for i, x in enumerate(X)]
    path = _write(tmp_path / "ages.csv", ["a", "b", "age"], rows)
    err = _error(capsys, ["explain", str(path), "--target", "age", "--test-rows", "0"])
    assert "test label(s) [20] do not occur" in err
    assert "24 distinct numeric values" in err and "--model ridge" in err


def test_missing_value_names_row_and_column(table, tmp_path, capsys):
    _, X, y = table
    rows = [[*map(float, x), label] for x, label in zip(X, y, strict=True)]
    rows[3][1] = ""
    path = _write(tmp_path / "miss.csv", ["a", "b", "label"], rows)
    err = _error(capsys, ["explain", str(path), "--target", "label", "--test-rows",
                          "0"])
    assert "missing value" in err and "row 3, column 'b'" in err
    assert "non-numeric" not in err


def test_output_is_written_before_printing(table, tmp_path, monkeypatch):
    """`... | head` closes stdout early: the output file is complete all the same."""
    import skinfluence.cli as cli

    def closed_pipe(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "_print_table", closed_pipe)
    path, _, _ = table
    out = tmp_path / "out.csv"
    assert main(["explain", str(path), "--target", "label", "--test-rows", "0,1",
                 "--top", "2", "--output", str(out)]) == 0
    assert len(list(csv.DictReader(open(out, newline="")))) == 8
