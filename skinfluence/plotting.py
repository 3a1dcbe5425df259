"""Plots of influence: :class:`InfluenceDisplay` (scikit-learn's Display convention).

matplotlib is an optional dependency (``pip install "skinfluence[plot]"``); it is
imported only when something is drawn.
"""

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.utils import _safe_indexing
from sklearn.utils._optional_dependencies import check_matplotlib_support

from ._refit import refit_loss_changes
from .models import unwrap
from .models._losses import test_loss as resolve_test_loss

KINDS = ("loo", "top", "self_influence")


class InfluenceDisplay:
    """Influence visualisation: leave-one-out check, top training rows, self-influence.

    It is recommended to create a display with :meth:`from_explainer` or
    :meth:`from_estimator`, which compute what the chosen ``kind`` needs and draw it.
    All parameters are stored as attributes; :meth:`plot` draws one ``kind`` from
    them.

    Parameters
    ----------
    influence : ndarray of shape (n_train,), default=None
        Loss influence ``I_up,loss`` of every training row on one test point (a row of
        :meth:`InfluenceExplainer.loss_influence`; > 0 harmful, < 0 helpful). Needed
        by ``kind="top"``.
    predicted_loo : ndarray of shape (n_pairs,), default=None
        Predicted changes of the test loss when a training row is removed (entries of
        :meth:`InfluenceExplainer.leave_one_out`). Needed by ``kind="loo"``.
    actual_loo : ndarray of shape (n_pairs,), default=None
        The actual changes of the same (test point, training row) pairs, from refits.
        Needed by ``kind="loo"``.
    self_influence : ndarray of shape (n_train,), default=None
        :meth:`InfluenceExplainer.self_influence`. Needed by
        ``kind="self_influence"``.
    X_train : array-like of shape (n_train, n_features), default=None
        Training features; shown as images by ``kind="top"`` with ``image_shape``.
    y_train : array-like of shape (n_train,), default=None
        Training labels, shown next to the training rows by ``kind="top"``.
    x_test : array-like of shape (n_features,), default=None
        The explained test point (shown as an image by ``kind="top"``).
    y_test : scalar, default=None
        Its label.
    test_index : int, default=None
        Its row number, used in the title.
    y_pred : scalar, default=None
        The model's prediction for the test point, shown in the title.
    row_names : array-like of shape (n_train,), default=None
        Labels of the training rows (e.g. a DataFrame's index,
        :attr:`InfluenceExplainer.training_index_`); row numbers when None.
    marked : array-like of int, default=None
        Training rows marked on the ``kind="self_influence"`` curve (e.g. rows known
        to be mislabelled).
    method : str, default=None
        How ``predicted_loo`` was computed (``leave_one_out``'s ``method``), for the
        axis label.
    name : str, default=None
        Name of the model, for titles and legends.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the plot.
    figure_ : matplotlib Figure
        Figure containing the plot.
    kind_ : str
        The kind last drawn.
    scatter_ : matplotlib PathCollection or None
        ``kind="loo"``: predicted vs actual points. ``kind="self_influence"``: the
        marked rows (None when no rows are marked).
    line_ : matplotlib Line2D or None
        ``kind="loo"``: the y = x line. ``kind="self_influence"``: the ranked curve.
    bars_ : matplotlib BarContainer or None
        ``kind="top"`` without images: the bars.
    image_ : matplotlib AxesImage or None
        ``kind="top"`` with images: the mosaic of test and training images.
    text_ : list of matplotlib Text or None
        ``kind="top"`` with images: the score under each training image.
    pearson_r_ : float or None
        ``kind="loo"``: Pearson correlation of predicted and actual changes.

    See Also
    --------
    InfluenceDisplay.from_explainer : Compute and plot from a fitted explainer.
    InfluenceDisplay.from_estimator : Fit an explainer, then compute and plot.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skinfluence.plotting import InfluenceDisplay
    >>> predicted = np.array([0.1, -0.2, 0.05, 0.3])
    >>> actual = np.array([0.12, -0.25, 0.04, 0.33])
    >>> display = InfluenceDisplay(predicted_loo=predicted, actual_loo=actual)
    >>> display = display.plot(kind="loo")
    >>> round(display.pearson_r_, 3)
    0.999
    """

    def __init__(self, *, influence=None, predicted_loo=None, actual_loo=None,
                 self_influence=None, X_train=None, y_train=None, x_test=None,
                 y_test=None, test_index=None, marked=None, method=None, name=None,
                 y_pred=None, row_names=None):
        self.influence = influence
        self.predicted_loo = predicted_loo
        self.actual_loo = actual_loo
        self.self_influence = self_influence
        self.X_train = X_train
        self.y_train = y_train
        self.x_test = x_test
        self.y_test = y_test
        self.test_index = test_index
        self.marked = marked
        self.method = method
        self.name = name
        self.y_pred = y_pred
        self.row_names = row_names

    def plot(self, ax=None, *, kind="top", k=10, image_shape=None, symlog=False,
             **kwargs):
        """Draw one kind of influence plot.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.
        kind : {"top", "loo", "self_influence"}, default="top"
            - "top": the ``k`` most helpful and ``k`` most harmful training rows for
              one test point (``influence``): a bar chart of their scores, or their
              images when ``image_shape`` is given.
            - "loo": predicted vs actual leave-one-out change of the test loss
              (``predicted_loo``, ``actual_loo``), with the line y = x and Pearson R
              in the legend.
            - "self_influence": the self-influence of every training row, sorted
              (most negative, i.e. most self-influential, first), with the
              ``marked`` rows highlighted.
        k : int, default=10
            ``kind="top"``: number of training rows per side.
        image_shape : tuple of int or "auto", default=None
            ``kind="top"``: show the training rows (``X_train``) and the test point
            (``x_test``) as images of this shape, e.g. ``(8, 8)`` for digits.
            "auto": a square image, when the number of features is a perfect square.
            None: a bar chart.
        symlog : bool, default=False
            ``kind="self_influence"``: a symmetric-log y axis (linear within 1% of
            the largest magnitude), so that a few extreme rows do not flatten the
            rest of the curve.
        **kwargs : dict
            Passed to the main matplotlib call: ``scatter`` ("loo"), ``barh`` or
            ``imshow`` ("top"), ``plot`` ("self_influence").

        Returns
        -------
        display : InfluenceDisplay
            Object that stores computed values.
        """
        _check_kind(kind)
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        for attr in ("scatter_", "line_", "bars_", "image_", "text_", "pearson_r_"):
            setattr(self, attr, None)
        if kind == "loo":
            self._plot_loo(ax, **kwargs)
        elif kind == "top":
            self._plot_top(ax, k, image_shape, **kwargs)
        else:
            self._plot_self_influence(ax, symlog=symlog, **kwargs)
        self.kind_ = kind
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    # -- the kinds --------------------------------------------------------------------
    def _plot_loo(self, ax, **kwargs):
        predicted, actual = self._require("loo", "predicted_loo", "actual_loo")
        predicted, actual = np.ravel(predicted), np.ravel(actual)
        if predicted.shape != actual.shape:
            raise ValueError(
                f"predicted_loo and actual_loo must have the same number of entries; "
                f"got {predicted.size} and {actual.size}."
            )
        r = None
        if predicted.size > 1 and np.ptp(predicted) > 0 and np.ptp(actual) > 0:
            r = float(np.corrcoef(predicted, actual)[0, 1])
        self.pearson_r_ = r
        label = self.name or "training rows"
        if r is not None:
            label = f"{label} (Pearson R = {r:.3f})"
        self.scatter_ = ax.scatter(actual, predicted,
                                   **{"s": 15, "alpha": 0.7, "label": label, **kwargs})
        both = np.concatenate([predicted, actual])
        lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
        pad = 0.05 * (hi - lo) or 1e-12
        (self.line_,) = ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--",
                                lw=1, label="y = x")
        method = f" ({self.method})" if self.method else ""
        ax.set_xlabel("Actual change of test loss (refit without the row)")
        ax.set_ylabel(f"Predicted change of test loss{method}")
        ax.set_title("Leave-one-out: predicted vs actual")
        ax.legend(loc="upper left")

    def _plot_top(self, ax, k, image_shape, **kwargs):
        (influence,) = self._require("top", "influence")
        influence = np.ravel(influence)
        n = influence.size
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer; got {k!r}.")
        k = min(k, max(1, n // 2))
        order = np.argsort(influence, kind="stable")
        helpful, harmful = order[:k], order[::-1][:k]
        title = "Most helpful and harmful training rows"
        if self.test_index is not None:
            title += f" for test point #{self.test_index}"
        facts = [] if self.y_test is None else [f"label {self.y_test}"]
        if self.y_pred is not None:
            facts.append(f"predicted {self.y_pred}")
        if facts:
            title += f" ({', '.join(facts)})"
        if image_shape is not None:
            self._plot_images(ax, influence, helpful, harmful, image_shape, **kwargs)
        else:
            rows = np.concatenate([harmful, helpful[::-1]])  # sorted, harmful on top
            colors = ["tab:red"] * len(harmful) + ["tab:blue"] * len(helpful)
            self.bars_ = ax.barh(np.arange(len(rows)), influence[rows],
                                 **{"color": colors, **kwargs})
            ax.set_yticks(np.arange(len(rows)), [self._row_label(j) for j in rows])
            ax.invert_yaxis()
            ax.axvline(0.0, color="k", lw=0.8)
            ax.set_xlabel("Influence on the test loss (I_up,loss: > 0 harmful, "
                          "< 0 helpful)")
        ax.set_title(title)

    def _plot_images(self, ax, influence, helpful, harmful, image_shape, **kwargs):
        if self.X_train is None:
            raise ValueError("Images need the training features: pass X_train.")
        X_train = _dense_rows(self.X_train)
        shape = _image_shape(image_shape, X_train.shape[1])
        h, w = shape
        gap = max(3, int(np.ceil(0.8 * h)))  # room for the labels above each tile
        k = len(helpful)
        apart = w + max(2, w // 2)  # the test tile's column, then a wide gap
        mosaic = np.full((2 * (h + gap), apart + k * (w + 1)), np.nan)
        # (top, left, row): the test point alone on the left, centred vertically
        tiles = [((h + 2 * gap) // 2, 0, None)] if self.x_test is not None else []
        tiles += [(gap, apart + c * (w + 1), j) for c, j in enumerate(helpful)]
        tiles += [(h + 2 * gap, apart + c * (w + 1), j) for c, j in enumerate(harmful)]
        self.text_ = []
        for top, left, j in tiles:
            pixels = np.ravel(self.x_test) if j is None else X_train[j]
            mosaic[top:top + h, left:left + w] = np.reshape(pixels, shape)
            if j is None:
                label = "" if self.y_test is None else f" y={self.y_test}"
                pred = "" if self.y_pred is None else f"\npred {self.y_pred}"
                text = f"test{label}{pred}"
            else:
                text = f"{self._row_label(j, compact=True)}\n{influence[j]:+.2g}"
            self.text_.append(ax.text(left + (w - 1) / 2, top - 0.8, text,
                                      ha="center", va="bottom", fontsize=6))
        masked = np.ma.masked_invalid(mosaic)
        self.image_ = ax.imshow(masked, **{"cmap": "gray_r",
                                           "interpolation": "nearest", **kwargs})
        ax.set_xticks([])
        ax.set_yticks([gap + (h - 1) / 2, h + 2 * gap + (h - 1) / 2],
                      ["helpful", "harmful"])

    def _plot_self_influence(self, ax, symlog=False, **kwargs):
        (values,) = self._require("self_influence", "self_influence")
        values = np.ravel(values)
        order = np.argsort(values, kind="stable")
        ranks = np.arange(values.size)
        (self.line_,) = ax.plot(ranks, values[order],
                                **{"label": self.name or "training rows", **kwargs})
        if self.marked is not None:
            marked = np.unique(np.asarray(self.marked, dtype=np.intp))
            rank_of = np.empty(values.size, dtype=np.intp)
            rank_of[order] = ranks
            r = rank_of[marked]
            top = int(np.sum(r < max(1, int(np.ceil(0.1 * values.size)))))
            self.scatter_ = ax.scatter(
                r, values[marked], color="tab:red", marker="x", zorder=3,
                label=f"marked rows ({top} of {len(marked)} in the top 10%)",
            )
        ax.set_xlabel("Rank (most self-influential first)")
        ax.set_ylabel("Self-influence I_up,loss(z_j, z_j)")
        if symlog:
            scale = float(np.max(np.abs(values), initial=0.0))
            ax.set_yscale("symlog", linthresh=0.01 * scale if scale > 0 else 1.0)
        ax.set_title("Self-influence of the training rows")
        ax.legend(loc="lower right")

    # -- helpers ----------------------------------------------------------------------
    def _require(self, kind, *names):
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise ValueError(
                f"kind={kind!r} needs {', '.join(missing)}; create the display with "
                f"InfluenceDisplay.from_explainer(..., kind={kind!r})."
            )
        return [getattr(self, n) for n in names]

    def _row_label(self, j, compact=False):
        name = j if self.row_names is None else np.asarray(self.row_names,
                                                          dtype=object)[j]
        if self.y_train is None:
            return f"#{name}"
        label = np.asarray(self.y_train)[j]
        return f"#{name} y={label}" if compact else f"#{name} (y={label})"

    # -- constructors -----------------------------------------------------------------
    @classmethod
    def from_explainer(cls, explainer, X=None, y=None, *, kind="top", test_index=0,
                       k=10, X_train=None, y_train=None, image_shape=None,
                       method="influence", actual=None, rows=None, marked=None,
                       test_loss=None, n_jobs=None, name=None, ax=None, **kwargs):
        """Compute what ``kind`` needs from a fitted explainer, and plot it.

        Cheap by default: no refit, except for ``kind="loo"`` without ``actual``,
        which refits the model ``k`` times (once without each of the ``k`` training
        rows of largest predicted effect).

        Parameters
        ----------
        explainer : InfluenceExplainer
            A fitted explainer.
        X : array-like of shape (n_test, n_features), default=None
            Test inputs ("top" and "loo"; unused by "self_influence").
        y : array-like of shape (n_test,), default=None
            Test labels.
        kind : {"top", "loo", "self_influence"}, default="top"
            What to plot (see :meth:`plot`).
        test_index : int, default=0
            ``kind="top"``: the row of ``X`` to explain.
        k : int, default=10
            ``kind="top"``: training rows shown per side. ``kind="loo"`` without
            ``actual`` and ``rows``: number of training rows refit, those with the
            largest predicted effect ``max_t |leave_one_out[t, j]|``.
        X_train, y_train : array-like, default=None
            The training data the explainer was fitted on. Needed for images
            (``X_train``) and for refits (``kind="loo"`` without ``actual``);
            ``y_train`` labels the rows of ``kind="top"``.
        image_shape : tuple of int or "auto", default=None
            ``kind="top"``: show images (see :meth:`plot`).
        method : {"influence", "newton", "exact"}, default="influence"
            ``kind="loo"``: method of :meth:`InfluenceExplainer.leave_one_out`.
        actual : array-like of shape (n_test, n_rows), default=None
            ``kind="loo"``: the actual changes of the test losses when each of the
            training rows ``rows`` is removed (e.g. from your own refits). When None
            they are computed by refitting ``clone(explainer.estimator_)`` without
            each row (in parallel with joblib), the test loss measured with the
            explainer's test loss.
        rows : array-like of int, default=None
            ``kind="loo"``: the training rows of the columns of ``actual``, or to
            refit. Default: all rows when ``actual`` has ``n_train`` columns,
            otherwise the ``k`` rows of largest predicted effect.
        marked : array-like of int, default=None
            ``kind="self_influence"``: training rows to highlight.
        test_loss : str or object, default=None
            As in :meth:`InfluenceExplainer.loss_influence`.
        n_jobs : int, default=None
            joblib workers for the refits.
        name : str, default=None
            Name of the model for the legend; the estimator's class name when None.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        **kwargs : dict
            Passed to :meth:`plot` (and on to matplotlib).

        Returns
        -------
        display : InfluenceDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn.linear_model import LogisticRegression
        >>> from sklearn.preprocessing import StandardScaler
        >>> from skinfluence import InfluenceExplainer
        >>> from skinfluence.plotting import InfluenceDisplay
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> X = StandardScaler().fit_transform(X)[:, :5]
        >>> model = LogisticRegression(solver="newton-cholesky", tol=1e-10)
        >>> explainer = InfluenceExplainer(model).fit(X[:300], y[:300])
        >>> display = InfluenceDisplay.from_explainer(
        ...     explainer, X[300:320], y[300:320], kind="loo", k=5,
        ...     X_train=X[:300], y_train=y[:300], method="newton")
        >>> display.actual_loo.shape  # 20 test points x 5 refits
        (100,)
        >>> bool(display.pearson_r_ > 0.9)
        True
        """
        check_matplotlib_support(f"{cls.__name__}.from_explainer")
        _check_kind(kind)
        if name is None:
            name = type(unwrap(explainer.estimator)).__name__
        common = {"X_train": X_train, "y_train": y_train, "name": name}
        if kind == "self_influence":
            display = cls(self_influence=explainer.self_influence(), marked=marked,
                          **common)
            return display.plot(ax=ax, kind=kind, **kwargs)
        if X is None or y is None:
            raise ValueError(f"kind={kind!r} needs the test points X and y.")
        if kind == "top":
            x_t = _safe_indexing(X, [test_index])
            y_t = _safe_indexing(y, [test_index])
            influence = explainer.loss_influence(x_t, y_t, test_loss=test_loss)[0]
            index = explainer.training_index_
            display = cls(influence=influence, x_test=_numeric_row(x_t, image_shape),
                          y_test=np.asarray(y_t)[0], test_index=test_index,
                          y_pred=np.asarray(explainer.predict(x_t))[0],
                          row_names=None if isinstance(index, np.ndarray) else index,
                          **common)
            return display.plot(ax=ax, kind=kind, k=k, image_shape=image_shape,
                                **kwargs)
        predicted = explainer.leave_one_out(X, y, method=method, test_loss=test_loss)
        n_train = predicted.shape[1]
        if actual is not None:
            actual = np.asarray(actual, dtype=float)
            if actual.ndim == 1:
                actual = actual[None, :]
            if rows is None and actual.shape[1] != n_train:
                raise ValueError(
                    f"actual has {actual.shape[1]} columns but there are {n_train} "
                    "training rows: pass rows= (the training row of each column)."
                )
        if rows is None:
            if actual is not None:
                rows = np.arange(n_train)
            else:
                effect = np.max(np.abs(predicted), axis=0)
                rows = np.argsort(-effect, kind="stable")[: min(k, n_train)]
        rows = np.asarray(rows, dtype=np.intp)
        if actual is None:
            actual = refit_loo(explainer, X, y, rows, X_train=X_train, y_train=y_train,
                               test_loss=test_loss, n_jobs=n_jobs)
        if actual.shape != (predicted.shape[0], len(rows)):
            raise ValueError(
                f"actual must have shape (n_test, n_rows) = "
                f"{(predicted.shape[0], len(rows))}; got {actual.shape}."
            )
        display = cls(predicted_loo=predicted[:, rows].ravel(),
                      actual_loo=actual.ravel(), method=method, **common)
        return display.plot(ax=ax, kind=kind, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, X_train, y_train, X_test, y_test, *,
                       kind="top", damping=0.0, smoothing="auto", **kwargs):
        """Fit an :class:`InfluenceExplainer` on the training data, then plot.

        Parameters
        ----------
        estimator : estimator object
            A supported linear model (unfitted), as for :class:`InfluenceExplainer`.
        X_train, y_train : array-like
            Training data.
        X_test, y_test : array-like
            Test points.
        kind : {"top", "loo", "self_influence"}, default="top"
            What to plot (see :meth:`plot`).
        damping, smoothing : float
            Passed to :class:`InfluenceExplainer`.
        **kwargs : dict
            Passed to :meth:`from_explainer` (e.g. ``test_index``, ``k``,
            ``image_shape``, ``method``, ``marked``, ``ax``).

        Returns
        -------
        display : InfluenceDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_digits
        >>> from sklearn.linear_model import LogisticRegression
        >>> from skinfluence.plotting import InfluenceDisplay
        >>> X, y = load_digits(n_class=2, return_X_y=True)
        >>> display = InfluenceDisplay.from_estimator(
        ...     LogisticRegression(C=0.1, solver="newton-cholesky", tol=1e-10),
        ...     X[:300] / 16, y[:300], X[300:] / 16, y[300:], kind="top", k=4,
        ...     image_shape=(8, 8))
        >>> len(display.text_)  # the test image and 4 + 4 training images
        9
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        from .explainer import InfluenceExplainer

        explainer = InfluenceExplainer(estimator, damping=damping,
                                       smoothing=smoothing).fit(X_train, y_train)
        return cls.from_explainer(explainer, X_test, y_test, kind=kind,
                                  X_train=X_train, y_train=y_train, **kwargs)


def refit_loo(explainer, X, y, rows, *, X_train, y_train, test_loss=None,
              n_jobs=None):
    """Actual change of each test loss when training row j is removed and refit.

    Refits ``clone(explainer.estimator_)`` once on all rows (the baseline, so that
    solver noise cancels) and once per row of ``rows`` (with the
    explainer's sample weights, minus row j) and measures the test loss the explainer
    uses (its model's loss, or ``test_loss``) on the refit's decision values.

    Parameters
    ----------
    explainer : InfluenceExplainer
        A fitted explainer.
    X, y : array-like
        Test points.
    rows : array-like of int
        Training rows to remove, one refit each.
    X_train, y_train : array-like
        The training data the explainer was fitted on.
    test_loss : str or object, default=None
        As in :meth:`InfluenceExplainer.loss_influence`.
    n_jobs : int, default=None
        joblib workers.

    Returns
    -------
    actual : ndarray of shape (n_test, len(rows))
        ``L(z_t, θ̂_{−j}) − L(z_t, θ̂)``; compare with
        ``explainer.leave_one_out(X, y)[:, rows]``.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> from skinfluence.plotting import refit_loo
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)[:, :5]
    >>> model = LogisticRegression(solver="newton-cholesky", tol=1e-12)
    >>> explainer = InfluenceExplainer(model).fit(X[:300], y[:300])
    >>> actual = refit_loo(explainer, X[300:305], y[300:305], [0, 1],
    ...                    X_train=X[:300], y_train=y[:300])
    >>> exact = explainer.leave_one_out(X[300:305], y[300:305], method="exact")
    >>> bool(abs(actual - exact[:, [0, 1]]).max() < 1e-6)
    True
    """
    if X_train is None or y_train is None:
        raise ValueError(
            "Actual leave-one-out changes need refits on the training data: pass "
            "X_train and y_train (those the explainer was fitted on), or actual=."
        )
    if isinstance(explainer.estimator_, FrozenEstimator):
        raise ValueError(
            "A FrozenEstimator is not refitted, so actual leave-one-out changes "
            "cannot be computed by refitting: pass actual=."
        )
    n = len(explainer.sample_weight_)
    if len(y_train) != n:
        raise ValueError(
            f"X_train/y_train have {len(y_train)} rows but the explainer was fitted "
            f"on {n}."
        )
    risk = explainer.risk_
    loss = risk.loss if test_loss is None else resolve_test_loss(test_loss, risk)
    y_enc = risk.targets.encode(y, len(y))
    return refit_loss_changes(explainer.estimator_, X_train, y_train,
                              explainer.sample_weight_, rows, X, y_enc, loss,
                              n_jobs=n_jobs)


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(
            f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}."
        )


def _numeric_row(x, image_shape):
    """The test row as numbers for an image; None when it is not numeric (e.g. a
    DataFrame with string columns for a ColumnTransformer), which bars do not need."""
    try:
        return _dense_rows(x)[0]
    except (TypeError, ValueError):
        if image_shape is not None:
            raise ValueError(
                "Images need numeric features; these have non-numeric columns. Use "
                "image_shape=None (a bar chart)."
            ) from None
        return None


def _image_shape(image_shape, n_features):
    if isinstance(image_shape, str):
        if image_shape != "auto":
            raise ValueError(
                f"image_shape must be a tuple, 'auto' or None; got {image_shape!r}."
            )
        side = int(round(np.sqrt(n_features)))
        if side * side != n_features:
            raise ValueError(
                f"image_shape='auto' needs a square number of features; got "
                f"{n_features}. Pass image_shape=(height, width)."
            )
        return (side, side)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 2 or shape[0] * shape[1] != n_features:
        raise ValueError(
            f"image_shape {tuple(image_shape)} does not match the {n_features} "
            "features (height * width must equal n_features)."
        )
    return shape


def _dense_rows(X):
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.asarray(X, dtype=float)
