"""The empirical risk of a fitted multi-layer perceptron, by backpropagation.

The first risk whose decision values are not linear in θ: scikit-learn's
``MLPClassifier`` and ``MLPRegressor``. With layers ``l = 0 … L−1``, weights ``W_l``
(``coefs_[l]``, shape (d_l, d_{l+1})) and intercepts ``b_l`` (``intercepts_[l]``)::

    a_0 = x,   z_{l+1} = a_l W_l + b_l,   a_{l+1} = f(z_{l+1})  (hidden layers),

the decision value is the last pre-activation ``z = z_L`` (the binary logit, the
softmax inputs, the regression output) and the per-sample loss ``L(z, y)`` is the
output activation's canonical loss (``models/_losses.py``, in decision space).

The risk, in skinfluence's units (see :mod:`skinfluence.models.mlp` for why it is
scikit-learn's objective up to a constant factor)::

    R(θ) = (1/n) Σ_i s_i L(z_i, y_i) + (α / 2n) Σ_l ‖W_l‖²

Parameter layout (``params_``): scikit-learn's packing, every ``coefs_[l].ravel()``
(row-major, input unit by output unit) in layer order, then every ``intercepts_[l]``.

Derivatives, numpy only:

- per-row gradients by backpropagation, ``δ_L = ∂L/∂z``,
  ``δ_l = (δ_{l+1} W_lᵀ) ⊙ f'(z_l)``, ``∇_{W_l} = a_l ⊗ δ_{l+1}``, ``∇_{b_l} = δ_{l+1}``;
- Hessian–vector products by Pearlmutter's R-operator: a forward pass of the
  directional derivatives ``Rz_l``, ``Ra_l`` along V, then a second backward pass
  ``Rδ_L = D Rz_L``, ``Rδ_l = (Rδ_{l+1} W_lᵀ + δ_{l+1} V_lᵀ) ⊙ f'(z_l) +
  (δ_{l+1} W_lᵀ) ⊙ f''(z_l) ⊙ Rz_l``, ``R∇_{W_l} = Ra_lᵀ δ_{l+1} + a_lᵀ Rδ_{l+1}``;
- the exact Hessian as blocks of such products against the identity.

ReLU is not differentiable where a hidden unit's pre-activation is exactly 0; as in
scikit-learn, ``f'(0) = 0`` there and ``f'' = 0`` everywhere. That set has measure
zero, but a row sitting on a kink has no derivative to match (refits move it off).

Unlike a linear model's risk, R is not convex: H may be indefinite at the fitted
weights (the solvers say so and recommend ``damping``, the paper's λ; with λ > 0 the
influence is that of the damped quadratic model ``R + λ/2 ‖θ − θ̂‖²``).
"""

import copy

import numpy as np
from scipy.special import expit

from ._utils import dense

#: Directions per block of Hessian–vector products (memory: block · n · width).
_HVP_BLOCK = 64


def activate(name, Z):
    """f(Z) for scikit-learn's hidden activations."""
    if name == "identity":
        return Z
    if name == "logistic":
        return expit(Z)
    if name == "tanh":
        return np.tanh(Z)
    if name == "relu":
        return np.maximum(Z, 0.0)
    raise ValueError(f"Unknown activation {name!r}.")


def derivatives(name, A):
    """(f'(z), f''(z)) written through the activation A = f(z), as scikit-learn does
    (ReLU: f'(0) = 0)."""
    if name == "identity":
        return np.ones_like(A), np.zeros_like(A)
    if name == "logistic":
        d1 = A * (1.0 - A)
        return d1, d1 * (1.0 - 2.0 * A)
    if name == "tanh":
        d1 = 1.0 - A * A
        return d1, -2.0 * A * d1
    if name == "relu":
        return (A > 0).astype(np.float64), np.zeros_like(A)
    raise ValueError(f"Unknown activation {name!r}.")


def _times(A, V):
    """A V_m for every direction m: A (n, i), V (i, o, m) -> (m, n, o), one GEMM."""
    i, o, m = V.shape
    return (A @ V.reshape(i, o * m)).reshape(-1, o, m).transpose(2, 0, 1)


