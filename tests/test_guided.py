"The RGB-guided track end to end: guided samples from every layout that has guides, and the guided notebook (papermill)."
import json
import cv2
import numpy as np
import pytest
import torch
from conftest import run_notebook
from tisr.data import PairedDataset, scan_pairs, scan_pbvs, scan_spec, build_manifest
from tisr.data.fixtures import write_pairs, write_pbvs, write_pbvs_guided, write_png
from tisr.models import build_model, is_guided
from tisr.eval import evaluate

torch.set_num_threads(1)


def test_guided_samples_share_crop_and_flips(tmp_path):
    "Training samples (lr, guide, hr): the guide at HR size, cropped and flipped with the HR (its green channel here)."
    root = tmp_path/'p'
    for k in range(3):
        write_png(root/'ir'/f'{k}.png', 48, 64, seed=k)
        # a guide whose green channel is the thermal image itself: any misalignment shows
        grey = cv2.imread(str(root/'ir'/f'{k}.png'), cv2.IMREAD_GRAYSCALE)
        bgr = np.stack([np.zeros_like(grey), grey, np.zeros_like(grey)], -1)
        (root/'vi').mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root/'vi'/f'{k}.png'), bgr)
    ds = PairedDataset(scan_pairs(root), scale=8, patch=32, augment='flips', guide=True, seed=3)
    for i in range(3):
        s = ds[i]
        assert s['guide'].shape == (3, 32, 32) and s['lr'].shape == (1, 4, 4)
        assert torch.allclose(s['guide'][1], s['hr'][0], atol=1 / 255 + 1e-6)
    ev = PairedDataset(scan_pairs(root), scale=8, train=False, guide=True)
    assert ev[0]['guide'].shape[-2:] == ev[0]['hr'].shape[-2:]


def test_captured_lr_with_guides_pbvs_both_layouts(tmp_path):
    "PBVS track 2, 2023 and 2024+ layouts: captured LR used as given, guide at HR size."
    for items in (scan_pbvs(write_pbvs(tmp_path/'p23'), track=2, scale=8), scan_pbvs(write_pbvs_guided(tmp_path/'p24'), track=2, scale=8)):
        ds = PairedDataset(items, scale=8, train=False, guide=True)
        s = ds[0]
        assert s['guide'].shape[0] == 3 and s['guide'].shape[-2:] == s['hr'].shape[-2:]
        assert json.loads(s['deg'])['name'] == 'captured'


def test_guide_of_another_size_needs_the_registered_flag(tmp_path):
    write_png(tmp_path/'g'/'ir'/'a.png', 40, 48)
    write_png(tmp_path/'g'/'vi'/'a.png', 120, 144, colour=True)
    with pytest.raises(ValueError, match='differ in size'):
        PairedDataset(scan_pairs(tmp_path/'g'), scale=4, train=False, guide=True)
    items = scan_spec({'layout': 'pairs', 'path': str(tmp_path/'g'), 'guide_registered': True})
    assert PairedDataset(items, scale=4, train=False, guide=True)[0]['guide'].shape == (3, 40, 48)


def test_guided_model_through_the_loop(tmp_path):
    "A guided model is scored with its guide; thermal-only and RGB-only are the section 3.3 variants."
    ds = PairedDataset(scan_pairs(write_pairs(tmp_path/'p', h=64, w=64)), scale=8, train=False, guide=True)
    m = build_model('corefusion', 8, pretrained=False)
    assert is_guided(m)
    rows = {mod: evaluate(m, ds, 8, modality=mod)[0] for mod in ('both', 'thermal', 'rgb')}
    psnr = {k: v.query("metric == 'psnr'")['value'].mean() for k, v in rows.items()}
    assert len(set(round(v, 6) for v in psnr.values())) == 3


def test_guided_notebook_smoke(tmp_path):
    "papermill runs nbs/guided.ipynb end to end on the embedded guided default (two betas, a few steps)."
    out = run_notebook('guided.ipynb', tmp_path, betas=[0.0, 0.1], quick=True, pretrained=False, max_val=1, max_test=2,
                       eval_size=32, nose=False, progress=False,
                       knobs=dict(epochs=1, steps_per_epoch=2, batch_size=2, patch=64))
    summary = tmp_path/'outputs'/'guided'/'summary'
    for f in ('metrics.csv', 'methods.md', 'beta_table.csv', 'curves.png', 'cost.csv'):
        assert (summary/f).is_file(), f
    text = (summary/'methods.md').read_text()
    assert 'corefusion-b0.1 [rgb]' in text and 'guided-concat [thermal]' in text and 'cfsr-v1' in text


def test_guided_notebook_refuses_unknown_parameters(tmp_path):
    papermill = pytest.importorskip('papermill')
    with pytest.raises(papermill.PapermillExecutionError, match='beta'):
        run_notebook('guided.ipynb', tmp_path, beta=0.1)
    assert not (tmp_path/'outputs').exists()
