"End-to-end smoke runs of the experiment notebooks (finetune, delta, srresnet) through papermill with tiny parameters."
import json, os
from pathlib import Path
import pandas as pd
import pytest
from conftest import run_notebook
from tisr.run import RunConfig, finetune

papermill = pytest.importorskip('papermill')
TINY = dict(max_val=2, max_test=2, eval_size=64, quick=True, seed=1, knobs=dict(epochs=1, steps_per_epoch=2))


def run_nb(tmp_path, **params): return run_notebook('finetune.ipynb', tmp_path, **params)


def test_v2_smoke_writes_the_run_folder(tmp_path):
    run_nb(tmp_path, recipe='v2', run='smoke', **TINY)
    d = tmp_path/'outputs'/'finetune'/'smoke'
    for f in ('config.json', 'manifest.json', 'log.csv', 'metrics.csv', 'per_image.csv', 'curves.png', 'panel.png',
              'checkpoints/model.pt', 'checkpoints/model_ema.pt'):
        assert (d/f).is_file(), f
    m = pd.read_csv(d/'metrics.csv')
    assert {'dataset', 'split', 'method', 'metric', 'value', 'n', 'n_nonfinite'} <= set(m.columns)
    start = 'zero-shot' if os.environ.get('TISR_WEIGHTS') else 'scratch-init'
    assert set(m['method']) == {'bicubic', start, 'v2'}
    assert set(m['dataset']) == {'synth-faces', 'synth-scenes', 'all'}
    psnr = m.query("metric == 'psnr'")
    assert psnr['value'].map(lambda v: v == v and v > 0).all()                 # finite, positive
    assert psnr.query("method == 'bicubic'")['value'].between(20, 60).all()    # a random-init model may be lower
    assert any('LPIPS' in x for x in m['metric'])
    log = pd.read_csv(d/'log.csv')
    assert list(log['step']) == [0, 2] and 'synth-faces/psnr' in log
    cfg = json.loads((d/'config.json').read_text())
    assert cfg['recipe']['recipe'] == 'v2' and cfg['recipe']['steps_per_epoch'] == 2 and cfg['manifest_hash']
    assert cfg['git_commit'] and cfg['config']['knobs'] == TINY['knobs']


def test_unknown_recipe_names_the_valid_ones(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown recipe 'v9'; valid: corefusion, delta, guided-concat, real-iisr, srresnet-l1"):
        run_nb(tmp_path, recipe='v9', run='bad', **TINY)
    assert not (tmp_path/'outputs').exists()                                    # nothing written


def test_a_recipe_knob_as_a_parameter_is_refused(tmp_path):
    "papermill -p lr 1e-4 used to be ignored silently; now it is an error that says to use knobs."
    with pytest.raises(papermill.PapermillExecutionError, match=r"unknown run parameter\(s\) \['lr'\]; recipe knobs go in knobs"):
        run_nb(tmp_path, recipe='v1', run='bad', lr=1e-4, **TINY)


def test_existing_run_is_not_overwritten(tmp_path):
    d = tmp_path/'outputs'/'finetune'/'mine'; d.mkdir(parents=True); (d/'notes.txt').write_text('keep me')
    with pytest.raises(papermill.PapermillExecutionError, match='already holds a run'):
        run_nb(tmp_path, recipe='v1', run='mine', **TINY)
    assert (d/'notes.txt').read_text() == 'keep me'


def _cfg(tmp_path, **kw):
    return RunConfig(**{**dict(recipe='v1', out_root=str(tmp_path/'outputs'), run='r', progress=False, device='cpu'),
                        **{k: v for k, v in TINY.items()}, **kw})


def test_resume_continues_a_run_and_refuses_a_changed_recipe(tmp_path):
    finetune(_cfg(tmp_path))
    d = tmp_path/'outputs'/'finetune'/'r'
    with pytest.raises(ValueError, match=r"differs in \['lr'\]"):
        finetune(_cfg(tmp_path, resume=True, knobs={**TINY['knobs'], 'lr': 1e-3}))
    # the unchanged recipe resumes from the finished run's last checkpoint: nothing is trained again
    finetune(_cfg(tmp_path, resume=True))
    cfg = json.loads((d/'config.json').read_text())
    assert cfg['config']['resume'] is True and pd.read_csv(d/'log.csv')['step'].tolist() == [0, 2]
    # an explicit overwrite removes the old run's files and trains again from the start
    (d/'stale.png').write_text('old figure')
    finetune(_cfg(tmp_path, overwrite=True))
    assert json.loads((d/'config.json').read_text())['config']['resume'] is False and not (d/'stale.png').exists()


def test_delta_notebook_peak_capture(tmp_path):
    run_notebook('delta.ipynb', tmp_path, run='t', **{**TINY, 'knobs': dict(epochs=1, steps_per_epoch=4, eval_steps=2)})
    d = tmp_path/'outputs'/'delta'/'t'
    m = pd.read_csv(d/'metrics.csv')
    assert {'bicubic', 'cfsr (backbone)', 'delta'} <= set(m['method'])
    assert (d/'peak_capture.png').is_file()
    assert pd.read_csv(d/'log.csv')['step'].tolist() == [0, 2, 4]      # step 0 = the starting model, then every 2
    cfg = json.loads((d/'config.json').read_text())
    assert cfg['recipe']['eval_steps'] == 2
    if not os.environ.get('TISR_WEIGHTS'):                               # offline: said so, reported as scratch-init
        assert 'scratch-init' in set(m['method']) and any('not found' in n for n in cfg['notes'])


def test_srresnet_notebook_gathers_the_sibling_recipe(tmp_path):
    run_notebook('srresnet.ipynb', tmp_path, recipe='srresnet-l1', run='l1', **TINY)
    out = run_notebook('srresnet.ipynb', tmp_path, recipe='srresnet-realesrgan', run='reg', **TINY)
    m = pd.read_csv(tmp_path/'outputs'/'srresnet'/'reg'/'metrics.csv')
    assert set(m['method']) == {'bicubic', 'srresnet-realesrgan'}
    assert 'srresnet-l1' in out.read_text()                            # the table shows the sibling run's rows