class NetworkObjective:
    """R(θ) of a fitted multi-layer perceptron on its training data.

    Offers the interface the solvers, the scorer and the explainer use (see
    ``docs/architecture.rst``, "The risk interface").

    Parameters
    ----------
    loss : object
        Per-sample loss in decision space (``value_grad``, ``hessian``,
        ``shift_invariant``), as for :class:`~skinfluence._objective.LinearObjective`.
    coefs, intercepts : list of ndarray
        ``coefs_`` and ``intercepts_`` of the fitted network.
    activation : {"identity", "logistic", "tanh", "relu"}
        The hidden layers' activation.
    X : {ndarray, sparse matrix} of shape (n, d)
        Training inputs (densified: a network's first layer is dense anyway).
    y : ndarray
        Training targets in the loss's encoding.
    sample_weight : ndarray of shape (n,)
    alpha : float
        scikit-learn's L2 strength (penalty ``α/2 ‖W‖²`` of the weights only).
    targets : object
        The label encoding (``encode``, ``classes``), as for linear models.
    """

    #: Decision values are not linear in θ: features built on that (exact removal
    #: paths, data-space solves, leverages through X, input perturbations) refuse it.
    linear = False

    def __init__(self, loss, coefs, intercepts, activation, X, y, sample_weight,
                 alpha, *, targets):
        self.loss = loss
        self.coefs = [np.asarray(c, dtype=np.float64) for c in coefs]
        self.intercepts = [np.asarray(b, dtype=np.float64) for b in intercepts]
        self.activation = activation
        self.X = np.asarray(dense(X), dtype=np.float64)
        self.y = y
        self.targets = targets
        self.alpha = float(alpha)
        n = self.X.shape[0]
        self.n_features = self.coefs[0].shape[0]
        self.n_outputs = k = self.coefs[-1].shape[1]
        self.sample_weight = np.asarray(sample_weight, dtype=np.float64)
        self.class_weight = np.ones((n, k))
        self.row_weight = self.sample_weight[:, None] * self.class_weight
        # θ layout: all coefs_ raveled, then all intercepts_ (scikit-learn's _pack)
        sizes = [c.size for c in self.coefs] + [b.size for b in self.intercepts]
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        L = len(self.coefs)
        self._coef_slices = [slice(bounds[i], bounds[i + 1]) for i in range(L)]
        self._intercept_slices = [slice(bounds[L + i], bounds[L + i + 1])
                                  for i in range(L)]
        self.n_params = int(bounds[-1])
        n_coef = int(bounds[L])
        self.quad_penalty = np.zeros(self.n_params)
        self.quad_penalty[:n_coef] = self.alpha / n
        self.l1_penalty = np.zeros(self.n_params)
        self.free = np.ones(self.n_params, dtype=bool)
        self.reported_mask = np.ones(self.n_params, dtype=bool)  # params_ = θ
        self.param_map = self.input_map = None
        # what linear-model recipes set; a network has none of them
        self.weight_jacobian = self.groups = self.weighted_mask = None
        self.train_dz = self.pinned = self.fixed = None
        self._train_pass = None

    # -- parameters -----------------------------------------------------------------
    @property
    def params(self):
        """θ = [coefs_[0].ravel(), …, coefs_[L−1].ravel(), intercepts_[0], …]."""
        return np.concatenate([c.ravel() for c in self.coefs] + list(self.intercepts))

    def replace(self, *, params=None, row_weight=None):
        """A copy of this risk at other parameters or row weights (as
        :meth:`LinearObjective.replace <skinfluence._objective.LinearObjective.replace>`).

        The risk itself is never modified: removal iterations evaluate
        ``risk.replace(params=θ, row_weight=w).gradient()`` and ``hessian()``.

        Parameters
        ----------
        params : ndarray of shape (n_params,), default=None
            θ in the ``params`` layout.
        row_weight : ndarray of shape (n, k), default=None
            ``s_i`` of every (row, output) pair: a network weighs a row's outputs
            alike, so every column must be equal (the row's sample weight).
        """
        new = copy.copy(self)
        if params is not None:
            theta = np.array(params, dtype=np.float64).ravel()
            if theta.shape != (self.n_params,):
                raise ValueError(f"params must have {self.n_params} entries; got "
                                 f"{theta.size}.")
            new.coefs, new.intercepts = self.unpack(theta)
            new._train_pass = None
        if row_weight is not None:
            W = np.asarray(row_weight, dtype=np.float64)
            if W.shape != self.row_weight.shape or np.any(W != W[:, :1]):
                raise ValueError(
                    "row_weight of a network must have shape "
                    f"{self.row_weight.shape} with equal columns (one sample weight "
                    "per row)."
                )
            new.sample_weight = W[:, 0].copy()
            new.row_weight = W.copy()
            new._train_pass = None
        return new

    def reported(self, rows):
        """Rows of θ as the public parameters ``params_``: θ itself."""
        return rows

    def reported_change(self, steps):
        """Finite changes of θ as changes of ``params_`` (θ itself)."""
        return self.reported(steps)

    def features(self, X):
        """The network's inputs are its features (``input_map`` is None)."""
        return X

    @property
    def n_samples(self):
        return self.X.shape[0]

    def parameter_names(self):
        """Names of θ in its layout: ``coefs_[l][i, o]``, then ``intercepts_[l][o]``."""
        names = [f"coefs_[{layer}][{i}, {o}]" for layer, c in enumerate(self.coefs)
                 for i in range(c.shape[0]) for o in range(c.shape[1])]
        return names + [f"intercepts_[{layer}][{o}]"
                        for layer, b in enumerate(self.intercepts) for o in range(b.size)]

    def unpack(self, theta):
        """(coefs, intercepts) of a parameter vector in the θ layout."""
        coefs = [theta[s].reshape(c.shape) for s, c in zip(self._coef_slices,
                                                           self.coefs, strict=True)]
        intercepts = [theta[s] for s in self._intercept_slices]
        return coefs, intercepts

    def fixed_directions(self):
        """Flat directions of a softmax output (p, m): adding the same constant to
        every output's last intercept, and (without penalty, α = 0) the same weight
        from a last-layer input unit to every output, changes no loss."""
        if not (self.loss.shift_invariant and self.n_outputs > 1):
            return np.zeros((self.n_params, 0))
        cols = []
        v = np.zeros(self.n_params)
        v[self._intercept_slices[-1]] = 1.0
        cols.append(v)
        if self.alpha == 0:
            d_in, k = self.coefs[-1].shape
            start = self._coef_slices[-1].start
            for i in range(d_in):
                v = np.zeros(self.n_params)
                v[start + i * k: start + (i + 1) * k] = 1.0
                cols.append(v)
        return np.stack(cols, axis=1)

    # -- forward and backward passes ------------------------------------------------
    def _forward(self, X, coefs=None, intercepts=None):
        """Hidden activations [a_0 = X, a_1, …, a_{L−1}] and the decision values."""
        coefs = self.coefs if coefs is None else coefs
        intercepts = self.intercepts if intercepts is None else intercepts
        acts = [np.asarray(dense(X), dtype=np.float64)]
        for layer, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
            Z = acts[-1] @ W + b
            if layer < len(coefs) - 1:
                acts.append(activate(self.activation, Z))
        return acts, Z

    def _training_pass(self):
        """The forward pass over the training rows, with the loss derivatives."""
        if self._train_pass is None:
            acts, Z = self._forward(self.X)
            dZ = self.loss.value_grad(Z, self.y)[1]
            self._train_pass = acts, Z, dZ
        return self._train_pass

    def decision(self, X):
        """The network's output before its final link (logit, softmax inputs, ŷ)."""
        return self._forward(X)[1]

    def decision_at(self, X, theta):
        """Decision values at other parameters θ (e.g. after a removal step)."""
        return self._forward(X, *self.unpack(theta))[1]

    def _backward(self, acts, delta):
        """Per-row gradients (n, p) of Σ_a δ_a z_a by backpropagation of δ = ∂/∂z."""
        n = delta.shape[0]
        G = np.empty((n, self.n_params))
        for layer in range(len(self.coefs) - 1, -1, -1):
            a = acts[layer]
            G[:, self._coef_slices[layer]] = np.einsum(
                "ni,no->nio", a, delta).reshape(n, -1)
            G[:, self._intercept_slices[layer]] = delta
            if layer:
                delta = (delta @ self.coefs[layer].T) * derivatives(
                    self.activation, a)[0]
        return G

    def _backward_sum(self, acts, delta):
        """Σ_i of the per-row gradients of Σ_a δ_ia z_ia, without the (n, p) array."""
        g = np.empty(self.n_params)
        for layer in range(len(self.coefs) - 1, -1, -1):
            a = acts[layer]
            g[self._coef_slices[layer]] = (a.T @ delta).ravel()
            g[self._intercept_slices[layer]] = delta.sum(axis=0)
            if layer:
                delta = (delta @ self.coefs[layer].T) * derivatives(
                    self.activation, a)[0]
        return g

    def row_gradients(self, X, dZ):
        """∇θ Σ_a dZ_a z_a for each row (n, p): the chain rule through the network."""
        acts, _ = self._forward(X)
        return self._backward(acts, np.asarray(dZ, dtype=np.float64))

    def test_gradients(self, X, y, loss=None):
        """∇θ L(z_test) of the plain per-sample loss (no sample weight), (n, p)."""
        acts, Z = self._forward(X)
        dZ = (loss or self.loss).value_grad(Z, y)[1]
        return self._backward(acts, dZ)

    def output_jacobians(self, X):
        """∂z_a/∂θ for each output a: k matrices (n, p)."""
        acts, _ = self._forward(X)
        n, k = acts[0].shape[0], self.n_outputs
        out = []
        for a in range(k):
            e = np.zeros((n, k))
            e[:, a] = 1.0
            out.append(self._backward(acts, e))
        return out

    def prediction_gradients(self, X):
        """∇θ of the mean decision value (1/k) Σ_k z_k of each row."""
        acts, _ = self._forward(X)
        return self._backward(acts, np.full((acts[0].shape[0], self.n_outputs),
                                            1.0 / self.n_outputs))

    def training_dz(self):
        """dL/dz at the training rows."""
        return self._training_pass()[2]

    def row_curvature(self):
        """D_j = s_j d²L/dz²_j of every training row (n, k, k) (the output-space part
        of a row's Hessian: the Gauss–Newton curvature)."""
        _, Z, _ = self._training_pass()
        return self.row_weight[:, :, None] * self.loss.hessian(Z, self.y)

    def test_loss(self, X, y):
        return self.loss.value_grad(self.decision(X), y)[0]

    def train_gradients(self):
        """n · ∂(∇R)/∂s_j = ∇θ L(z_j) for every training row j: (rows, None)."""
        acts, _, dZ = self._training_pass()
        return self._backward(acts, dZ), None

    def value(self):
        """R(θ) = (1/n) Σ_i s_i L(z_i) + ½ θᵀ diag(q) θ at this risk's parameters."""
        _, Z, _ = self._training_pass()
        theta = self.params
        return (self.sample_weight @ self.loss.value_grad(Z, self.y)[0] / self.n_samples
                + 0.5 * theta @ (self.quad_penalty * theta))

    def gradient(self):
        """∇R(θ̂) = (1/n) Σ_i s_i ∇θL(z_i) + (α/n) W (zero at an exact optimum)."""
        acts, _, dZ = self._training_pass()
        g = self._backward_sum(acts, dZ * self.sample_weight[:, None])
        return g / self.n_samples + self.quad_penalty * self.params

    # -- second order ---------------------------------------------------------------
    def hessian_product(self, V, rows=None):
        """∇²R(θ̂) V for V of shape (p, m), by Pearlmutter's R-operator.

        ``rows``: the Hessian of those training rows only, their weights scaled by
        n / len(rows) (an unbiased estimate of H, for LiSSA); the penalty is kept.
        """
        V = np.asarray(V, dtype=np.float64)
        vector = V.ndim == 1
        V = V.reshape(self.n_params, -1)
        out = np.empty_like(V)
        for start in range(0, V.shape[1], _HVP_BLOCK):
            cols = slice(start, start + _HVP_BLOCK)
            out[:, cols] = self._r_pass(V[:, cols], rows)
        out += self.quad_penalty[:, None] * V
        return out[:, 0] if vector else out

    def _r_pass(self, V, rows):
        """(1/n) Σ_i s_i ∇²L(z_i) V (no penalty): the R-operator's two passes."""
        acts, Z, dZ = self._training_pass()
        w, y = self.sample_weight, self.y
        if rows is not None:
            acts, Z, dZ = [a[rows] for a in acts], Z[rows], dZ[rows]
            w, y = w[rows] * (self.n_samples / len(rows)), y[rows]
        m, L = V.shape[1], len(self.coefs)
        # V's blocks per layer: (d_in, d_out, m) weights and (d_out, m) intercepts
        VW = [V[s].reshape(c.shape + (m,)) for s, c in zip(self._coef_slices,
                                                          self.coefs, strict=True)]
        Vb = [V[s] for s in self._intercept_slices]
        # forward: directional derivatives of the pre-activations (m, n, width)
        Ra = [None]  # the input does not move
        Rz = [None]
        for layer in range(L):
            r = _times(acts[layer], VW[layer]) + Vb[layer].T[:, None]
            if Ra[layer] is not None:
                r += Ra[layer] @ self.coefs[layer]
            Rz.append(r)
            if layer < L - 1:
                Ra.append(derivatives(self.activation, acts[layer + 1])[0] * r)
        # backward: δ and its directional derivative Rδ
        delta = dZ * w[:, None]
        Rdelta = np.einsum("nab,mnb->mna", self.loss.hessian(Z, y), Rz[L])
        Rdelta *= w[None, :, None]
        out = np.empty((self.n_params, m))
        for layer in range(L - 1, -1, -1):
            RgW = np.matmul(acts[layer].T, Rdelta)  # (m, d_in, d_out): a_lᵀ Rδ
            if Ra[layer] is not None:
                RgW += np.matmul(Ra[layer].transpose(0, 2, 1), delta)  # Ra_lᵀ δ
            out[self._coef_slices[layer]] = RgW.reshape(m, -1).T
            out[self._intercept_slices[layer]] = Rdelta.sum(axis=1).T
            if layer:
                W = self.coefs[layer]
                d1, d2 = derivatives(self.activation, acts[layer])
                back = delta @ W.T
                Rdelta = (Rdelta @ W.T + np.matmul(delta, VW[layer].transpose(2, 1, 0))) \
                    * d1 + (back * d2) * Rz[layer]
                delta = back * d1
        return out / self.n_samples

    def hessian(self):
        """∇²R(θ̂), dense (p, p): Hessian–vector products with the identity."""
        H = self.hessian_product(np.eye(self.n_params))
        return 0.5 * (H + H.T)

    def hessian_diagonal(self):
        """The Gauss–Newton diagonal of H (a positive preconditioner for CG)."""
        acts, Z, _ = self._training_pass()
        D = self.row_curvature() / self.n_samples
        n, k = Z.shape
        J = []
        for a in range(k):
            e = np.zeros((n, k))
            e[:, a] = 1.0
            J.append(self._backward(acts, e))
        diag = np.zeros(self.n_params)
        for a in range(k):
            for b in range(k):
                diag += np.einsum("n,np,np->p", D[:, a, b], J[a], J[b])
        return np.maximum(diag, 0.0) + self.quad_penalty

    def rows_hessian(self, rows):
        """(1/n) Σ_{i ∈ rows} s_i ∇²θ L(z_i), (p, p): the curvature R loses without
        those training rows (their Gauss–Newton and second-order terms)."""
        rows = np.asarray(rows, dtype=np.intp)
        if not np.any(self.sample_weight[rows] > 0):
            return np.zeros((self.n_params, self.n_params))
        # the R-pass on some rows: (1/|rows|) Σ s_i ∇²L_i (weights scaled by n/|rows|)
        H = self._r_pass(np.eye(self.n_params), rows) * (len(rows) / self.n_samples)
        return 0.5 * (H + H.T)
