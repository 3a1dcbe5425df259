"""
===============================================
Training rows on a Dask cluster
===============================================

When the training rows do not fit in one process, give them to the explainer as a
``dask.array``: they stay in their chunks on the workers. Here a local cluster of two
worker processes explains a logistic regression on 1,000,000 rows that are generated
lazily, chunk by chunk, and never exist in one place — neither do their labels: the
client only receives a few totals, the small p × p Hessian and the results (see
:doc:`/beyond_one_machine`).
"""

# %%
# Rows generated chunk by chunk
# -----------------------------
# Chunk ``i`` of X (and its labels) is drawn from a generator seeded by ``i``: any
# worker can rebuild it, and nothing is computed until it is needed.
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceExplainer

ROWS, COLS, CHUNK = 1_000_000, 20, 100_000
W = np.linspace(-1.0, 1.0, COLS)


def chunk(i):
    rng = np.random.default_rng(i)
    X = rng.standard_normal((CHUNK, COLS))
    y = (X @ W + rng.logistic(size=CHUNK) > 0).astype(int)
    y[rng.random(CHUNK) < 0.02] ^= 1  # 2 % of the labels flipped
    return X, y


n_chunks = ROWS // CHUNK
X = da.map_blocks(lambda block_id=None: chunk(block_id[0])[0], dtype=float,
                  chunks=((CHUNK,) * n_chunks, (COLS,)))
y = da.map_blocks(lambda block_id=None: chunk(block_id[0])[1], dtype=int,
                  chunks=((CHUNK,) * n_chunks,))
print(X)

# %%
# A model fitted on a sample, explained on every row
# --------------------------------------------------
# The explainer does not fit estimators on chunks: fit one on a sample (or with
# dask-ml) and wrap it in ``FrozenEstimator``. ``optimality_`` says how far the
# sample's optimum is from the optimum on all rows (a ConvergenceWarning above 1e-3:
# the influences are then those of a Newton step from these parameters).
X_sample, y_sample = chunk(n_chunks)  # another chunk: not a training row
model = LogisticRegression(C=1.0, solver="newton-cholesky").fit(X_sample, y_sample)
X_test, y_test = X_sample[:5], y_sample[:5]

cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
client = Client(cluster)
explainer = InfluenceExplainer(FrozenEstimator(model)).fit(X, y)
print(f"Hessian {explainer.hessian_.shape}, relative Newton step to the optimum "
      f"on all rows: {explainer.optimality_:.1e}")

# %%
# The most influential rows of five test points
# ---------------------------------------------
# Every chunk scores its rows and keeps its own top 5; the candidates are merged
# into a numpy array (test points × k).
idx, scores = explainer.most_influential(X_test, y_test, k=5)
for t in range(len(idx)):
    print(f"test point {t}: rows {idx[t].tolist()}")

# %%
# Self-influence of every row, lazily
# -----------------------------------
# ``self_influence`` (−∇θL(z_j)ᵀ H⁻¹ ∇θL(z_j) ≤ 0) is a lazy dask array chunked like
# the rows; its range and histogram are computed on the workers (the million values
# never reach the client). The rows with the largest magnitude are those the fit
# bends towards most.
magnitude = da.log10(da.maximum(-explainer.self_influence(), 1e-300))
low, high = da.compute(magnitude.min(), magnitude.max())
counts, edges = da.histogram(magnitude, bins=40, range=(low, high))
counts = counts.compute()
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.stairs(counts, edges, fill=True)
ax.set_yscale("log")
ax.set_xlabel("log10 |self-influence|")
ax.set_ylabel("training rows")
ax.set_title("1,000,000 training rows, computed on 2 workers")
fig.tight_layout()

client.close()
cluster.close()
