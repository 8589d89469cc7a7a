"Smoke run of the zero-shot experiment, nbs/zeroshot.ipynb, through papermill with tiny parameters."
import json, os
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from conftest import run_notebook

papermill = pytest.importorskip('papermill')
TINY = dict(max_images=1, eval_size=64, timing_repeats=1, seed=0)


def run_nb(tmp_path, **params): return run_notebook('zeroshot.ipynb', tmp_path, **params)


def test_zeroshot_smoke_writes_metrics_and_figure(tmp_path):
    models = ['bicubic', 'cfsr'] if os.environ.get('TISR_WEIGHTS') else ['bicubic']
    run_nb(tmp_path, models=models, run='smoke', **TINY)
    d = tmp_path/'outputs'/'zeroshot'/'smoke'
    for f in ('metrics.csv', 'per_image.csv', 'manifest.json', 'config.json', 'psnr_vs_ms.png'):
        assert (d/f).is_file(), f
    m = pd.read_csv(d/'metrics.csv')
    assert {'dataset', 'split', 'method', 'metric', 'value', 'n', 'params', 'ms_per_image'} <= set(m.columns)
    assert set(m['method']) == set(models)
    assert set(m['dataset']) == {'synth-faces', 'synth-scenes', 'all'}
    assert (m['split'] == 'test').all() and (m['n'] >= 1).all()
    assert {'psnr', 'ssim'} <= set(m['metric']) and any('LPIPS' in x for x in m['metric'])
    assert m.query("metric == 'psnr'")['value'].between(10, 60).all()
    assert m.query("metric == 'ssim'")['value'].between(0, 1).all()
    assert (m.query("method == 'bicubic'")['params'] == 0).all()
    assert np.isfinite(m['ms_per_image']).all() and (m['ms_per_image'] > 0).all()
    if 'cfsr' in models: assert (m.query("method == 'cfsr'")['params'] > 200_000).all()
    cfg = json.loads((d/'config.json').read_text())
    assert cfg['models'] == models and cfg['manifest_hash']


def test_unknown_model_names_the_valid_ones(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown model 'no-such-net'; valid:"):
        run_nb(tmp_path, models=['no-such-net'], run='bad', **TINY)
