"""
=========================================================
A training-set attack that flips a prediction (§5.2)
=========================================================

Influence functions also say how *moving* a training input changes a test loss:
:math:`\\mathcal{I}_{\\text{pert,loss}}(z_j, z_{\\text{test}}) = -\\nabla_\\theta
L(z_{\\text{test}})^\\top H^{-1} \\nabla_x \\nabla_\\theta L(z_j)`. Koh & Liang (2017,
§5.2) use it to build a training-set attack: change a few training images, each pixel
by at most a small bound, so that the refitted model gets a chosen test image wrong.

:func:`skinfluence.perturbation.training_set_attack` picks the k training rows whose
perturbation raises the test loss most and moves them by a signed gradient step
within an :math:`L_\\infty` ball (and the valid pixel range).
:func:`~skinfluence.perturbation.refit_loss_change` verifies the attack by refitting
the model on the perturbed training set.
"""

# %%
# A binary model: 1s against 7s
# -----------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.perturbation import refit_loss_change, training_set_attack

X, y = load_digits(return_X_y=True)
keep = np.isin(y, [1, 7])
X, y = X[keep] / 16.0, y[keep]
X_train, y_train, X_test, y_test = X[:250], y[:250], X[250:], y[250:]

model = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-10)
explainer = InfluenceExplainer(model).fit(X_train, y_train)

# a correctly classified test image at margin about 1 (the model gives its label
# a probability of about 0.73)
margin = np.where(y_test == 7, 1, -1) * explainer.decision_function(X_test)
t = int(np.argmin(np.abs(margin - 1.0)))
x_t, y_t = X_test[t], y_test[t]
print(f"test image #{t}: label {y_t}, margin {margin[t]:.2f}")

# %%
# Attacks of growing size
# -----------------------
# Each pixel of an attacked image moves by at most 0.5 (pixels stay in [0, 1]). The
# prediction is first order (no refit); the actual change comes from a refit on the
# perturbed training set.
results = []
for k in [1, 2, 3, 5]:
    attack = training_set_attack(explainer, x_t, y_t, k=k, bound=0.5,
                                 feature_range=(0.0, 1.0))
    actual = refit_loss_change(explainer, attack.X, y_train, x_t, y_t)[0]
    refit = clone(model).fit(attack.X, y_train)
    flipped = refit.predict(x_t[None, :])[0] != y_t
    results.append((k, attack.predicted_increase, actual, flipped, attack))
    print(f"k = {k}: predicted loss increase {attack.predicted_increase:.2f}, "
          f"actual {actual:.2f}, prediction flipped: {flipped}")

fig, ax = plt.subplots(figsize=(5, 3.5))
ks = np.arange(len(results))
ax.bar(ks - 0.2, [r[1] for r in results], width=0.4, label="predicted (first order)")
ax.bar(ks + 0.2, [r[2] for r in results], width=0.4, label="actual (refit)")
ax.set_xticks(ks, [f"k = {r[0]}" + (" (flipped)" if r[3] else "") for r in results])
ax.set_ylabel("increase of the test log-loss")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# What the attack changed
# -----------------------
# The smallest attack that flips the prediction, the original and perturbed training
# images side by side.
k, _, _, _, attack = next(r for r in results if r[3])
fig, axes = plt.subplots(2, k + 1, figsize=(1.6 * (k + 1), 3.6))
axes[0, 0].imshow(x_t.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
axes[0, 0].set_title(f"test, y={y_t}", fontsize=9)
axes[1, 0].axis("off")
for c, j in enumerate(attack.indices, start=1):
    axes[0, c].imshow(X_train[j].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    axes[0, c].set_title(f"#{j} y={y_train[j]}", fontsize=9)
    axes[1, c].imshow(attack.X[j].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    axes[1, c].set_title("perturbed", fontsize=9)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()

# %%
# Several projected steps with refits in between (``n_steps > 1``) follow the
# refitted loss further than one linearised step:
attack = training_set_attack(explainer, x_t, y_t, k=2, bound=0.5,
                             feature_range=(0.0, 1.0), n_steps=5)
actual = refit_loss_change(explainer, attack.X, y_train, x_t, y_t)[0]
print(f"k = 2, 5 steps: predicted {attack.predicted_increase:.2f}, actual {actual:.2f}")

# %%
# A pipeline: the attack stays in pixel space
# -------------------------------------------
# With a scaler in front of the model, the explained model sees standardised
# pixels, but the attack perturbs (and returns) the images themselves: pass the
# training images as ``X_train``; ``bound`` and ``feature_range`` are in pixels. The
# gradient is carried back through the scaler (an affine map); the first-order
# prediction holds the scaler fixed, while the refit below refits it too.
pipe = make_pipeline(StandardScaler(), clone(model))
pipe_explainer = InfluenceExplainer(pipe).fit(X_train, y_train)
attack = training_set_attack(pipe_explainer, x_t, y_t, k=2, bound=0.5,
                             feature_range=(0.0, 1.0), X_train=X_train)
actual = refit_loss_change(pipe_explainer, attack.X, y_train, x_t, y_t)[0]
flipped = clone(pipe).fit(attack.X, y_train).predict(x_t[None, :])[0] != y_t
print(f"pipeline, k = 2: predicted {attack.predicted_increase:.2f}, actual "
      f"{actual:.2f}, prediction flipped: {flipped}; pixels in "
      f"[{attack.X.min():.1f}, {attack.X.max():.1f}]")
