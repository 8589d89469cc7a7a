"Integration tests of tisr.metrics: reference conventions (BasicSR, scikit-image), numpy/torch agreement, LPIPS."
import math
import numpy as np
import cv2
import pytest
import torch

from tisr.core import env_dir, read_image, to_tensor, modcrop
from tisr.metrics import (psnr, psnr_np, ssim, ssim_np, rgb_to_y, evaluate_pair, lpips_metric,
                          load_alexnet_trunk, metric_conventions, METRIC_CONVENTIONS, LPIPS_NAME, STLPIPS_NAME)


def _pair(shape=(3, 1, 40, 44), noise=0.05, seed=0):
    "A smooth-ish image batch and a noisy copy, float32 in [0, 1]."
    g = torch.Generator().manual_seed(seed)
    hr = torch.nn.functional.interpolate(torch.rand(shape[0], shape[1], 10, 11, generator=g), size=shape[2:],
                                         mode='bicubic', align_corners=False).clamp(0, 1)
    sr = (hr + noise * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    return sr, hr


def _hwc(t, i=0):
    return t[i].permute(1, 2, 0).numpy()


# ---------------------------------------------------------------- PSNR / SSIM

def test_psnr_known_values_and_rounding():
    hr = torch.round(torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 254) / 255
    one_level = psnr(hr + 1 / 255, hr)
    assert one_level.shape == (2,) and one_level.dtype == torch.float64
    assert torch.allclose(one_level, torch.full((2,), 20 * math.log10(255), dtype=torch.float64), atol=1e-9)
    assert torch.isinf(psnr(hr, hr)).all()
    # rounding, not truncation: +0.6 level rounds up to one level, +0.4 rounds back
    assert torch.allclose(psnr(hr + 0.6 / 255, hr), one_level)
    assert torch.isinf(psnr(hr + 0.4 / 255, hr)).all()
    assert torch.isfinite(psnr(hr + 0.4 / 255, hr, quantize=False)).all()


@pytest.mark.parametrize('kw', [dict(), dict(crop_border=3), dict(test_y=True), dict(test_y=True, crop_border=2),
                                dict(quantize=False), dict(quantize=False, test_y=True, crop_border=4)])
def test_torch_and_numpy_agree(kw):
    sr, hr = _pair((2, 3, 30, 34))
    p, s = psnr(sr, hr, **kw), ssim(sr, hr, **kw)
    for i in range(2):
        assert abs(p[i].item() - psnr_np(_hwc(sr, i), _hwc(hr, i), **kw)) < 1e-6
        assert abs(s[i].item() - ssim_np(_hwc(sr, i), _hwc(hr, i), **kw)) < 1e-6
    grey_kw = {k: v for k, v in kw.items() if k != 'test_y'}
    assert abs(psnr(sr[:1, :1], hr[:1, :1], **grey_kw).item() - psnr_np(sr[0, 0].numpy(), hr[0, 0].numpy(), **grey_kw)) < 1e-6
    assert abs(ssim(sr[:1, :1], hr[:1, :1], **grey_kw).item() - ssim_np(sr[0, 0].numpy(), hr[0, 0].numpy(), **grey_kw)) < 1e-6


def test_uint8_numpy_input_equals_float_input():
    sr, hr = _pair((1, 1, 24, 24))
    s8, h8 = (np.round(t[0, 0].numpy() * 255).astype(np.uint8) for t in (sr, hr))
    assert abs(psnr_np(s8, h8, 2) - psnr(sr, hr, 2).item()) < 1e-6
    assert abs(ssim_np(s8, h8, 2) - ssim(sr, hr, 2).item()) < 1e-6


@pytest.mark.parametrize('shape', [(37, 45), (300, 620)])  # one banded matmul; tiled (> 256 outputs per row)
def test_ssim_equals_skimage(shape):
    structural_similarity = pytest.importorskip('skimage.metrics').structural_similarity
    rng = np.random.default_rng(2)
    hr = np.round(cv2.GaussianBlur(rng.random(shape), (0, 0), 2) * 255)
    sr = np.clip(hr + rng.normal(0, 8, shape), 0, 255).round()
    # scikit-image pads, filters, then averages only pixels 5 or more from the border: exactly the valid SSIM
    ref = structural_similarity(sr, hr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    ours = ssim(torch.from_numpy(sr)[None, None] / 255, torch.from_numpy(hr)[None, None] / 255).item()
    assert abs(ours - ref) < 1e-12, (ours, ref)


def test_single_channel_measured_on_itself_and_grey_y_refused():
    sr, hr = _pair((2, 1, 20, 20))
    assert torch.equal(psnr(sr, hr, test_y=True), psnr(sr, hr))
    with pytest.raises(ValueError, match='replicated grey'):
        psnr(sr.expand(-1, 3, -1, -1), hr.expand(-1, 3, -1, -1), test_y=True)
    with pytest.raises(ValueError, match='replicated grey'):
        ssim_np(_hwc(sr.expand(-1, 3, -1, -1)), _hwc(hr.expand(-1, 3, -1, -1)), test_y=True)
    # what the refusal prevents: Y of replicated grey shrinks differences by 219/255
    grey = psnr(sr, hr, quantize=False)
    y = 10 * torch.log10(255 ** 2 / ((rgb_to_y(sr.double().expand(-1, 3, -1, -1) * 255)
                                      - rgb_to_y(hr.double().expand(-1, 3, -1, -1) * 255)) ** 2).mean((1, 2, 3)))
    assert torch.allclose(y - grey, torch.full((2,), 20 * math.log10(255 / 219), dtype=torch.float64), atol=1e-9)


def test_bad_input_is_named():
    sr, hr = _pair((1, 1, 20, 20))
    with pytest.raises(ValueError, match='modcrop'): psnr(sr, hr[..., :-1])
    with pytest.raises(ValueError, match='need at least 11x11'): ssim(sr, hr, crop_border=5)
    with pytest.raises(ValueError, match='pass quantize=False'): psnr(sr, hr, data_range=0.5)
    with pytest.raises(ValueError, match='valid: uint8'): psnr_np(np.zeros((4, 4), np.int16), np.zeros((4, 4), np.int16))
    with pytest.raises(TypeError, match='_np functions'): psnr(sr[0, 0].numpy(), hr[0, 0].numpy())


def test_modcrop():
    assert modcrop(np.zeros((241, 206)), 4).shape == (240, 204)
    assert modcrop(np.zeros((241, 206, 3)), 3).shape == (240, 204, 3)
    assert modcrop(torch.zeros(1, 1, 241, 206), 4).shape == (1, 1, 240, 204)
    with pytest.raises(ValueError, match='positive integer'): modcrop(np.zeros((4, 4)), 1.5)


# MATLAB imresize (bicubic a = -0.5, antialiased when shrinking, symmetric borders), as a test oracle only
def _cubic(x):
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def _resize_matrix(n_in, n_out, scale):
    width = 4 / scale if scale < 1 else 4.0
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)
    taps = math.ceil(width) + 2
    idx = np.floor(u - width / 2)[:, None] + np.arange(taps)[None]
    w = scale * _cubic((u[:, None] - idx) * scale) if scale < 1 else _cubic(u[:, None] - idx)
    w /= w.sum(1, keepdims=True)
    j = idx.astype(int) - 1
    j = np.where(j < 0, -j - 1, np.where(j >= n_in, 2 * n_in - 1 - j, j))
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), taps), j.ravel()), w.ravel())
    return m


