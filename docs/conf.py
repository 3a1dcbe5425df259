"""Sphinx configuration of the skinfluence documentation.

Build with ``docs/build.sh`` (warnings are errors). No network access is needed at
build time: intersphinx is not used, and the gallery only loads datasets shipped
with scikit-learn.
"""

import os
import sys
import warnings

import skinfluence

# -- project ---------------------------------------------------------------------------
project = "skinfluence"
author = "skinfluence developers"
copyright = "skinfluence developers"  # noqa: A001
version = release = skinfluence.__version__

# -- general ---------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"

# -- autodoc / autosummary / numpydoc --------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
# Methods are documented on the class page by the autosummary class template;
# numpydoc's own member tables would point to pages that do not exist.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- sphinx-gallery ---------------------------------------------------------------------
os.environ.setdefault("MPLBACKEND", "Agg")
# The examples are small: one BLAS thread each. With OpenBLAS' default threads on a
# 2-core machine, scikit-learn's multinomial newton-cholesky fits in the gallery ran
# 20-30x slower (thread oversubscription). docs/build.sh also sets
# OPENBLAS_NUM_THREADS=1 before Python starts; this covers a bare sphinx-build.
from threadpoolctl import threadpool_limits  # noqa: E402

_blas_limits = threadpool_limits(limits=1, user_api="blas")
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # GALLERY_PATTERN="plot_loo" runs (and shows) only the matching examples
    "filename_pattern": os.environ.get("GALLERY_PATTERN", r"/plot_"),
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skinfluence",),
    "reference_url": {"skinfluence": None},
    "backreferences_dir": "gen_modules/backreferences",
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
    "download_all_examples": False,
    "plot_gallery": "True",
    # every example must run in under a minute on 2 cores
    "abort_on_example_error": True,
}
# Expected warnings from third-party code while running the gallery are not ours.
warnings.filterwarnings("ignore", category=UserWarning,
                        message="Matplotlib is currently using agg")

# -- HTML -------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skinfluence {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_prev_next": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {"index": [], "getting_started": [], "benchmarks": [],
                 "references": []}
html_static_path = []
html_show_sourcelink = False

sys.path.insert(0, os.path.abspath(".."))
