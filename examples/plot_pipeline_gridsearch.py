"""
==============================================================
The explainer in a Pipeline and in GridSearchCV
==============================================================

:class:`~skinfluence.InfluenceExplainer` is a scikit-learn estimator: it can wrap a
:class:`~sklearn.pipeline.Pipeline`, be tuned by
:class:`~sklearn.model_selection.GridSearchCV`, and serve as a pipeline step itself.
This example shows the three, and compares cross-validation with the approximate
leave-one-out scores of :func:`skinfluence.analysis.approximate_loo_cv`, which need
one fit per candidate instead of one per training row.
"""

# %%
# Tuning an explained pipeline
# ----------------------------
# Wrapping a Pipeline explains its last step on the features the earlier steps
# produce (the scaler is treated as fixed). Parameters are reached through
# ``estimator__<step>__<name>``; ``score``, ``predict`` and friends are delegated to
# the fitted pipeline.
import matplotlib.pyplot as plt
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, LeaveOneOut, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.analysis import approximate_loo_cv

X, y = load_breast_cancer(return_X_y=True)
X_train, y_train, X_test, y_test = X[:300], y[:300], X[300:], y[300:]

pipe = make_pipeline(StandardScaler(),
                     LogisticRegression(solver="newton-cholesky", tol=1e-10))
Cs = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
search = GridSearchCV(InfluenceExplainer(pipe),
                      {"estimator__logisticregression__C": Cs}, cv=5)
search.fit(X_train, y_train)
print("best:", search.best_params_, f"CV accuracy {search.best_score_:.3f}")

# %%
# The refitted best explainer answers influence questions directly:
explainer = search.best_estimator_
indices, scores = explainer.most_influential(X_test[:3], y_test[:3], k=3)
for t in range(3):
    print(f"test row {t}: most harmful training rows {indices[t].tolist()}, "
          f"I_up,loss {[f'{v:.2g}' for v in scores[t]]}")

# %%
# The explainer as a pipeline step
# --------------------------------
# ``transform(X)`` is the loss influence at the model's own predictions, one column
# per training row, so no labels are needed and the explainer can be the last step
# of a Pipeline.
influence_pipe = make_pipeline(
    StandardScaler(),
    InfluenceExplainer(LogisticRegression(C=0.3, solver="newton-cholesky",
                                          tol=1e-10)),
).fit(X_train, y_train)
influence = influence_pipe.transform(X_test)
print("transform:", influence.shape, "(n_test, n_train)")

# %%
# Approximate leave-one-out model selection
# -----------------------------------------
# :func:`~skinfluence.analysis.approximate_loo_cv` scores each candidate by the
# leave-one-out error predicted from one fit (one Newton step per removed row; the
# analyses work on pre-transformed data, so we scale first). We compare it with
# the real leave-one-out cross-validation, which fits the model 300 times per C.
X_scaled = StandardScaler().fit_transform(X_train)
model = LogisticRegression(solver="newton-cholesky", tol=1e-10)
approx = approximate_loo_cv(model, X_scaled, y_train, {"C": Cs}, scoring="accuracy")
approx_loss = approximate_loo_cv(model, X_scaled, y_train, {"C": Cs})
true_loo = [cross_val_score(LogisticRegression(C=C, solver="newton-cholesky",
                                               tol=1e-10),
                            X_scaled, y_train, cv=LeaveOneOut(), n_jobs=2).mean()
            for C in Cs]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
ax1.semilogx(Cs, true_loo, "o-", label="leave-one-out CV (300 refits per C)")
ax1.semilogx(Cs, approx["loo_accuracy"], "x--", label="approximate_loo_cv (1 fit)")
ax1.semilogx(Cs, search.cv_results_["mean_test_score"], "s:", label="5-fold CV")
ax1.set_xlabel("C")
ax1.set_ylabel("accuracy")
ax1.legend()
ax2.semilogx(Cs, approx_loss["loo_loss"], "x--")
ax2.set_xlabel("C")
ax2.set_ylabel("approximate leave-one-out log-loss")
fig.tight_layout()
plt.show()
print("approximate LOO picks", approx["best_params"], "by accuracy and",
      approx_loss["best_params"], "by log-loss")