def _matlab_imresize_uint8(img, scale):
    h, w = img.shape[:2]
    out = np.einsum('oh,hwc,pw->opc', _resize_matrix(h, math.ceil(h * scale), scale), img.astype(np.float64),
                    _resize_matrix(w, math.ceil(w * scale), scale), optimize=True)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def test_basicsr_published_baboon_values():
    data = env_dir('TISR_DATA')
    if data is None: pytest.skip('set TISR_DATA to the shared data folder (reference/basicsr/baboon.png)')
    hr = read_image(data / 'reference' / 'basicsr' / 'baboon.png', channels='rgb')[0]
    hr8 = np.round(hr * 255).astype(np.uint8)
    bic = _matlab_imresize_uint8(_matlab_imresize_uint8(hr8, 1 / 4), 4)
    # BasicSR basicsr/metrics/README.md, crop_border 4 (Y: its PyTorch-CPU column; its numpy one does Y in float32)
    assert abs(psnr_np(bic, hr8, 4) - 20.419710) < 1e-6
    assert abs(psnr_np(bic, hr8, 4, test_y=True) - 22.441899) < 1e-6
    assert abs(ssim_np(bic, hr8, 4) - 0.391853) < 1e-6
    assert abs(ssim_np(bic, hr8, 4, test_y=True) - 0.453097) < 1e-6
    t = lambda a: to_tensor(a.astype(np.float32) / 255)
    assert abs(psnr(t(bic), t(hr8), 4, test_y=True).item() - 22.441899) < 1e-6
    assert abs(ssim(t(bic), t(hr8), 4).item() - 0.391853) < 1e-6


