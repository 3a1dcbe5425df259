"""LinearSVC and SVC(kernel="linear") (in progress)."""

SUPPORTED = {}
