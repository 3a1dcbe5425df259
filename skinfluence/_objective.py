"""The empirical risk of a fitted linear model, in closed form.

Every model family skinfluence supports is a *linear* model: its decision values are
``z_i = W x_i + b`` (``W`` of shape ``(k, d)``, ``k`` outputs) and its training
objective, divided by ``C * n`` (the skinfluence convention), reads::

    R(θ) = (1/n) Σ_i s_i Σ_k c_ik L_k(y_i, z_i) + ½ θᵀ diag(q) θ + Σ_j a_j |θ_j|

with ``s_i`` the sample weight, ``c_ik`` the class weight that output k's loss of row i
carries (``c_{y_i}`` on every output of a softmax or a single-output model; for
one-vs-rest, ``c_k`` on the row's own class output and 1 elsewhere), ``q`` the
quadratic penalty and ``a`` the L1 penalty, both already divided by ``C * n``. Each
family only provides its loss ``L`` as a function of ``z`` (value, first and second
derivative in ``z``) and its recipe for ``c``, ``q`` and ``a``; everything in θ-space is
built here by the chain rule, ``∇θ L(z_i) = dL/dz ⊗ [x_i, 1]``.

Parameter layout (the ``params_`` contract): ``θ = [W.ravel(), b]``, i.e. ``coef_``
flattened row by row followed by ``intercept_`` when the model fits one. A family may
add an output that carries only an intercept (HuberRegressor's scale σ: its
coefficients are structural zeros, ``hidden``); the public layout (``reported(rows)``)
then leaves those zeros out.

Models linear in a feature map (kernel machines): ``x`` is first mapped to features
``φ(x)`` (``input_map``) and the model is linear in them; ``X`` then holds the training
features, ``inputs`` the training inputs as the model sees them, and ``param_map``
turns θ into the parameters the family reports (``params_``).
"""

import copy

import numpy as np
import scipy.sparse as sp


