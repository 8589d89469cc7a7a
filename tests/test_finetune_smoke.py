"End-to-end smoke runs of the main job, nbs/finetune.ipynb, through papermill with tiny parameters."
import json, os
from pathlib import Path
import pandas as pd
import pytest
from conftest import run_notebook

papermill = pytest.importorskip('papermill')
TINY = dict(epochs=1, steps_per_epoch=2, max_val=2, max_test=2, eval_size=64, quick=True, seed=1)


def run_nb(tmp_path, **params): return run_notebook('finetune.ipynb', tmp_path, **params)


def test_v2_smoke_writes_the_run_folder(tmp_path):
    run_nb(tmp_path, recipe='v2', run='smoke', **TINY)
    d = tmp_path/'outputs'/'finetune'/'smoke'
    for f in ('config.json', 'manifest.json', 'log.csv', 'metrics.csv', 'per_image.csv', 'curves.png', 'panel.png',
              'checkpoints/model.pt', 'checkpoints/model_ema.pt'):
        assert (d/f).is_file(), f
    m = pd.read_csv(d/'metrics.csv')
    assert {'dataset', 'split', 'method', 'metric', 'value', 'n'} <= set(m.columns)
    zero = 'zero-shot' if os.environ.get('TISR_WEIGHTS') else None
    methods = set(m['method'])
    assert 'bicubic' in methods and 'v2' in methods and len(methods) == 3, methods
    if zero: assert zero in methods
    assert set(m['dataset']) == {'synth-faces', 'synth-scenes', 'all'}
    psnr = m.query("metric == 'psnr'")
    assert psnr['value'].map(lambda v: v == v and v > 0).all()                 # finite, positive
    assert psnr.query("method == 'bicubic'")['value'].between(20, 60).all()    # a random-init model may be lower
    assert any('LPIPS' in x for x in m['metric'])
    log = pd.read_csv(d/'log.csv')
    assert list(log['epoch']) == [0, 1] and 'synth-faces/psnr' in log
    cfg = json.loads((d/'config.json').read_text())
    assert cfg['recipe']['recipe'] == 'v2' and cfg['recipe']['steps_per_epoch'] == 2 and cfg['manifest_hash']


def test_unknown_recipe_names_the_valid_ones(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match=r"valid: \['delta', 'srresnet-l1', 'srresnet-realesrgan', 'v1', 'v2', 'v3'\]"):
        run_nb(tmp_path, recipe='v9', run='bad', **TINY)


def test_existing_run_is_not_overwritten(tmp_path):
    d = tmp_path/'outputs'/'finetune'/'mine'; d.mkdir(parents=True); (d/'notes.txt').write_text('keep me')
    with pytest.raises(papermill.PapermillExecutionError, match='already holds a run'):
        run_nb(tmp_path, recipe='v1', run='mine', **TINY)
    assert (d/'notes.txt').read_text() == 'keep me'


def test_unknown_knob_lists_the_knobs(tmp_path):
    from tisr.experiment import Finetune
    with pytest.raises(ValueError, match=r"no knob \['lrate'\]; valid knobs: \[.*'eval_steps'.*'patience'"):
        Finetune('v2', lrate=1e-4, out_root=tmp_path)


def test_resume_continues_a_run_and_refuses_a_changed_recipe(tmp_path):
    from tisr.experiment import Finetune
    run_nb(tmp_path, recipe='v1', run='r', **TINY)
    d = tmp_path/'outputs'/'finetune'/'r'
    tiny = dict(TINY, run='r', out_root=tmp_path/'outputs', progress=False)
    with pytest.raises(ValueError, match=r"differs in \['lr'\]"):
        Finetune('v1', resume=True, lr=1e-3, **tiny).run_all()
    # the unchanged recipe resumes from the finished run's last checkpoint: nothing is trained again
    Finetune('v1', resume=True, **tiny).run_all()
    cfg = json.loads((d/'config.json').read_text())
    assert cfg['resumed'] is True and pd.read_csv(d/'log.csv')['step'].tolist() == [0, 2]
    # an explicit overwrite trains the run again from the start
    Finetune('v1', overwrite=True, **tiny).run_all()
    assert json.loads((d/'config.json').read_text())['resumed'] is False


def test_delta_notebook_peak_capture(tmp_path):
    run_notebook('delta.ipynb', tmp_path, epochs=1, steps_per_epoch=4, eval_steps=2, max_val=2, max_test=2, eval_size=64,
                 quick=True, run='t')
    d = tmp_path/'outputs'/'delta'/'t'
    m = pd.read_csv(d/'metrics.csv')
    assert {'bicubic', 'cfsr (backbone)', 'delta'} <= set(m['method'])
    assert (d/'checkpoints'/'best.pt').is_file() and (d/'peak_capture.png').is_file()
    assert pd.read_csv(d/'log.csv')['step'].tolist() == [0, 2, 4]      # step 0 = the starting model, then every 2
    cfg = json.loads((d/'config.json').read_text())
    assert cfg['recipe']['lr'] == 1e-6 and cfg['best_step'] in (2, 4)


def test_srresnet_notebook_compares_both_losses(tmp_path):
    run_notebook('srresnet.ipynb', tmp_path, epochs=1, steps_per_epoch=2, max_val=2, max_test=2, eval_size=64,
                 quick=True, run='t')
    for r in ('srresnet-realesrgan', 'srresnet-l1'):
        d = tmp_path/'outputs'/'srresnet'/f't-{r}'
        m = pd.read_csv(d/'metrics.csv')
        assert r in set(m['method']) and 'zero-shot' not in set(m['method'])      # trained from scratch
        assert json.loads((d/'config.json').read_text())['recipe']['degradation'] == 'realesrgan'
