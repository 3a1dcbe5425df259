"""The estimator checks that cannot pass for any wrapped model, with their reasons."""

SHAPE_REASON = (
    "transform returns one column per training row, so the weighted and the "
    "row-repeated/row-dropped fits return matrices of different widths; predict, "
    "predict_proba and decision_function of the same fits do agree"
)
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data": SHAPE_REASON,
    "check_sample_weight_equivalence_on_sparse_data": SHAPE_REASON,
}


def expected_failed_checks(extra=None):
    """``expected_failed_checks`` for ``parametrize_with_checks``: the shared checks,
    plus ``extra`` (a dict, or a function of the estimator returning one)."""
    def checks(estimator):
        more = extra(estimator) if callable(extra) else (extra or {})
        return {**EXPECTED_FAILED, **more}
    return checks