class LinearObjective:
    """R(θ) of a fitted linear model on its training data.

    Implements the risk interface (``docs/architecture.rst``); ``linear = True``:
    decision values are linear in θ, which the exact removal paths, the data-space
    ("woodbury") solver and the input perturbations rely on.

    Parameters
    ----------
    loss : object
        Per-sample loss in decision space. ``loss.value_grad(Z, y)`` returns the loss
        ``(n,)`` (summed over outputs) and ``dL/dz`` ``(n, k)``; ``loss.hessian(Z, y)``
        returns ``d²L/dz²`` ``(n, k, k)``; ``loss.shift_invariant``: adding the same
        constant to every output leaves the loss unchanged (softmax);
        ``loss.separable``: the loss is a sum over outputs (diagonal ``d²L/dz²``).
    coef : ndarray of shape (k, d)
    intercept : ndarray of shape (k,) or None
        None when the model fits no intercept.
    X : {ndarray, sparse matrix} of shape (n, d), float64
    y : ndarray
        Training targets in the encoding ``loss`` expects (``targets.encode``).
    sample_weight : ndarray of shape (n,)
        ``s_i``.
    class_weight : ndarray of shape (n,) or (n, k)
        ``c_ik``: per row (the same on every output) or per row and output.
    quad_penalty, l1_penalty : ndarray of shape (p,)
        Penalties in R units (objective divided by ``C * n``).
    targets : object
        ``targets.encode(y, n_samples)`` turns user labels into the loss's encoding
        with clear errors (e.g. labels unseen at fit); ``targets.classes`` (or None).
    weight_jacobian : ndarray of shape (n_groups, n_groups) or None
        For recipes where the class weights depend on the sample weights
        ("balanced"): entry ``[c, g]`` is ``∂c_g/∂s_j`` for a row j of group c.
    groups : ndarray of shape (n,) or None
        Group (class) index of each training row, used with ``weight_jacobian``.
    weighted_mask : ndarray of shape (n, k) or None
        Which outputs' losses carry the class weight of the row's group (all when
        None); used with ``weight_jacobian``.
    fixed : ndarray of bool of shape (p,) or None
        Parameters held at a bound (e.g. ``positive=True`` coefficients at zero).
    train_dz : ndarray of shape (n, k) or None
        dL/dz at the training rows, when the family knows it better than ``loss``
        does: for the hinge, the subgradient read off the SVM's dual coefficients at
        the optimum (``loss`` is then its smooth stand-in, used for the Hessian and
        for test points).
    pinned : ndarray of bool of shape (n, k) or None
        (row, output) pairs whose decision value is held fixed under a small
        re-weighting: an exact hinge's support vectors on the margin (m = 1).
    pin_directions : ndarray of shape (n, k) or None
        For a loss whose kink is a combination of outputs (a hinge of ``a_i·z_i``,
        e.g. ν-SVC's ``max(0, ρ − ỹ f)``): the output-space direction ``a_i`` held
        fixed for a pinned row (``a_i·z_i`` stays at the kink; mark the row pinned
        on one output only). None: each pinned output alone.
    hidden : ndarray of bool of shape (p,) or None
        Structural zeros: parameters held at zero and left out of the public
        ``params_`` layout (``reported``), e.g. the coefficients of an output that
        carries only an intercept (HuberRegressor's scale σ).
    predicted : sequence of int or None
        The outputs that are predictions (all when None): test losses by name
        (``models._losses.test_loss``) and ``prediction_gradients`` see only these.
    input_map : callable or None
        Maps inputs as the model sees them (n, d_in) to the features ``X`` is made of
        (n, d); None when the model is linear in its inputs. Test inputs pass
        through it (:meth:`features`).
    inputs : {ndarray, sparse matrix} or None
        The training inputs as the model sees them (``X`` when ``input_map`` is None):
        what refits of the model are given.
    param_map : callable or None
        Maps rows of full θ ``(m, p)`` to rows of the reported parameters
        ``(m, p_reported)`` (linear); None reports θ itself.
    """

    linear = True

    def __init__(
        self,
        loss,
        coef,
        intercept,
        X,
        y,
        sample_weight,
        class_weight,
        quad_penalty,
        l1_penalty,
        *,
        targets,
        weight_jacobian=None,
        groups=None,
        weighted_mask=None,
        fixed=None,
        train_dz=None,
        pinned=None,
        pin_directions=None,
        hidden=None,
        predicted=None,
        input_map=None,
        inputs=None,
        param_map=None,
    ):
        self.loss = loss
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = (
            None if intercept is None else np.asarray(intercept, dtype=np.float64)
        )
        k, d = self.coef.shape
        n = X.shape[0]
        self.X = X
        self.y = y
        self.targets = targets
        self.sample_weight = np.asarray(sample_weight, dtype=np.float64)
        cw = np.asarray(class_weight, dtype=np.float64)
        self.class_weight = np.broadcast_to(cw if cw.ndim == 2 else cw[:, None], (n, k))
        self.row_weight = self.sample_weight[:, None] * self.class_weight  # s_i c_ik
        self.quad_penalty = np.asarray(quad_penalty, dtype=np.float64)
        self.l1_penalty = np.asarray(l1_penalty, dtype=np.float64)
        self.weight_jacobian = weight_jacobian
        self.groups = groups
        self.weighted_mask = weighted_mask
        self.train_dz = train_dz
        self.pinned = pinned
        self.pin_directions = pin_directions
        self.input_map = input_map
        self.inputs = X if inputs is None else inputs
        self.param_map = param_map
        self.n_outputs, self.n_features = k, d
        self.n_params = k * d + (k if self.fit_intercept else 0)
        # An L1 coefficient sitting at exactly zero stays there under a small
        # re-weighting: influence lives on the active set only. Same for bounds.
        self.free = ~((self.l1_penalty > 0) & (self.params == 0))
        self.fixed = None if fixed is None else np.asarray(fixed, dtype=bool)
        if self.fixed is not None:
            self.free &= ~self.fixed
        self.reported_mask = np.ones(self.n_params, dtype=bool)  # θ in params_
        if hidden is not None:
            self.reported_mask = ~np.asarray(hidden, dtype=bool)
            self.free &= self.reported_mask
        self.predicted = (np.arange(k) if predicted is None
                          else np.asarray(predicted, dtype=np.intp))

    # -- parameters -----------------------------------------------------------------
    @property
    def fit_intercept(self):
        return self.intercept is not None

    @property
    def params(self):
        """θ = [coef.ravel(), intercept]."""
        parts = [self.coef.ravel()]
        if self.fit_intercept:
            parts.append(self.intercept)
        return np.concatenate(parts)

    def replace(self, *, params=None, row_weight=None, quad_penalty=None,
                l1_penalty=None, free=None):
        """A copy of this risk at other parameters, row weights or quadratic penalty.

        The risk itself is never modified: removal iterations evaluate
        ``risk.replace(params=θ, row_weight=w).gradient()`` and ``hessian()``.

        Parameters
        ----------
        params : ndarray of shape (n_params,), default=None
            θ in the ``params`` layout (all parameters, free or not).
        row_weight : ndarray of shape (n, k), default=None
            ``s_i c_ik`` of every (row, output) pair.
        quad_penalty, l1_penalty : ndarray of shape (n_params,), default=None
        free : ndarray of bool of shape (n_params,), default=None
            The parameters its derivatives are taken over (all: ``np.ones``).
        """
        new = copy.copy(self)
        if params is not None:
            k, d = self.n_outputs, self.n_features
            new.coef = np.asarray(params[: k * d], dtype=np.float64).reshape(k, d)
            if self.fit_intercept:
                new.intercept = np.asarray(params[k * d :], dtype=np.float64)
        if row_weight is not None:
            new.row_weight = row_weight
        if quad_penalty is not None:
            new.quad_penalty = quad_penalty
        if l1_penalty is not None:
            new.l1_penalty = l1_penalty
        if free is not None:
            new.free = np.asarray(free, dtype=bool)
        return new

    def reported(self, rows):
        """Rows of full θ ``(m, p)`` as the public parameters ``params_``: without
        the structural zeros (``hidden``), through ``param_map`` when given."""
        rows = rows[:, self.reported_mask]
        return rows if self.param_map is None else self.param_map(rows)

    def reported_change(self, steps):
        """Finite changes of θ (rows over all of θ) as changes of ``params_``: the
        same linear map (:meth:`reported`) unless the public parameters are a
        nonlinear function of θ (ν-SVC's ratio f/ρ overrides it)."""
        return self.reported(steps)

    def features(self, X):
        """Inputs as the model sees them → the features it is linear in."""
        return X if self.input_map is None else self.input_map(X)

    def param_index(self):
        """Index of θ for (output k, column f of [x, 1]); shape (k, d + fit_intercept)."""
        k, d = self.n_outputs, self.n_features
        idx = np.arange(k * d).reshape(k, d)
        if self.fit_intercept:
            idx = np.hstack([idx, (k * d + np.arange(k))[:, None]])
        return idx

    def fixed_directions(self):
        """Directions (p_free, m) that influences are kept orthogonal to.

        Flat directions: with a shift-invariant loss (softmax), adding the same constant
        to every output changes nothing — for the intercepts always, for the
        coefficients of a feature when they carry no quadratic penalty; fitted
        solutions have no component along them. Pinned directions: ∂z_ik/∂θ for the
        (row, output) pairs held on the margin (``pinned``).
        """
        cols = []
        if self.loss.shift_invariant and self.n_outputs > 1:
            idx = self.param_index()
            for f in range(idx.shape[1]):
                members = idx[:, f]
                if np.all(self.free[members]) and np.all(
                    self.quad_penalty[members] == 0
                ):
                    v = np.zeros(self.n_params)
                    v[members] = 1.0
                    cols.append(v[self.free][:, None])
        if self.pinned is not None and self.pinned.any():
            cols.append(self.pin_gradients())
        if not cols:
            return np.zeros((int(self.free.sum()), 0))
        return np.hstack(cols)

    def pin_gradients(self, mask=None):
        """∂(a·z_i)/∂θ of the pinned (row, output) pairs in ``mask`` (all of
        ``pinned`` when None) as columns (p_free, m), output by output, then row:
        ``a = e_output``, or the row's ``pin_directions`` when given."""
        mask = self.pinned if mask is None else mask
        cols = []
        for k in range(self.n_outputs):
            rows = np.flatnonzero(mask[:, k])
            if rows.size:
                if self.pin_directions is None:
                    dZ = np.zeros((rows.size, self.n_outputs))
                    dZ[:, k] = 1.0
                else:
                    dZ = self.pin_directions[rows]
                G = self.row_gradients(self.X[rows], dZ)
                cols.append(np.asarray(G.toarray() if sp.issparse(G) else G).T)
        if not cols:
            return np.zeros((int(self.free.sum()), 0))
        return np.hstack(cols)

    # -- decision values and loss derivatives ---------------------------------------
    def decision(self, X):
        Z = np.asarray(X @ self.coef.T)
        if self.fit_intercept:
            Z = Z + self.intercept
        return Z

    def row_gradients(self, X, dZ):
        """Stack ∇θ L for each row: dL/dz ⊗ [x, 1] in the θ layout, free columns only.

        Dense X gives a dense (n, p_free) array, sparse X a CSR matrix.
        """
        k = self.n_outputs
        if sp.issparse(X):
            X = sp.csr_matrix(X)
            blocks = [X.multiply(dZ[:, [j]]) for j in range(k)]
            if self.fit_intercept:
                blocks.append(sp.csr_matrix(dZ))
            G = sp.hstack(blocks, format="csr")
            return G[:, self.free] if not self.free.all() else G
        n = X.shape[0]
        G = np.empty((n, self.n_params))
        d = self.n_features
        for j in range(k):  # output j's block dL/dz_j · x, written in place
            np.multiply(X, dZ[:, j : j + 1], out=G[:, j * d : (j + 1) * d])
        if self.fit_intercept:
            G[:, k * self.n_features :] = dZ
        return G if self.free.all() else G[:, self.free]

    def test_gradients(self, X, y, loss=None):
        """∇θ L(z_test) of the plain per-sample loss (no sample or class weight).

        ``loss`` replaces the model's own loss on the test side when given.
        """
        _, dZ = (loss or self.loss).value_grad(self.decision(X), y)
        return self.row_gradients(X, dZ)

    def training_dz(self):
        """dL/dz at the training rows (``train_dz`` when given)."""
        if self.train_dz is not None:
            return self.train_dz
        return self.loss.value_grad(self.decision(self.X), self.y)[1]

    def output_jacobians(self, X):
        """∂z_a/∂θ for each output a: k matrices (n, p_free), e_a ⊗ [x, 1] per row."""
        n, k = X.shape[0], self.n_outputs
        out = []
        for a in range(k):
            e = np.zeros((n, k))
            e[:, a] = 1.0
            out.append(self.row_gradients(X, e))
        return out

    def prediction_gradients(self, X):
        """∇θ of the mean predicted decision value (1/k) Σ_k z_k of each row (over
        the ``predicted`` outputs)."""
        dZ = np.zeros((X.shape[0], self.n_outputs))
        dZ[:, self.predicted] = 1.0 / len(self.predicted)
        return self.row_gradients(X, dZ)

    def row_curvature(self):
        """D_j = diag(s_j c_j) d²L/dz²_j of every training row, (n, k, k):
        ``D[j, a, b] = s_j c_ja h_j,ab``."""
        Hz = self.loss.hessian(self.decision(self.X), self.y)
        return self.row_weight[:, :, None] * Hz

    def test_loss(self, X, y):
        return self.loss.value_grad(self.decision(X), y)[0]

    def train_gradients(self):
        """n · ∂(∇R)/∂s_j for every training row j, as (row part, offsets).

        Row part: ``Σ_k c_jk ∇θ L_k(z_j)`` (a matrix with one row per training point).
        Offsets: ``(n_groups, p_free)`` or None; row j's full gradient is
        ``row part[j] + offsets[groups[j]]``. Offsets appear when the recipe makes
        class weights depend on the sample weights ("balanced"):
        ``Σ_g ∂c_g/∂s_j · Σ_{i∈g} s_i ∇θ(class-weighted part of L(z_i))``.
        """
        dZ = self.training_dz()
        rows = self.row_gradients(self.X, dZ * self.class_weight)
        offsets = None
        if self.weight_jacobian is not None:
            n_groups = self.weight_jacobian.shape[0]
            member = sp.csr_matrix(
                (self.sample_weight, (self.groups, np.arange(len(self.groups)))),
                shape=(n_groups, len(self.groups)),
            )
            mask = 1.0 if self.weighted_mask is None else self.weighted_mask
            group_sums = member @ self.row_gradients(self.X, dZ * mask)
            if sp.issparse(group_sums):
                group_sums = group_sums.toarray()
            offsets = self.weight_jacobian @ np.asarray(group_sums)
        return rows, offsets

    def gradient(self):
        """∇R(θ̂) on the free parameters (zero at an exact optimum)."""
        dZ = self.training_dz() * self.row_weight
        n = self.X.shape[0]
        # Σ_i dL/dz_i ⊗ [x_i, 1] by one product with X (no n × p array)
        parts = [np.asarray(self.X.T @ dZ).T.ravel()]
        if self.fit_intercept:
            parts.append(dZ.sum(axis=0))
        g = np.concatenate(parts)[self.free] / n
        theta = self.params[self.free]
        g += self.quad_penalty[self.free] * theta
        g += self.l1_penalty[self.free] * np.sign(theta)
        return g

    def hessian_product(self, V, rows=None):
        """∇²R(θ̂) V on the free parameters, V of shape (p_free, m), never forming H.

        ``(1/n) [X, 1]ᵀ (D ⊙ ([X, 1] V)) + diag(q) V`` (two products with X; sparse X
        stays sparse), plus ``penalty_hessian_product(V)`` for objectives with a
        non-diagonal penalty (a group penalty's blocks). ``rows``: the Hessian of
        those training rows only, their curvature scaled by n / len(rows) (an
        unbiased estimate of H, for LiSSA); the penalty is kept.
        """
        X, D = self.X, self._scaled_curvature()
        if rows is not None:
            X, D = X[rows], D[rows] * (X.shape[0] / len(rows))
        k, d = self.n_outputs, self.n_features
        all_free = self.free.all()
        if all_free:
            full = V
        else:
            full = np.zeros((self.n_params, V.shape[1]))
            full[self.free] = V
        # θ layout: output a's coefficients are the slice a·d:(a+1)·d, its
        # intercept the entry k·d + a (views, no copies of the p × m block)
        Zv = np.stack([np.asarray(X @ full[a * d:(a + 1) * d])
                       + (full[k * d + a] if self.fit_intercept else 0.0)
                       for a in range(k)], axis=1)  # (n, k, m): [X, 1] V per output
        T = Zv * D[:, 0, 0][:, None, None] if k == 1 else \
            np.einsum("nab,nbm->nam", D, Zv)
        out = np.empty((self.n_params, V.shape[1]))
        for a in range(k):
            out[a * d:(a + 1) * d] = np.asarray(X.T @ T[:, a, :])
            if self.fit_intercept:
                out[k * d + a] = T[:, a, :].sum(axis=0)
        if not all_free:
            out = out[self.free]
        out += self.quad_penalty[self.free][:, None] * V
        extra = getattr(self, "penalty_hessian_product", None)
        return out if extra is None else out + extra(V)  # a non-diagonal penalty

    def _scaled_curvature(self):
        """D_j / n of every training row (computed once)."""
        if getattr(self, "_curvature", None) is None:
            self._curvature = self.row_curvature() / self.X.shape[0]
        return self._curvature

    def hessian_diagonal(self):
        """diag ∇²R(θ̂) on the free parameters (the Jacobi preconditioner of CG),
        without a non-diagonal penalty's part."""
        X, D = self.X, self._scaled_curvature()
        X2 = X.multiply(X) if sp.issparse(X) else X * X
        idx = self.param_index()
        diag = np.zeros(self.n_params)
        for a in range(self.n_outputs):
            w = D[:, a, a]
            diag[idx[a, : self.n_features]] = np.asarray(X2.T @ w).ravel()
            if self.fit_intercept:
                diag[idx[a, -1]] = w.sum()
        return diag[self.free] + self.quad_penalty[self.free]

    def hessian(self):
        """∇²R(θ̂) on the free parameters, dense (p_free, p_free).

        (1/n) Σ_i J_iᵀ diag(s_i c_i) (d²L/dz²)_i J_i + diag(q), assembled block by block
        over pairs of outputs (a, b): [X, 1]ᵀ diag(s c_a h_ab / n) [X, 1].
        """
        X, n = self.X, self.X.shape[0]
        D = self.row_curvature()
        idx = self.param_index()
        H = np.zeros((self.n_params, self.n_params))
        for a in range(self.n_outputs):
            for b in range(a, a + 1 if self.loss.separable else self.n_outputs):
                w = D[:, a, b] / n
                block = _weighted_gram(X, w, self.fit_intercept)
                H[np.ix_(idx[a], idx[b])] = block
                if b != a:
                    H[np.ix_(idx[b], idx[a])] = block.T
        H[np.diag_indices_from(H)] += self.quad_penalty
        H = 0.5 * (H + H.T)  # exact symmetry (the Gram products are not bitwise)
        return H[np.ix_(self.free, self.free)]


def _weighted_gram(X, w, fit_intercept):
    """[X, 1]ᵀ diag(w) [X, 1] as a dense array."""
    if sp.issparse(X):
        Xw = sp.csr_matrix(X).multiply(w[:, None]).tocsr()
        XtWX = (X.T @ Xw).toarray()
        Xtw = np.asarray(Xw.sum(axis=0)).ravel()
    elif np.all(w >= 0):  # (√w X)ᵀ(√w X): numpy runs Aᵀ A as a SYRK, half the flops
        Xs = X * np.sqrt(w)[:, None]
        XtWX = Xs.T @ Xs
        Xtw = w @ X
    else:
        Xw = X * w[:, None]
        XtWX = X.T @ Xw
        Xtw = Xw.sum(axis=0)
    if not fit_intercept:
        return XtWX
    d = X.shape[1]
    out = np.empty((d + 1, d + 1))
    out[:d, :d] = XtWX
    out[:d, d] = out[d, :d] = Xtw
    out[d, d] = w.sum()
    return out
