"""`skinfluence explain` on tables as exported (issue 17): IDs, text columns, missing
cells, `;`/tab separators, quotes, a BOM.

Oracle: pandas reads the same file independently, the test builds the scikit-learn
Pipeline itself (ColumnTransformer: impute + scale numeric columns, impute + one-hot
text columns) and explains it with InfluenceExplainer; the CLI must report the same
training rows with the same scores.
"""

import csv
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.cli import main

CITIES = ("Lyon", "Paris", "Nantes; Sud", 'Le "Port"')  # a separator and quotes


def _frame(n=60, seed=0):
    """A patients-like table: ID, two numeric and two text features, a label."""
    rng = np.random.default_rng(seed)
    age = rng.normal(50, 10, n).round(1)
    dose = rng.normal(2, 1, n).round(3)
    city = rng.choice(CITIES, n)
    smoker = rng.choice(["yes", "no"], n)
    logit = 0.08 * (age - 50) + (smoker == "yes") + (city == "Paris") - 0.5
    label = np.where(logit + rng.normal(0, 1, n) > 0, "sick", "well")
    frame = pd.DataFrame({"patient": [f"P-{i:03d}" for i in range(n)], "age": age,
                          "city": city, "dose": dose, "smoker": smoker,
                          "status": label})
    return frame.astype({"age": object, "dose": object, "city": object,
                         "smoker": object})


def _write(frame, path, sep, bom=False, missing=()):
    """Write ``frame`` with csv (quoting as needed); ``missing`` cells left empty."""
    cells = frame.astype(str).to_numpy().tolist()
    for i, c in missing:
        cells[i][frame.columns.get_loc(c)] = ""
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        writer = csv.writer(f, delimiter=sep)
        writer.writerow(frame.columns)
        writer.writerows(cells)
    return path


def _oracle_pipeline(numeric, categorical, model, impute=None, scale=True):
    num = ([SimpleImputer(strategy=impute)] if impute else []) + \
        ([StandardScaler()] if scale else [])
    cat = ([SimpleImputer(strategy="most_frequent")] if impute else []) + \
        [OneHotEncoder(handle_unknown="ignore")]
    columns = ColumnTransformer([
        ("num", make_pipeline(*num) if num else "passthrough", numeric),
        ("cat", make_pipeline(*cat), categorical),
    ], verbose_feature_names_out=False)
    return Pipeline([("columns", columns), ("model", model)])


def _logistic():
    return LogisticRegression(solver="newton-cholesky", tol=1e-10, max_iter=1000)


def _compare(records, explainer, X_test, y_test, test_ids, train_ids, k):
    """The CLI's records equal most_influential's top-k (IDs, scores)."""
    got = {(r["test_id"], r["kind"], int(r["rank"])): (r["train_id"], float(r["score"]))
           for r in records}
    expected = {}
    for kind, sign in (("helpful", -1), ("harmful", 1)):
        idx, scores = explainer.most_influential(X_test, y_test, k=k, kind=kind)
        for t, test_id in enumerate(test_ids):
            for rank in range(k):
                if sign * scores[t, rank] > 0:
                    expected[(test_id, kind, rank + 1)] = (train_ids[idx[t, rank]],
                                                           scores[t, rank])
    assert got.keys() == expected.keys() and len(got) >= 2 * len(test_ids)
    for key, (train_id, score) in expected.items():
        assert got[key][0] == train_id, key
        assert got[key][1] == pytest.approx(score, rel=1e-9, abs=1e-300), key


