"""The silent-wrong-result probes of the reliability issue, each as a test that failed on the old code:
weights fallbacks, train/test leaks, non-finite metrics, resume checks, late failures, checkpoint writes."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from tisr.core import save_checkpoint, read_checkpoint, CheckpointError, read_image, ImageReadError
from tisr.data import build_manifest, scan_folder, PairedDataset
from tisr.data.fixtures import write_faces
from tisr.eval import summarise
from tisr.models import ChecksumError
from tisr.run import RunConfig, RunFolder, start_run, prepare_data, build_start_model, finetune
from tisr.metrics import lpips_metric

TINY = dict(max_val=2, max_test=2, eval_size=48, quick=True, progress=False, device='cpu',
            knobs=dict(epochs=1, steps_per_epoch=1))


@pytest.fixture
def faces(tmp_path):
    return str(write_faces(tmp_path/'faces', subjects=range(1, 9), h=64, w=64))


def cfg(tmp_path, **kw): return RunConfig(**{**dict(recipe='v1', out_root=str(tmp_path/'out'), run='r'), **TINY, **kw})


# ------------------------------------------------------------------- weights: fall back only when truly absent

def test_mistyped_weights_folder_is_an_error_not_a_scratch_run(tmp_path, faces, monkeypatch):
    monkeypatch.setenv('TISR_WEIGHTS', str(tmp_path/'no-such-folder'))
    run = start_run(cfg(tmp_path, data=faces))
    with pytest.raises(NotADirectoryError, match='no-such-folder is not a folder'): build_start_model(run)
    with pytest.raises(NotADirectoryError, match='no-such-folder is not a folder'): lpips_metric()
    run.folder.close()


def test_corrupt_weights_file_is_an_error_not_a_scratch_run(tmp_path, faces, monkeypatch):
    (tmp_path/'w'/'sr').mkdir(parents=True)
    (tmp_path/'w'/'sr'/'cfsr_x4.pth').write_bytes(b'not the official file')
    monkeypatch.setenv('TISR_WEIGHTS', str(tmp_path/'w'))
    run = start_run(cfg(tmp_path, data=faces))
    with pytest.raises(ChecksumError, match='sha256 mismatch'): build_start_model(run)
    run.folder.close()


# ------------------------------------------------------------------- train/test leaks

def test_overlapping_data_specs_are_refused(tmp_path, faces):
    with pytest.raises(ValueError, match='are in both an earlier data spec'): build_manifest([str(tmp_path), faces])
    with pytest.raises(ValueError, match='S01_00adsgreg.png'): build_manifest([faces, faces])


def test_eval_data_overlapping_the_training_data_is_refused(tmp_path, faces):
    run = start_run(cfg(tmp_path, data=faces, eval_data=faces))
    with pytest.raises(ValueError, match=r"in both data \(.*faces\) and eval_data"): prepare_data(run)
    run.folder.close()


# ------------------------------------------------------------------- non-finite metrics

def test_nan_and_inf_are_counted_not_dropped_or_averaged():
    pi = pd.DataFrame(dict(image=list('abcd'), dataset='d', method='m', metric='psnr', value=[30., np.nan, np.inf, 32.]))
    row = summarise(pi, 'test').iloc[0]
    assert row['n'] == 4 and row['n_nonfinite'] == 1 and row['n_capped'] == 1
    assert np.isfinite(row['value']) and row['value'] == pytest.approx((30 + 100 + 32) / 3)


def test_nan_frame_is_refused_at_read(tmp_path):
    a = np.ones((8, 8), np.float32); a[0, 0] = np.inf
    np.save(tmp_path/'f.npy', a)
    with pytest.raises(ImageReadError, match='f.npy: 1 non-finite pixels'): read_image(tmp_path/'f.npy')


# ------------------------------------------------------------------- resume trusts only the same run

def test_resume_with_other_data_is_refused_and_the_manifest_kept(tmp_path, faces):
    finetune(cfg(tmp_path, data=faces))
    d = tmp_path/'out'/'finetune'/'r'
    before = (d/'manifest.json').read_text()
    other = str(write_faces(tmp_path/'other', subjects=range(10, 18), h=64, w=64))
    with pytest.raises(ValueError, match='a run keeps its data'): finetune(cfg(tmp_path, data=other, resume=True))
    with pytest.raises(ValueError, match='belongs to another run; differs in patch'):
        finetune(cfg(tmp_path, data=faces, resume=True, knobs={**TINY['knobs'], 'patch': 32}))
    assert (d/'manifest.json').read_text() == before


# ------------------------------------------------------------------- late failures: nothing written

@pytest.mark.parametrize('bad', [dict(model='cfrs'), dict(knobs={'optimizer': 'sgd'}), dict(knobs={'loss': {'l1': 1, 'lpipz': 1}}),
                                 dict(knobs={'lr': 'fast'}), dict(knobs={'ema': 2.0}), dict(knobs={'degradation': 'jpeg'}),
                                 dict(scale=5)])   # no family has x5 weights or an x5 path (x8, x16 exist from x4)
def test_bad_config_fails_before_the_run_folder_exists(tmp_path, faces, bad):
    with pytest.raises(ValueError): start_run(cfg(tmp_path, data=faces, **bad))
    assert not (tmp_path/'out').exists()
    # and the rerun with the right value is not refused for a half-made folder
    start_run(cfg(tmp_path, data=faces)).folder.close()


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_cuda_device_without_gpu_fails_first(tmp_path, faces, monkeypatch):
    monkeypatch.setenv('TISR_DEVICE', 'cuda')
    with pytest.raises(ValueError, match='CUDA is not available'): start_run(cfg(tmp_path, data=faces, device=None))
    assert not (tmp_path/'out').exists()


# ------------------------------------------------------------------- checkpoint writes

def test_a_second_process_on_the_same_run_folder_is_refused(tmp_path):
    f = RunFolder.open(tmp_path, 'finetune', 'r', 'v1')
    code = ("from tisr.run import RunFolder\n"
            f"RunFolder.open({str(tmp_path)!r}, 'finetune', 'r', 'v1', resume=False, overwrite=True)")
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert p.returncode != 0 and f'in use by another process (pid {os.getpid()})' in p.stderr
    f.close()


def test_checkpoint_writes_are_atomic_and_errors_name_the_file(tmp_path):
    p = save_checkpoint(tmp_path/'last.pt', step=1, w=torch.ones(3))
    assert sorted(x.name for x in tmp_path.iterdir()) == ['last.pt']
    (tmp_path/'last.pt').write_bytes(p.read_bytes()[:100])
    with pytest.raises(CheckpointError, match='last.pt: unreadable checkpoint .* truncated'): read_checkpoint(tmp_path/'last.pt')
    ro = tmp_path/'ro'
    ro.mkdir(); ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK): pytest.skip('running as a user who can write a read-only folder (root)')
        with pytest.raises(CheckpointError, match='could not write checkpoint .*ro/last.pt'): save_checkpoint(ro/'last.pt', step=1)
    finally: ro.chmod(0o700)


def test_a_full_disk_names_the_file(tmp_path, monkeypatch):
    def full(obj, f): raise RuntimeError('[enforce fail at inline_container.cc:778] . unexpected pos 64 vs 0')
    monkeypatch.setattr(torch, 'save', full)
    with pytest.raises(CheckpointError, match=r'could not write checkpoint .*last.pt .*disk full'): save_checkpoint(tmp_path/'last.pt', step=1)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------- small things

def test_images_smaller_than_the_patch_are_named(tmp_path):
    small = write_faces(tmp_path/'small', subjects=(1,), h=40, w=44)
    with pytest.raises(ValueError, match=r'smaller than the 64x64 training patch, e\.g\. .*S01_0.adsgreg.png .*patch: 40'):
        PairedDataset(scan_folder(small), scale=4, patch=64)


def test_overwrite_removes_the_old_runs_files(tmp_path, faces):
    finetune(cfg(tmp_path, data=faces))
    d = tmp_path/'out'/'finetune'/'r'
    (d/'checkpoints'/'best.pt').write_text('an old best')
    finetune(cfg(tmp_path, data=faces, overwrite=True))
    assert not (d/'checkpoints'/'best.pt').exists() or (d/'checkpoints'/'best.pt').read_bytes() != b'an old best'
