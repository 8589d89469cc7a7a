"Timing method and reporting of benchmarks/zoo_speed.py (fake networks; no weights, no official checkouts)."
import importlib.util
from pathlib import Path
import pytest

SCRIPT = Path(__file__).resolve().parents[1]/'benchmarks'/'zoo_speed.py'


@pytest.fixture(scope='module')
def zs():
    spec = importlib.util.spec_from_file_location('zoo_speed_under_test', SCRIPT)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_rounds_alternate_which_network_goes_first(zs):
    calls = []
    ours, official = (lambda x: calls.append('o')), (lambda x: calls.append('f'))
    o_s, f_s = zs.paired_times(ours, official, None, rounds=4, warmup=1, budget_s=0.)
    assert (len(o_s), len(f_s)) == (4, 4)
    assert ''.join(calls) == 'of' + 'of' 'fo' 'of' 'fo'   # warm-up, then AB BA AB BA


def test_auto_rounds_respect_the_floor(zs):
    o_s, f_s = zs.paired_times(lambda x: None, lambda x: None, None, rounds=0, warmup=0, budget_s=0.)
    assert len(o_s) == len(f_s) == 10


def test_summary_uses_paired_ratios_and_minimums(zs):
    ours = [0.010, 0.020, 0.010, 0.010, 0.050]      # one burst on ours (0.050)
    official = [0.011, 0.022, 0.011, 0.011, 0.012]
    r = zs.summarize(ours, official)
    assert r['ratio'] == pytest.approx(1.1)          # the burst pair is an outlier the median drops
    assert r['min_ratio'] == pytest.approx(1.1)
    assert (r['ours_min'], r['off_min']) == (pytest.approx(10.), pytest.approx(11.))
    assert r['ours_med'] == pytest.approx(10.) and r['rounds'] == 5
    assert r['ratio_q1'] <= r['ratio'] <= r['ratio_q3']


def test_rows_say_when_outputs_differ(zs):
    line = zs.format_row(dict(model='pan', scale=4, max_abs_diff=3e-4, note=''))
    assert 'OUTPUTS DIFFER' in line and 'pan' in line


def test_missing_checkout_is_reported_and_bad_family_rejected(zs, tmp_path, capsys):
    zs.main([str(tmp_path), '--families', 'span'])
    assert 'span        official not available: no checkout' in capsys.readouterr().out
    with pytest.raises(SystemExit): zs.main([str(tmp_path), '--families', 'nope'])
    assert 'valid: cfsr' in capsys.readouterr().err


@pytest.mark.parametrize('name', ['cfsr', 'pan', 'a2n', 'span', 'bsrn', 'safmn', 'rfdn', 'rlfn', 'imdn', 'carn-m'])
def test_inplace_speedups_keep_training_possible(name):
    "The zoo's in-place activations and residual adds must leave autograd a valid graph (random weights)."
    import torch
    from tisr.models import build_model
    torch.manual_seed(0)
    net = build_model(name, 4, pretrained=False, channels=1).train()
    x = torch.rand(2, 1, 20, 24)
    (net(x) ** 2).mean().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]  # CARN-M's unused heads get none
    assert len(grads) > 0.8 * len(list(net.parameters()))
    assert all(torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0
