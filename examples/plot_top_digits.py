"""
=====================================================
Most helpful and harmful training images for a digit
=====================================================

For one test image, which training images pushed the model towards its prediction
and which pushed it away? The loss influence
:math:`\\mathcal{I}_{\\text{up,loss}}(z_j, z_{\\text{test}})` of a training row is
negative when up-weighting the row lowers the test loss (the row is **helpful**) and
positive when it raises it (**harmful**).

:class:`~skinfluence.InfluenceDisplay` with ``kind="top"`` and
``image_shape=(8, 8)`` shows the test image next to the most helpful and the most
harmful training images, with their labels and scores.
"""

# %%
# A multinomial logistic regression on the digits
# -----------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceDisplay, InfluenceExplainer

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, y_train, X_test, y_test = X[:600], y[:600], X[600:], y[600:]

model = LogisticRegression(C=0.1, solver="newton-cholesky", tol=1e-10)
explainer = InfluenceExplainer(model).fit(X_train, y_train)

# %%
# A correctly classified test image
# ---------------------------------
# The most helpful training images are typically the same digit written the same
# way; harmful ones are other digits that look alike.
correct = np.flatnonzero(explainer.predict(X_test) == y_test)
t = int(correct[0])
fig, ax = plt.subplots(figsize=(9, 2.6))
InfluenceDisplay.from_explainer(
    explainer, X_test, y_test, kind="top", test_index=t, k=8,
    X_train=X_train, y_train=y_train, image_shape=(8, 8), ax=ax,
)
plt.show()

# %%
# A misclassified test image
# --------------------------------------
# For a mistake, the harmful rows are the training images that pulled the model
# towards the wrong class.
wrong = np.flatnonzero(explainer.predict(X_test) != y_test)
t = int(wrong[0])
print(f"test image #{t}: label {y_test[t]}, predicted "
      f"{explainer.predict(X_test[t:t + 1])[0]}")
fig, ax = plt.subplots(figsize=(9, 2.6))
InfluenceDisplay.from_explainer(
    explainer, X_test, y_test, kind="top", test_index=t, k=8,
    X_train=X_train, y_train=y_train, image_shape=(8, 8), ax=ax,
)
plt.show()

# %%
# The same as numbers
# -------------------
# :meth:`~skinfluence.InfluenceExplainer.most_influential` returns the indices and
# scores directly, streamed in batches for many test points (the full
# n_test × n_train matrix is never held in memory).
indices, scores = explainer.most_influential(X_test[t:t + 1], y_test[t:t + 1], k=5,
                                             kind="harmful")
for j, s in zip(indices[0], scores[0], strict=False):
    print(f"training row {j:4d} (label {y_train[j]}): I_up,loss = {s:+.3f}")

# %%
# Without images, ``kind="top"`` draws a bar chart of the scores.
InfluenceDisplay.from_explainer(explainer, X_test, y_test, kind="top", test_index=t,
                                k=6, y_train=y_train)
plt.tight_layout()
plt.show()
