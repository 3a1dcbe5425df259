#!/usr/bin/env bash
# Build the HTML documentation, running the example gallery, with warnings as errors.
#
# From a fresh virtual environment at the repository root:
#     pip install ".[docs,plot]"
#     docs/build.sh            # output in docs/_build/html
#
# Set SPHINXOPTS="-D plot_gallery=0" to skip running the gallery.
set -euo pipefail
cd "$(dirname "$0")"
export MPLBACKEND=Agg
# one BLAS/OpenMP thread per process: the examples are small, and multithreaded
# OpenBLAS made some of them 20-30x slower on 2 cores (thread oversubscription)
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
rm -rf _build generated auto_examples gen_modules sg_execution_times.rst
start=$(date +%s)
sphinx-build -W --keep-going -b html ${SPHINXOPTS:-} . _build/html
echo "docs built in $(( $(date +%s) - start )) s: $(pwd)/_build/html/index.html"