def test_evaluate_pair():
    sr, hr = _pair((2, 1, 32, 32))
    r = evaluate_pair(sr, hr, scale=4)
    assert list(r) == ['psnr', 'ssim']
    assert torch.equal(r['psnr'], psnr(sr, hr, crop_border=4))
    assert torch.equal(r['ssim'], ssim(sr, hr, crop_border=4))
    rgb_sr, rgb_hr = _pair((1, 3, 32, 32), seed=3)
    assert torch.equal(evaluate_pair(rgb_sr, rgb_hr, 2)['psnr'], psnr(rgb_sr, rgb_hr, 2, test_y=True))
    with pytest.raises(ValueError, match='modcrop'): evaluate_pair(sr, hr[..., :-2, :-2], 4)
    u8 = lambda t: np.round(t[0, 0].numpy() * 255).astype(np.uint8)   # uint8 arrays are divided by 255
    assert abs(evaluate_pair(u8(sr), u8(hr), 4)['psnr'].item() - r['psnr'][0].item()) < 1e-9
    with pytest.raises(ValueError, match='valid: uint8'): evaluate_pair(u8(sr).astype(np.int32), u8(hr), 4)
    assert metric_conventions() in METRIC_CONVENTIONS and LPIPS_NAME in METRIC_CONVENTIONS


# ---------------------------------------------------------------- LPIPS / ST-LPIPS

@pytest.fixture(scope='module')
def stlpips_metric():
    return lpips_metric(force='stlpips')


def test_stlpips_is_named_and_behaves(stlpips_metric, capsys):
    m = stlpips_metric
    assert m.name == STLPIPS_NAME and 'LPIPS' in metric_conventions(m) and STLPIPS_NAME in metric_conventions(m)
    sr, hr = _pair((2, 1, 64, 64), noise=0.08)
    d = m(sr, hr)
    assert d.shape == (2,) and (d > 0.01).all()
    assert torch.allclose(m(hr, hr), torch.zeros(2), atol=1e-6)
    assert torch.allclose(m(sr.expand(-1, 3, -1, -1), hr.expand(-1, 3, -1, -1)), d, atol=1e-6)
    # metric path rounds to the uint8 grid; loss path does not
    off_grid = (sr + 0.3 / 255).clamp(0, 1)
    assert torch.allclose(m(off_grid, hr), m(torch.round(off_grid * 255) / 255, hr), atol=1e-6)
    assert not torch.allclose(m(off_grid, hr, as_loss=True), m(off_grid, hr), atol=1e-7)


