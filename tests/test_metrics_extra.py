"Integration tests of the thermal metrics, NIQE and tisr.evaluate (self-ensemble, tidy table)."
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from tisr.core import Norm, env_dir, write_image, read_image, to_tensor
from tisr.eval import SelfEnsemble, evaluate_models
from tisr.metrics import thermal_order_violation_rate, temperature_mae, hotspot_error, niqe, niqe_255, psnr


def test_order_violation_rate_counts_flips_and_skips_ties():
    hr = torch.tensor([0.2, 0.2, 0.6, 0.6, 0.6, 0.6, 0.1, 0.1]).expand(2, 8)[None, None]   # pairs: up, tie, down
    sr = torch.tensor([0.5, 0.5, 0.3, 0.3, 0.9, 0.9, 0.0, 0.0]).expand(2, 8)[None, None]   # flips the first only
    # 2x2 patches in one row: each ordered pair is seen 3 times from each end (straight and two clamped diagonals)
    assert thermal_order_violation_rate(sr, hr, patch=2).item() == pytest.approx(0.5)
    assert thermal_order_violation_rate(hr, hr, patch=2).item() == 0.0


def test_order_violation_rate_published_defaults():
    "8x8 patches, 8 neighbours, an order only where |dHR| >= 0.1 (Real-IISR's TOC pairs)."
    row = lambda *v: torch.tensor(v).repeat_interleave(8).view(1, 1, 1, -1).expand(1, 1, 8, -1)
    assert thermal_order_violation_rate(row(0.25, 0.625, 0.375), row(0.25, 0.5, 0.75)).item() == 0.5
    assert np.isnan(thermal_order_violation_rate(row(0.5, 0.25), row(0.25, 0.3125)).item())   # |dHR| < 0.1: no order
    assert thermal_order_violation_rate(row(0.5, 0.25), row(0.25, 0.375), tol=0.125).item() == 1.0
    with pytest.raises(ValueError, match='must be > 0'): thermal_order_violation_rate(row(0.5, 0.25), row(0.25, 0.375), tol=0)


def test_temperature_errors_in_celsius(tmp_path):
    frame = np.full((16, 16), 25.0, np.float32); frame[5, 6] = 45.0
    np.save(tmp_path / 'f.npy', frame)
    hr_img, norm = read_image(tmp_path / 'f.npy')          # [0, 1] and the degC Norm (25 .. 45)
    hr = to_tensor(hr_img)
    sr = hr.clone(); sr[..., 5, 6] = 0.5                   # the spot reads 35 degC
    assert hotspot_error(sr, hr, norm).item() == pytest.approx(10.0, abs=1e-4)
    assert temperature_mae(sr, hr, norm).item() == pytest.approx(10.0 / 256, abs=1e-5)
    assert hotspot_error(sr, hr, norm, box=(8, 8, 8, 8)).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match='radiometric'): temperature_mae(sr, hr, Norm('uint16', 0, 65535))


def test_niqe_baboon_matches_basicsr():
    if env_dir('TISR_WEIGHTS') is None or env_dir('TISR_DATA') is None:
        pytest.skip('set TISR_WEIGHTS (niqe/niqe_pris_params.npz) and TISR_DATA (reference/basicsr/baboon.png)')
    import cv2
    baboon = cv2.cvtColor(cv2.imread(str(env_dir('TISR_DATA') / 'reference' / 'basicsr' / 'baboon.png')), cv2.COLOR_BGR2RGB)
    assert niqe(baboon) == pytest.approx(5.7296, abs=0.01)


def test_niqe_rejects_small_images():
    with pytest.raises(ValueError, match='two 96x96 blocks'): niqe_255(np.zeros((96, 100)), {})


def _items(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    hrs = [F.interpolate(torch.rand(1, 1, 6, 6, generator=g), size=24, mode='bicubic').clamp(0, 1)[0] for _ in range(n)]
    return [dict(lr=F.avg_pool2d(h[None], 2)[0], hr=h, path=f'x{i}.png', dataset='toy') for i, h in enumerate(hrs)]


def test_self_ensemble_equivariant_vs_random_conv():
    lr = torch.rand(1, 1, 5, 9, generator=torch.Generator().manual_seed(3))
    near = nn.Upsample(scale_factor=2, mode='nearest')
    assert torch.allclose(SelfEnsemble(near)(lr), near(lr), atol=1e-6)
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.PixelShuffle(2))
    with torch.no_grad(): assert (SelfEnsemble(conv)(lr) - conv(lr)).abs().max() > 1e-3


def test_evaluate_models_tidy_table():
    models = {'nearest': nn.Upsample(scale_factor=2), 'bicubic': nn.Upsample(scale_factor=2, mode='bicubic')}
    df = evaluate_models(models, {'a': _items(2, 0), 'b': _items(1, 1)}, scale=2)
    assert list(df.columns) == ['image', 'dataset', 'method', 'metric', 'value']
    assert len(df) == (2 + 1) * 2 * 3   # images x models x (psnr, ssim, order_violation)
    one = df[(df.method == 'nearest') & (df.metric == 'psnr') & (df.image == 'x0.png') & (df.dataset == 'toy')].value.iloc[0]
    it = _items(2, 0)[0]
    assert one == pytest.approx(psnr(models['nearest'](it['lr'][None]).clamp(0, 1), it['hr'][None], crop_border=2).item())
    with pytest.raises(ValueError, match='missing'): evaluate_models(models, {'bad': [dict(hr=1)]}, 2)


def test_radiometric_frames_get_an_ordering_score():
    "A degC frame on a wide dataset range (0.1 = 26 degC) is scored on its own range, not reported as NaN."
    from tisr.eval.loop import image_metrics
    norm = Norm('float32', -72.0, 188.0)
    room = 20.0 + 5.0 * torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))   # 20..25 degC
    hr = torch.as_tensor(norm.encode(room.numpy()), dtype=torch.float32)
    assert torch.isnan(thermal_order_violation_rate(hr, hr)).all()   # the stored scale has no ordered pair
    same = image_metrics(hr, hr, 4, norm)
    flipped = image_metrics(hr.max() + hr.min() - hr, hr, 4, norm)   # hot and cold swapped
    assert same['order_violation'] == 0.0
    assert flipped['order_violation'] == 1.0
