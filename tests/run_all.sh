#!/usr/bin/env bash
# The test command: notebooks and library in sync, notebook tests, then pytest (which includes the papermill
# smoke runs of the experiment notebooks). Run from the repository root.
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
# notebook cells that need real data or official weights carry the flags `data` / `weights` (settings.ini
# tst_flags); they run when the folders are set, and are skipped, said here, when they are not
flags=""
for f in data weights; do
  var="TISR_$(echo $f | tr a-z A-Z)"
  n=$(python -c "import json,glob,re; print(sum(bool(re.search(r'^#\\| *$f\\b', ''.join(c['source']), re.M)) for p in glob.glob('nbs/**/*.ipynb', recursive=True) for c in json.load(open(p))['cells'] if c['cell_type'] == 'code'))")
  if [ -n "${!var:-}" ]; then flags="$flags $f"; else echo "nbdev_test: skipping the $n notebook cell(s) flagged '$f' ($var is unset)"; fi
done
echo "== nbdev_test${flags:+ (flags:$flags)}"
nbdev_test --n_workers 2 ${flags:+--flags "$flags"}
echo "== pytest"
python -m pytest -q -rs tests "$@"
