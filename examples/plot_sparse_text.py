"""
===============================================
Sparse, text-like data
===============================================

Bag-of-words features are sparse: most entries are zero. The explainer accepts
``scipy.sparse`` matrices (CSR, CSC, COO) for training and test data; X is kept
in CSR format, and the scores are one matrix product per batch of test rows.

This example draws a small random "document × term" count matrix with a sparse
linear rule for the labels, fits a logistic regression on it, and checks the
leave-one-out predictions against refits with
:func:`skinfluence.analysis.validate`. A second, wider matrix (more terms than
documents) shows the Hessian solvers for wide data.
"""

# %%
# A sparse document-term matrix
# -----------------------------
import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from skinfluence import InfluenceDisplay, InfluenceExplainer
from skinfluence.analysis import validate

rng = np.random.default_rng(0)
n_docs, n_terms = 1500, 300
counts = sp.random(n_docs, n_terms, density=0.03, format="csr", random_state=0,
                   data_rvs=lambda size: rng.poisson(2.0, size) + 1.0)
X = normalize(counts.log1p())  # sublinear tf, unit length rows (tf-idf-like)
w = np.zeros(n_terms)
w[rng.choice(n_terms, 30, replace=False)] = rng.normal(0, 8, 30)
y = (X @ w + rng.normal(0, 0.5, n_docs) > 0).astype(int)
print(f"X: {X.shape}, {X.nnz} stored entries ({X.nnz / np.prod(X.shape):.1%} dense)")

X_train, y_train, X_test, y_test = X[:1000], y[:1000], X[1000:], y[1000:]
model = LogisticRegression(C=10.0, solver="newton-cholesky", tol=1e-10)
explainer = InfluenceExplainer(model).fit(X_train, y_train)
print(f"test accuracy {explainer.score(X_test, y_test):.3f}")

# %%
# Influence on sparse test documents
# ----------------------------------
scores = explainer.loss_influence(X_test, y_test)
print("loss_influence:", scores.shape)
indices, top = explainer.most_influential(X_test, y_test, k=3, kind="helpful")
print("most helpful training documents for test document 0:", indices[0].tolist())

# %%
# A wide vocabulary: more terms than documents
# ---------------------------------------------
# Real vocabularies have far more terms than there are training documents. Past
# 4,096 parameters, ``hessian_solver="auto"`` stops factorising the p × p Hessian.
# With fewer training rows than parameters it solves an n × n system in the training
# rows ("woodbury"), whose cost does not depend on the conditioning; matrix-free
# conjugate gradients ("cg") are the other choice. Both give the same top rows.
wide = normalize(sp.random(1100, 20_000, density=0.005, format="csr", random_state=1,
                           data_rvs=lambda size: rng.poisson(2.0, size) + 1.0))
w_wide = np.zeros(20_000)
w_wide[rng.choice(20_000, 200, replace=False)] = rng.normal(0, 8, 200)
y_wide = (wide @ w_wide + rng.normal(0, 0.5, 1100) > 0).astype(int)
wide_model = LogisticRegression(C=10.0, solver="liblinear", tol=1e-10)
by_rows = InfluenceExplainer(wide_model).fit(wide[:1000], y_wide[:1000])
by_cg = InfluenceExplainer(wide_model, hessian_solver="cg").fit(wide[:1000],
                                                                  y_wide[:1000])
top_rows, _ = by_rows.most_influential(wide[1000:], y_wide[1000:], k=5)
top_cg, _ = by_cg.most_influential(wide[1000:], y_wide[1000:], k=5)
print(f"solver picked by 'auto': {by_rows.hessian_solver_.name}; "
      f"same top-5 as CG for {np.mean((top_rows == top_cg).all(axis=1)):.0%} "
      "of the test documents")

# %%
# Checking the predictions against refits
# ---------------------------------------
# :func:`~skinfluence.analysis.validate` removes, one at a time, the 30 training
# documents with the largest predicted effect on the mean test loss, refits, and
# compares.
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
for ax, method in zip(axes, ["influence", "newton"], strict=False):
    result = validate(explainer, X_test, y_test, k=30, method=method)
    print(result)
    InfluenceDisplay(predicted_loo=result.predicted, actual_loo=result.actual,
                     method=method, name="mean test loss").plot(ax=ax, kind="loo")
    ax.set_title(f'validate(..., method="{method}")')
fig.tight_layout()
plt.show()
