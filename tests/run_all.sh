#!/usr/bin/env bash
# The test command: notebooks and library in sync, notebook tests, then pytest (which includes the
# papermill smoke run of nbs/finetune.ipynb). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg
echo "== nbdev_export / nbdev_clean leave no diff"
state() { { git diff --no-ext-diff -- tisr nbs; git ls-files --others --exclude-standard -- tisr nbs | xargs -r md5sum; } | md5sum; }
before=$(state)
nbdev_export
nbdev_clean
if [ "$before" != "$(state)" ]; then
  echo "nbdev_export/nbdev_clean changed files: tisr/ is out of step with nbs/ or a notebook was not clean:"
  git status --short -- tisr nbs; exit 1
fi
echo "== nbdev_test"
nbdev_test --n_workers 2
echo "== pytest"
python -m pytest -q -rs tests "$@"
