#!/usr/bin/env bash
# Set up .venv with xorch and its test tools. Safe to run again.
# torch is installed first at a pinned release: on a CPU-only machine of ours
# `pip install torch==2.13.0` takes the CPU wheel, while a bare `torch`
# requirement could pull a multi-GB CUDA build. Set XORCH_TORCH to choose
# another torch requirement (for example on a GPU box).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "${XORCH_TORCH:-torch==2.13.0}"
fi
# The torch now installed is pinned for every later install into this venv: a
# package that depends on torch (torchvision, segmentation-models-pytorch) would
# otherwise be free to replace a CPU torch with a multi-GB CUDA build. Use it as
#   .venv/bin/pip install -c .venv/constraints.txt torchvision
.venv/bin/python -c "import torch; print('torch==' + torch.__version__)" > .venv/constraints.txt
.venv/bin/python -m pip install --quiet -c .venv/constraints.txt -e '.[dev]'
# Tests only: a process started under coverage runs tests/coverage_children.py
# before coverage's own .pth starts the tracer (why: that file's docstring).
# Processes without coverage's variables never read it.
site_packages=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "import os; (os.getenv('COVERAGE_PROCESS_START') or os.getenv('COVERAGE_PROCESS_CONFIG')) and __import__('runpy').run_path($(.venv/bin/python -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$PWD/tests/coverage_children.py"))" \
  > "$site_packages/a0_xorch_coverage_children.pth"
.venv/bin/python -c "import torch, lightning, pytorch_lightning; print('xorch setup: torch', torch.__version__, '- lightning', lightning.__version__, '- pytorch_lightning', pytorch_lightning.__version__)"
