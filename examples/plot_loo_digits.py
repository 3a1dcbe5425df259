"""
=====================================================
Predicted vs actual leave-one-out (Koh & Liang Fig 2)
=====================================================

Influence functions predict how the loss of a test point changes when one training
row is removed and the model is refitted, without refitting. Here a multinomial
:class:`~sklearn.linear_model.LogisticRegression` is trained on scikit-learn's
digits, and the predictions for the training rows with the largest effect are checked
against real leave-one-out refits, as in Fig 2 of Koh & Liang (2017).

Two predictors are compared:

- ``method="influence"``, the paper's first-order estimate
  :math:`-\\frac{s_j}{n}\\,\\mathcal{I}_{\\text{up,loss}}(z_j, z_{\\text{test}})`;
- ``method="newton"``, one Newton step on the objective without row :math:`j`
  (a rank-k downdate of the factorised Hessian, still no refit).

First order shrinks the effect of high-leverage rows by about
:math:`1 - \\text{leverage}`; the Newton step corrects that.
"""

# %%
# Data and model
# --------------
# The digits are 8 × 8 images with pixel values 0–16; we scale them to [0, 1]. The
# model is fitted tightly: influence functions describe the optimum of the training
# objective.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceDisplay, InfluenceExplainer
from skinfluence.plotting import refit_loo

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, y_train = X[:600], y[:600]
X_test, y_test = X[600:], y[600:]

model = LogisticRegression(C=0.1, solver="newton-cholesky", tol=1e-10)
explainer = InfluenceExplainer(model).fit(X_train, y_train)
print(f"{len(explainer.params_)} parameters, test accuracy "
      f"{explainer.score(X_test, y_test):.3f}")

# %%
# One test point, the most influential training rows
# --------------------------------------------------
# As in the paper, we explain one test point (the test image with the highest loss)
# and refit without each of the 30 training rows whose removal is predicted to
# change its loss most. :func:`~skinfluence.plotting.refit_loo` does the refits once;
# both predictors are then compared with the same actual changes.
proba = explainer.predict_proba(X_test)
losses = -np.log(proba[np.arange(len(y_test)), np.searchsorted(explainer.classes_,
                                                                y_test)])
t = int(np.argmax(losses))
x_t, y_t = X_test[t:t + 1], y_test[t:t + 1]
print(f"test point #{t}: label {y_t[0]}, predicted {explainer.predict(x_t)[0]}, "
      f"loss {losses[t]:.2f}")

predicted = explainer.leave_one_out(x_t, y_t, method="newton")
rows = np.argsort(-np.abs(predicted[0]))[:30]
actual = refit_loo(explainer, x_t, y_t, rows, X_train=X_train, y_train=y_train)

# %%
# Predicted vs actual
# -------------------
# :class:`~skinfluence.InfluenceDisplay` with ``kind="loo"`` draws the predicted
# against the actual change, with the line y = x and Pearson's R.
fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharex=True, sharey=True)
for ax, method in zip(axes, ["influence", "newton"], strict=False):
    InfluenceDisplay.from_explainer(
        explainer, x_t, y_t, kind="loo", method=method, actual=actual, rows=rows,
        name=method, ax=ax,
    )
    ax.set_title(f'leave_one_out(method="{method}")')
fig.tight_layout()
plt.show()

# %%
# Why first order underestimates
# ------------------------------
# Removing row :math:`j` moves the parameters by about :math:`1 / (1 - h_j)` times
# the first-order estimate, where :math:`h_j` is the row's leverage
# (:meth:`~skinfluence.InfluenceExplainer.leverages`). The ratio of the two
# predictions follows it.
leverage = explainer.leverages()
first = explainer.leave_one_out(x_t, y_t, method="influence")[0, rows]
newton = predicted[0, rows]
print("largest leverage among the rows shown:", round(float(leverage[rows].max()), 3))
print("median ratio newton / first order:", round(float(np.median(newton / first)), 3))
