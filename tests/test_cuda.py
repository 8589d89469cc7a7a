"""CUDA paths that a CPU cannot run: AMP (bf16, fp16 with gradient scaling), channels_last, EMA and exact-enough
resume on a GPU. Marked `cuda`; `benchmarks/device_check.sh` runs them on a lent GPU; elsewhere they skip."""
import copy
import pytest
import torch
import torch.nn as nn
from tisr.models import build_model
from tisr.train import TrainConfig, fit
from tisr.core import read_checkpoint

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU (run benchmarks/device_check.sh on one)')]


class Patches(torch.utils.data.Dataset):
    "Fixed smooth random HR patches and their area LR (x4): a deterministic training set."
    def __init__(self, n=16, size=32, seed=0):
        g = torch.Generator().manual_seed(seed)
        hr = nn.functional.interpolate(torch.rand(n, 1, size // 4, size // 4, generator=g), size=size, mode='bicubic')
        self.hr = hr.clamp(0, 1)
        self.lr = nn.functional.avg_pool2d(self.hr, 4)
    def __len__(self): return len(self.hr)
    def __getitem__(self, i): return dict(lr=self.lr[i], hr=self.hr[i], path=f'p{i}.png', dataset='toy')


def _fit(tmp_path, name, **kw):
    torch.manual_seed(0)
    model = build_model('cfsr', 4, pretrained=False)
    cfg = TrainConfig(**{**dict(lr=1e-3, epochs=2, batch_size=8, weight_decay=0., seed=0), **kw})
    return fit(model, Patches(), {'toy': Patches(4, seed=1)}, cfg, scale=4, run_dir=tmp_path/name, device='cuda', progress=False)


def test_bf16_steps_are_finite_and_close_to_fp32(tmp_path):
    ref, bf = _fit(tmp_path, 'fp32'), _fit(tmp_path, 'bf16', amp='bf16')
    assert torch.isfinite(torch.tensor(bf.log['loss'].tolist())).all()
    # a few bf16 steps follow the fp32 trajectory closely: validation PSNR within 0.5 dB
    assert abs(bf.log['toy/psnr'].iloc[-1] - ref.log['toy/psnr'].iloc[-1]) < 0.5


def test_fp16_uses_the_scaler_and_stays_finite(tmp_path):
    r = _fit(tmp_path, 'fp16', amp='fp16')
    assert torch.isfinite(torch.tensor(r.log['loss'].tolist())).all()
    assert read_checkpoint(tmp_path/'fp16'/'checkpoints'/'last.pt')['scaler']['scale'] > 0


def test_channels_last_gives_the_same_output_on_cuda():
    m = build_model('cfsr', 4, pretrained=False).cuda()
    mc = copy.deepcopy(m).to_channels_last()
    x = torch.rand(2, 1, 40, 48, device='cuda')
    with torch.no_grad(): assert (m(x) - mc(x)).abs().max() < 1e-3


class Killed(Exception): "Stands in for a SIGKILL right after a checkpoint."


def test_ema_and_resume_on_cuda(tmp_path):
    whole = _fit(tmp_path, 'whole', ema=0.9, checkpoint_steps=1)
    def kill_at_3(step):
        if step == 3: raise Killed()
    torch.manual_seed(0)
    cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=8, weight_decay=0., seed=0, ema=0.9, checkpoint_steps=1)
    with pytest.raises(Killed):
        fit(build_model('cfsr', 4, pretrained=False), Patches(), {'toy': Patches(4, seed=1)}, cfg, scale=4,
            run_dir=tmp_path/'split', device='cuda', progress=False, on_step=kill_at_3)
    torch.manual_seed(0)
    resumed = fit(build_model('cfsr', 4, pretrained=False), Patches(), {'toy': Patches(4, seed=1)}, cfg, scale=4,
                  run_dir=tmp_path/'split', device='cuda', progress=False, resume=True)
    a, b = whole.ema.state_dict(), resumed.ema.state_dict()
    # cuDNN picks kernels per run: equal to float32 round-off, not bitwise
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-4
    assert resumed.log['step'].tolist() == whole.log['step'].tolist()
