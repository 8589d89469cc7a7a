"The prepared GPU check keeps working: its CPU dry run goes through every step and prints the table."
import os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_device_check_dry_run(tmp_path):
    p = subprocess.run(['bash', str(ROOT/'benchmarks'/'device_check.sh'), '--dry-run'], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, 'OUT': str(tmp_path)}, timeout=1200)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    table = (tmp_path/'device_check.md').read_text()
    for step in ('cuda tests', 'main job v2', 'train cfsr x4 v1', 'train drln x4 v2', 'train corefusion x8', 'train guided-concat x8',
                 'zoo cfsr', 'zoo span'):
        assert step in table, step
    assert '| NO |' not in table
