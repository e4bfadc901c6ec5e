#!/usr/bin/env bash
# The PyTorch module as a user installs it: a venv in the repository (.venv), PyTorch
# (PyPI's default wheel), numpy, torchvision, mmdetection 3.3.0 (without its dependencies:
# only its loss files are used), then this package with `pip install .` (setuptools-rust
# builds the library with cargo); runs the package's tests and the comparison with
# mmdetection's GHMC/GHMR. Run from anywhere; needs python3 with venv, cargo.
#
#   scripts/python-tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet torch torchvision numpy
.venv/bin/pip install --quiet --no-deps mmdet==3.3.0
.venv/bin/pip install --quiet .
.venv/bin/python -m unittest discover -s python/tests -v
.venv/bin/python python/compare_mmdet.py
# torchvision's RetinaNet with GHM-C (a tiny random model, no download), and the test bed's AP.
.venv/bin/python python/test_retinanet_ghmc.py
.venv/bin/python bed/test_ap.py
.venv/bin/python bed/test_harmonized.py
