"benchmarks/train_speed.py without the official checkout: ours and the loader still timed (tiny sizes), and the rotation of its rounds."
import importlib.util
from pathlib import Path
import pytest

BENCH = Path(__file__).resolve().parents[1]/'benchmarks'


def load(name):
    spec = importlib.util.spec_from_file_location(f'{name}_under_test', BENCH/f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_rounds_rotate_which_side_goes_first():
    zs, calls = load('zoo_speed'), []
    fns = [lambda x, c=c: calls.append(c) for c in 'abc']
    times = zs.interleaved_times(fns, None, rounds=3, warmup=1, budget_s=0.)
    assert [len(t) for t in times] == [3, 3, 3]
    assert ''.join(calls) == 'abc' + 'abc' 'bca' 'cab'


def test_missing_checkout_times_ours_and_the_loader(tmp_path, capsys):
    ts = load('train_speed')
    ts.main([str(tmp_path), '--batch', '2', '--patch', '16', '--rounds', '1', '--warmup', '0', '--parts-rounds', '1',
              '--profile-steps', '0', '--loader-batches', '1', '--workers', '0', '--out', str(tmp_path/'r.md')])
    out = capsys.readouterr()
    assert 'official not available: no checkout' in out.err + out.out
    report = (tmp_path/'r.md').read_text()
    assert '| ours 1ch (RGB folded) |' in report and '| ours 3ch |' in report and 'official 3ch |' not in report
    assert '| 0 |' in report and 'in series' in report