@pytest.mark.parametrize("sep", [";", "\t"])
def test_ids_text_columns_missing_cells_match_the_pipeline(tmp_path, capsys, sep):
    frame = _frame()
    missing = [(3, "age"), (7, "city"), (12, "dose"), (20, "smoker")]
    path = _write(frame, tmp_path / "patients.csv", sep, bom=True, missing=missing)
    out = tmp_path / "out.json"
    test_ids = ["P-004", "P-007", "P-031"]  # P-007 has a missing city
    assert main(["explain", str(path), "--target", "status", "--id-column", "patient",
                 "--test-rows", "P-004,#7,P-031", "--impute", "median", "--top", "4",
                 "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 features (2 numeric standardised, 2 categorical one-hot encoded: 8 " \
        "model inputs; missing cells imputed (median))" in printed
    assert "P-004" in printed and "train_id" in printed
    result = json.loads(out.read_text())
    assert result["separator"] == sep and result["id_column"] == "patient"
    assert result["numeric_features"] == ["age", "dose"]
    assert result["categorical_features"] == ["city", "smoker"]

    # oracle: pandas reads the file, the test builds the Pipeline
    df = pd.read_csv(path, sep=sep, encoding="utf-8-sig")
    assert df["city"].isna().sum() == 1 and set(df["city"].dropna()) == set(CITIES)
    test = df["patient"].isin(test_ids).to_numpy()
    features = ["age", "city", "dose", "smoker"]
    pipe = _oracle_pipeline(["age", "dose"], ["city", "smoker"], _logistic(),
                            impute="median")
    explainer = InfluenceExplainer(pipe).fit(df.loc[~test, features],
                                             df.loc[~test, "status"])
    assert result["encoded_features"] == \
        explainer.estimator_[:-1].get_feature_names_out().tolist()
    assert "city_Nantes; Sud" in result["encoded_features"]
    _compare(result["results"], explainer, df.loc[test, features],
             df.loc[test, "status"].to_numpy(), df.loc[test, "patient"].tolist(),
             df.loc[~test, "patient"].to_numpy(), 4)
    rows = {r["train_id"]: r["train_row"] for r in result["results"]}
    assert all(rows[i] == int(i[2:]) for i in rows)  # row numbers kept


def test_test_file_features_ridge_no_standardize(tmp_path):
    frame = _frame(80, seed=1)
    frame["score"] = np.round(frame["age"].astype(float) * 0.1
                              + (frame["smoker"] == "yes"), 3)
    train = _write(frame.iloc[:70], tmp_path / "train.tsv", "\t")
    test = _write(frame.iloc[70:], tmp_path / "test.tsv", "\t")
    out = tmp_path / "out.csv"
    assert main(["explain", str(train), "--target", "score", "--model", "ridge",
                 "--id-column", "patient", "--features", "smoker,age",
                 "--no-standardize", "--test-file", str(test), "--top", "3",
                 "--output", str(out)]) == 0
    records = list(csv.DictReader(open(out, newline="")))
    assert list(records[0])[:2] == ["test_row", "test_id"]

    df_tr = pd.read_csv(train, sep="\t")
    df_te = pd.read_csv(test, sep="\t")
    pipe = _oracle_pipeline(["age"], ["smoker"], Ridge(alpha=1.0), scale=False)
    explainer = InfluenceExplainer(pipe).fit(df_tr[["age", "smoker"]], df_tr["score"])
    _compare(records, explainer, df_te[["age", "smoker"]], df_te["score"].to_numpy(),
             df_te["patient"].tolist(), df_tr["patient"].to_numpy(), 3)
    assert {int(r["test_row"]) for r in records} <= set(range(10))


def test_drop_comma_decimals_and_explicit_sep(tmp_path):
    frame = _frame(50, seed=2)
    text = frame.drop(columns="city").astype(str)
    text["dose"] = text["dose"].str.replace(".", ",")
    path = tmp_path / "pipes.csv"
    path.write_text("\n".join("|".join(row) for row in
                              [list(text.columns), *text.to_numpy().tolist()]) + "\n")
    out = tmp_path / "out.json"
    assert main(["explain", str(path), "--sep", "|", "--decimal", ",", "--target",
                 "status", "--id-column", "patient", "--drop", "age",
                 "--test-rows", "P-010", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["features"] == ["dose", "smoker"]
    df = pd.read_csv(path, sep="|", decimal=",")
    test = (df["patient"] == "P-010").to_numpy()
    pipe = _oracle_pipeline(["dose"], ["smoker"], _logistic())
    explainer = InfluenceExplainer(pipe).fit(df.loc[~test, ["dose", "smoker"]],
                                             df.loc[~test, "status"])
    _compare(result["results"], explainer, df.loc[test, ["dose", "smoker"]],
             df.loc[test, "status"].to_numpy(), ["P-010"],
             df.loc[~test, "patient"].to_numpy(), 5)


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("skinfluence explain: error: ")
    return err


def test_errors(tmp_path, capsys):
    frame = _frame(30)
    path = str(_write(frame, tmp_path / "p.csv", ";", missing=[(5, "dose"),
                                                               (9, "age")]))
    base = ["explain", path, "--target", "status"]

    err = _error(capsys, [*base, "--test-rows", "0"])
    assert "missing value" in err and "row 5, column 'dose'" in err
    assert "--impute" in err
    err = _error(capsys, [*base, "--test-rows", "0", "--features", "age,weight"])
    assert "--features: unknown column(s) 'weight'" in err and "'smoker'" in err
    err = _error(capsys, [*base, "--test-rows", "0", "--drop", "height"])
    assert "--drop: unknown column(s) 'height'" in err
    err = _error(capsys, [*base, "--test-rows", "0", "--features", "age,status"])
    assert "the target column" in err
    with pytest.raises(SystemExit) as exc:
        main([*base, "--test-rows", "0", "--features", "age", "--drop", "dose"])
    assert exc.value.code == 2
    capsys.readouterr()

    ids = [*base, "--id-column", "patient", "--impute", "mean"]
    err = _error(capsys, [*ids, "--test-rows", "P-999"])
    assert "no row has ID 'P-999'" in err and "'P-000'" in err
    err = _error(capsys, [*ids, "--test-rows", "3"])
    assert "write #3" in err
    dup = frame.copy()
    dup.loc[4, "patient"] = "P-001"
    dup_path = str(_write(dup, tmp_path / "dup.csv", ","))
    err = _error(capsys, ["explain", dup_path, "--target", "status", "--id-column",
                          "patient", "--test-rows", "P-000"])
    assert "repeats 'P-001' (rows 1 and 4)" in err

    comma = frame.astype(str)
    comma["dose"] = comma["dose"].str.replace(".", ",")
    comma_path = str(_write(comma, tmp_path / "comma.csv", ";"))
    err = _error(capsys, ["explain", comma_path, "--target", "status",
                          "--id-column", "patient", "--test-rows", "P-000"])
    assert "decimal comma" in err and "--decimal ," in err

    for name, content, message in (
        ("notes.txt", b"just some words\nand more words\n", "does not look like a table"),
        ("blob.csv", bytes(range(256)) * 4, "is not a UTF-8 text file"),
        ("nul.csv", b"a,b\x00,c\n1,2,3\n", "is a binary file"),
    ):
        bad = tmp_path / name
        bad.write_bytes(content)
        err = _error(capsys, ["explain", str(bad), "--target", "y", "--test-rows",
                              "0"])
        assert message in err


def test_identifier_like_text_column_warns(tmp_path, capsys):
    frame = _frame(30)
    path = _write(frame, tmp_path / "p.csv", ",")
    assert main(["explain", str(path), "--target", "status", "--test-rows", "0",
                 "--top", "2"]) == 0
    err = capsys.readouterr().err
    assert "'patient' has a different value on every row" in err
    assert "--id-column" in err


def test_cells_with_line_breaks_and_odd_whitespace(tmp_path):
    """Only \\n and \\r end records; quoted line breaks, form feeds and U+2028 in a
    cell stay in it."""
    frame = _frame(24, seed=3)
    frame["city"] = np.where(np.arange(24) % 3 == 0, "Saint\u2028Malo",
                             np.where(np.arange(24) % 3 == 1, "Brest\x0cNord",
                                      "Caen\nOuest"))
    path = _write(frame, tmp_path / "p.csv", ";")
    out = tmp_path / "out.json"
    assert main(["explain", str(path), "--target", "status", "--id-column",
                 "patient", "--test-rows", "P-005", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["encoded_features"][2:5] == ["city_Brest\x0cNord", "city_Caen\nOuest",
                                               "city_Saint\u2028Malo"]
    assert {r["train_row"] for r in result["results"]} <= set(range(24))
