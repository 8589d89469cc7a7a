"Exact resume after SIGKILL, and DDP with 2 CPU processes (gloo) against one process."
import os, signal, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest
import torch
from tisr.core import read_checkpoint as load_checkpoint

JOB = Path(__file__).with_name('train_job.py')


def run_job(*args, check=True):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    p = subprocess.run([sys.executable, str(JOB), *map(str, args)], capture_output=True, text=True, env=env, timeout=300)
    if check and p.returncode: raise AssertionError(p.stderr[-3000:])
    return p


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigkill_then_resume_is_bitwise_identical(tmp_path):
    run_job(tmp_path/'ref')
    killed = run_job(tmp_path/'cut', '--kill-at', 7, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ck = load_checkpoint(tmp_path/'cut/checkpoints/last.pt')
    assert ck['step'] == 6 and not (tmp_path/'cut/checkpoints/model.pt').exists()   # killed mid-epoch 2, after step 7
    run_job(tmp_path/'cut', '--resume')
    for name in ('model.pt', 'model_ema.pt'):
        a, b = (load_checkpoint(tmp_path/r/'checkpoints'/name)['model'] for r in ('ref', 'cut'))
        assert same_state(a, b), name
    a, b = (load_checkpoint(tmp_path/r/'checkpoints/last.pt') for r in ('ref', 'cut'))
    assert a['step'] == b['step'] == 12
    for s in a['optimizer']['state']:
        assert all(torch.equal(a['optimizer']['state'][s][k], b['optimizer']['state'][s][k]) for k in ('exp_avg', 'exp_avg_sq'))
    la, lb = (pd.read_csv(tmp_path/r/'log.csv').drop(columns='time_s') for r in ('ref', 'cut'))
    pd.testing.assert_frame_equal(la, lb)


def test_resume_without_checkpoint_and_rerun_refused(tmp_path):
    p = run_job(tmp_path/'none', '--resume', check=False)
    assert p.returncode and 'no checkpoint' in p.stderr
    run_job(tmp_path/'r', '--epochs', 1)
    p = run_job(tmp_path/'r', '--epochs', 1, check=False)
    assert p.returncode and 'pass resume=True' in p.stderr
    p = run_job(tmp_path/'r', '--epochs', 2, '--resume', check=False)
    assert p.returncode and "differs in ['epochs']" in p.stderr


def test_ddp_two_gloo_processes_match_one_process(tmp_path):
    run_job(tmp_path/'one', '--no-dropout')   # dropout masks are per rank, so only a deterministic net can match
    env = dict(os.environ, OMP_NUM_THREADS='1')
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                        str(JOB), str(tmp_path/'two'), '--data', str(tmp_path/'data'), '--no-dropout'],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    a, b = (load_checkpoint(tmp_path/r/'checkpoints/model.pt')['model'] for r in ('one', 'two'))
    diffs = {k: (a[k] - b[k]).abs().max().item() for k in a}
    assert max(diffs.values()) < 1e-5, diffs          # same global batch and maths; float summation order differs
    log = pd.read_csv(tmp_path/'two/log.csv')
    assert len(log) == 3 and log['step'].tolist() == [4, 8, 12]   # written once, by rank 0
