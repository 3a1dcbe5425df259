"""
=====================================================
Finding mislabelled training rows (Koh & Liang Fig 6)
=====================================================

Some training labels are wrong. A user who can check only a fraction of them by
hand should check first the rows the model bends towards most. Koh & Liang (2017,
§5.4) rank the training rows by their **self-influence**
:math:`\\mathcal{I}_{\\text{up,loss}}(z_j, z_j)`: how much up-weighting a row lowers its
own loss.

Here 10 % of the labels of the digits are flipped to another class, and four
rankings from :func:`skinfluence.analysis.mislabel_ranking` are compared:

- ``"self_influence"``: the paper's ranking;
- ``"leverage_corrected"``: the Newton leave-one-out change of the row's own loss,
  the self-influence corrected by the row's k × k leverage matrix;
- ``"loss"``: the training loss of the row (a strong baseline);
- ``"random"``: checking rows in random order.

:func:`~skinfluence.analysis.mislabel_curve` gives the fraction of the flipped
labels found after checking the top of each ranking, and
:func:`~skinfluence.analysis.accuracy_after_fixing` the test accuracy after fixing
the labels found (refitting the model).
"""

# %%
# Noisy digits
# ------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceDisplay, InfluenceExplainer
from skinfluence.analysis import (
    accuracy_after_fixing,
    mislabel_curve,
    mislabel_ranking,
)

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, y_clean, X_test, y_test = X[:600], y[:600], X[600:], y[600:]

rng = np.random.default_rng(0)
flipped = np.zeros(len(y_clean), dtype=bool)
flipped[rng.choice(len(y_clean), size=60, replace=False)] = True
y_noisy = y_clean.copy()
y_noisy[flipped] = (y_clean[flipped] + rng.integers(1, 10, flipped.sum())) % 10

model = LogisticRegression(C=0.1, solver="newton-cholesky", tol=1e-10)
explainer = InfluenceExplainer(model).fit(X_train, y_noisy)
print(f"{flipped.sum()} flipped labels; test accuracy with them "
      f"{explainer.score(X_test, y_test):.3f}")

# %%
# Rankings and how fast they find the flips
# -----------------------------------------
strategies = ["self_influence", "leverage_corrected", "loss", "random"]
rankings = {s: mislabel_ranking(explainer, s, random_state=0) for s in strategies}

fractions = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
for s, ranking in rankings.items():
    checked, found = mislabel_curve(ranking, flipped)
    ax1.plot(checked, found, label=s)
    fixed = accuracy_after_fixing(explainer, ranking, y_clean, X_test, y_test,
                                  fractions=fractions)
    ax2.plot(fixed["fraction_checked"], fixed["accuracy"], "o-", label=s)
    print(f"{s:>18}: {found[int(0.1 * len(ranking))]:.0%} of the flips found after "
          f"checking 10 % of the rows")
ax1.set_xlim(0, 0.3)
ax1.set_xlabel("fraction of training rows checked")
ax1.set_ylabel("fraction of flipped labels found")
ax1.legend()
ax2.axhline(explainer.score(X_test, y_test), color="gray", lw=0.8)
ax2.set_xlabel("fraction of training rows checked (and fixed)")
ax2.set_ylabel("test accuracy after refitting")
fig.tight_layout()
plt.show()

# %%
# The self-influence curve
# ------------------------
# :class:`~skinfluence.InfluenceDisplay` with ``kind="self_influence"`` plots the
# sorted self-influence with the flipped rows marked: they crowd the most negative
# end.
InfluenceDisplay.from_explainer(explainer, kind="self_influence",
                                marked=np.flatnonzero(flipped))
plt.show()
