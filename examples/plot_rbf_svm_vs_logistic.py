"""
=======================================================================
RBF SVM vs logistic regression: who is influential? (Koh & Liang Fig 4)
=======================================================================

Koh & Liang (2017, §5.1) compare an RBF support vector machine with a linear model:
the RBF SVM's influential training images are those *close* to the test image in
input space, while the linear model's come from anywhere, pulled by their labels.

skinfluence explains a kernel machine as the linear model it is in its whitened
kernel features :math:`\\varphi(x) = K(x, X) U \\Lambda^{-1/2}` (the RBF kernel
held fixed), with the exact hinge: its training rows' derivative is read off the
dual coefficients. Here, on the digits 3 and 8, both models score every training
image's influence on one test image's decision value (for the SVM) or log-loss (for
logistic regression), plotted against the pixel distance between the two images.
"""

# %%
# Data and models
# ---------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from skinfluence import InfluenceExplainer

X, y = load_digits(return_X_y=True)
keep = np.isin(y, [3, 8])
X, y = X[keep] / 16.0, y[keep]
X_train, y_train, X_test, y_test = X[:300], y[:300], X[300:], y[300:]

svm = InfluenceExplainer(SVC(C=1.0, gamma=0.2, tol=1e-10)).fit(X_train, y_train)
logistic = InfluenceExplainer(
    LogisticRegression(C=0.1, solver="newton-cholesky", tol=1e-10)
).fit(X_train, y_train)
print(f"accuracy: SVM {svm.score(X_test, y_test):.3f}, "
      f"logistic {logistic.score(X_test, y_test):.3f}")

# %%
# One test image: influence vs distance
# -------------------------------------
# The test image the SVM is least sure about (smallest absolute decision value). Red:
# training images of the same label as the test image, blue: the other label.
t = int(np.argmin(np.abs(svm.decision_function(X_test))))
x_t, y_t = X_test[t:t + 1], y_test[t:t + 1]
distance = np.linalg.norm(X_train - x_t, axis=1)
scores = {
    "RBF SVM (decision value)": svm.loss_influence(x_t, test_loss="decision")[0],
    "logistic regression (log-loss)": logistic.loss_influence(x_t, y_t)[0],
}
same = y_train == y_t[0]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
axes[0].imshow(x_t.reshape(8, 8), cmap="gray_r")
axes[0].set_title(f"test image (label {y_t[0]})")
axes[0].axis("off")
for ax, (name, s) in zip(axes[1:], scores.items(), strict=True):
    ax.scatter(distance[same], s[same], s=8, c="tab:red", label="same label")
    ax.scatter(distance[~same], s[~same], s=8, c="tab:blue", label="other label")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("pixel distance to the test image")
    ax.set_ylabel("influence")
    ax.set_title(name)
axes[1].legend()
fig.tight_layout()
plt.show()

# %%
# How concentrated is the influence?
# ----------------------------------
# The share of the total absolute influence carried by the 20 training images nearest to
# the test image: the RBF kernel's locality shows in the SVM's explanation.
near = np.argsort(distance)[:20]
for name, s in scores.items():
    share = np.abs(s[near]).sum() / np.abs(s).sum()
    print(f"{name}: {share:.0%} of |influence| on the 20 nearest images")