def test_stlpips_as_loss_has_gradients_and_stays_frozen(stlpips_metric):
    m = stlpips_metric
    sr, hr = _pair((1, 1, 48, 48))
    x = sr.clone().requires_grad_(True)
    m(x, hr, as_loss=True).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in m.parameters())
    wrapper = torch.nn.Sequential(m).train()
    assert not m.training and not m.net.training


def test_fallback_notice_and_forced_lpips_without_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv('TISR_WEIGHTS', raising=False)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    with pytest.raises(FileNotFoundError, match='TISR_WEIGHTS unset'): lpips_metric(force='lpips')
    m = lpips_metric()
    assert m.name == STLPIPS_NAME
    out = capsys.readouterr().out
    assert 'ST-LPIPS' in out and 'no AlexNet trunk weights' in out and out.count('\n') == 1
    with pytest.raises(ValueError, match="valid: None, 'lpips', 'stlpips'"): lpips_metric(force='alex')


def test_wrong_trunk_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('TISR_WEIGHTS', str(tmp_path / 'w'))
    fake = {f'features.{i}.{p}': torch.zeros(1) for i in (0, 3, 6, 8, 10) for p in ('weight', 'bias')}
    (tmp_path / 'w' / 'lpips').mkdir(parents=True)
    torch.save(fake, tmp_path / 'w' / 'lpips' / 'alexnet_features.pth')
    with pytest.raises(ValueError, match='alexnet_features.pth: sha256'): lpips_metric()
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    torch.save(fake, cache / 'alexnet-owt-7be5be79.pth')
    with pytest.raises(ValueError, match='alexnet-owt-7be5be79.pth: sha256'): lpips_metric()


def test_load_alexnet_trunk_maps_torchvision_keys(tmp_path):
    sd = {f'features.{i}.{p}': torch.full((2,), float(i)) for i in (0, 3, 6, 8, 10) for p in ('weight', 'bias')}
    sd['classifier.1.weight'] = torch.zeros(3)
    torch.save(sd, tmp_path / 'alexnet.pth')
    out = load_alexnet_trunk(tmp_path / 'alexnet.pth')
    assert sorted(out) == sorted(f'slice{s}.{i}.{p}' for s, i in zip(range(1, 6), (0, 3, 6, 8, 10)) for p in ('weight', 'bias'))
    assert out['slice4.8.bias'][0] == 8
    del sd['features.6.weight']
    torch.save(sd, tmp_path / 'broken.pth')
    with pytest.raises(KeyError, match="features.6.weight"): load_alexnet_trunk(tmp_path / 'broken.pth')


def _lpips_or_skip():
    from tisr.metrics import find_alexnet_trunk
    if find_alexnet_trunk() is None:
        pytest.skip('LPIPS alex needs AlexNet trunk weights: set TISR_WEIGHTS (lpips/alexnet_features.pth) '
                    'or have the torchvision cache')
    return lpips_metric()


def test_lpips_alex_reproduces_published_values():
    data = env_dir('TISR_DATA')
    if data is None: pytest.skip('set TISR_DATA to the shared data folder (reference/lpips)')
    m = _lpips_or_skip()
    assert m.name == LPIPS_NAME
    ref, p0, p1 = (to_tensor(read_image(data / 'reference' / 'lpips' / f'ex_{n}.png', channels='rgb')[0])
                   for n in ('ref', 'p0', 'p1'))
    assert abs(m(p0, ref).item() - 0.722) < 1e-3
    assert abs(m(p1, ref).item() - 0.138) < 1e-3


def test_lpips_alex_grey_and_gradients():
    m = _lpips_or_skip()
    sr, hr = _pair((2, 1, 64, 64), noise=0.08)
    assert torch.allclose(m(sr, hr), m(sr.expand(-1, 3, -1, -1), hr.expand(-1, 3, -1, -1)), atol=1e-6)
    x = sr.clone().requires_grad_(True)
    m(x, hr, as_loss=True).mean().backward()
    assert x.grad.abs().sum() > 0 and not any(p.requires_grad for p in m.parameters())
