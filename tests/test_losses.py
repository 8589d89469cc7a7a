"Integration tests of tisr.losses: registry, identity, gradients, hand-computed values."
import math
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from tisr.losses import LOSSES, WeightedLoss, NTXentLoss, ThermalOrderConsistencyLoss, FFTLoss, PSNRLoss, SSIMLoss, TVLoss
from tisr.metrics import ssim

PAIR_LOSSES = ['l1', 'mse', 'charbonnier', 'psnr', 'ssim', 'stlpips', 'fft', 'tv', 'toc', 'toc-sum']


@pytest.fixture(scope='module')
def images():
    g = torch.Generator().manual_seed(0)
    hr = F.interpolate(torch.rand(2, 1, 8, 8, generator=g), size=32, mode='bicubic').clamp(0, 1)
    return (hr + 0.1 * torch.randn(hr.shape, generator=g)).clamp(0, 1), hr


@pytest.mark.parametrize('name', PAIR_LOSSES)
def test_gradients_flow(name, images):
    sr, hr = images
    if name.startswith('toc'): sr = 1 - hr   # TOC is zero until an order flips; an inverted image flips every order
    loss = LOSSES[name](device='cpu') if getattr(LOSSES[name], 'takes_device', False) else LOSSES[name]()
    x = sr.clone().requires_grad_(True)
    out = loss(x, hr)
    assert out.ndim == 0 and torch.isfinite(out)
    out.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize('name', ['l1', 'mse', 'ssim', 'stlpips', 'fft', 'toc', 'toc-sum'])
def test_zero_at_identity(name, images):
    _, hr = images
    loss = LOSSES[name](device='cpu') if getattr(LOSSES[name], 'takes_device', False) else LOSSES[name]()
    assert abs(loss(hr, hr).item()) < 1e-6


def test_hand_values():
    z = torch.zeros(1, 1, 12, 12)
    assert PSNRLoss()(z + 0.1, z).item() == pytest.approx(0.5, abs=1e-6)          # 20 dB
    assert FFTLoss()(z + 0.2, z).item() == pytest.approx(0.2 * 12 / (2 * 12 * 7), abs=1e-6)
    ramp = torch.arange(6.).view(1, 1, 1, 6).expand(1, 1, 3, 6) * 0.05
    assert TVLoss()(ramp).item() == pytest.approx(0.05, abs=1e-6)
    hr = torch.tensor([[0.2, 0.6]]).repeat_interleave(2, 1).expand(2, 4)[None, None]
    sr = torch.tensor([[0.5, 0.3]]).repeat_interleave(2, 1).expand(2, 4)[None, None]
    # TOC with 2x2 patches: the pair flips, 3 of each patch's 8 offsets reach the other patch, each 0.4 x 0.2
    assert ThermalOrderConsistencyLoss(patch=2)(sr, hr).item() == pytest.approx(3 * 0.08 / 8, abs=1e-6)
    e = torch.eye(2, 3)
    assert NTXentLoss(0.5)(e, e).item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 2)), abs=1e-5)


def test_ssim_loss_matches_metric(images):
    sr, hr = (t.double() for t in images)
    assert SSIMLoss()(sr, hr).item() == pytest.approx(1 - ssim(sr, hr, quantize=False).mean().item(), abs=1e-10)


def test_weighted_loss_refuses_extra_input_losses_and_unknown_names():
    with pytest.raises(ValueError, match='two embedding batches'): WeightedLoss({'ntxent': 1.0})
    with pytest.raises(ValueError, match="unknown loss 'clean_lr'"): WeightedLoss({'clean_lr': 1.0})   # the engine applies it
    with pytest.raises(ValueError, match=r"unknown loss 'nope'; valid: charbonnier, fft"): WeightedLoss({'nope': 1.0})
    wl = WeightedLoss({'l1': 1.0, 'psnr': 0.1, 'toc': 0.8})
    z = torch.zeros(1, 1, 8, 8)
    assert wl(z + 0.1, z).item() == pytest.approx(0.1 + 0.1 * 0.5, abs=1e-6)
    assert set(wl.parts) == {'l1', 'psnr', 'toc'}
