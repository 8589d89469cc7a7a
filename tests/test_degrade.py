"Integration tests of tisr.degrade: MATLAB bicubic against BasicSR's published baboon values, kernels, Real-ESRGAN."
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tisr.core import env_dir
from tisr import data as D
from tisr import degrade as G
from tisr.metrics import psnr_np, ssim_np


def smooth(h=64, w=64, seed=0):
    "A smooth random float32 image in [0, 1]."
    x = cv2.GaussianBlur(np.random.default_rng(seed).random((h, w)), (0, 0), 2)
    return ((x - x.min()) / np.ptp(x)).astype(np.float32)


# ---------------------------------------------------------------- resize

def test_matlab_bicubic_reproduces_basicsr_baboon():
    root = env_dir('TISR_DATA')
    if root is None: pytest.skip('set TISR_DATA to a folder laid out like /work/shared/data (reference/basicsr/baboon.png)')
    hr = cv2.cvtColor(cv2.imread(str(root/'reference'/'basicsr'/'baboon.png')), cv2.COLOR_BGR2RGB)
    bic = G.matlab_uint8(G.imresize(G.matlab_uint8(G.imresize(hr, 1 / 4)), 4))
    assert bic.shape == hr.shape
    got = [psnr_np(bic, hr, 4), psnr_np(bic, hr, 4, test_y=True), ssim_np(bic, hr, 4), ssim_np(bic, hr, 4, test_y=True)]
    np.testing.assert_allclose(got, [20.419710, 22.441898, 0.391853, 0.453097], atol=1e-4)
    # OpenCV's bicubic (a = -0.75, no antialias) is measurably different: the reason to name the method
    h, w = hr.shape[:2]
    cv = np.clip(np.round(cv2.resize(cv2.resize(hr.astype(np.float32), (w // 4, h // 4), interpolation=cv2.INTER_CUBIC),
                                     (w, h), interpolation=cv2.INTER_CUBIC)), 0, 255).astype(np.uint8)
    assert abs(psnr_np(cv, hr, 4) - got[0]) > 0.05


def test_imresize_properties_and_torch_twin():
    x = smooth(30, 22).astype(np.float64)
    np.testing.assert_allclose(G.imresize(np.full((9, 7), 0.3), 0.25), 0.3, atol=1e-12)  # partition of unity
    np.testing.assert_allclose(G.imresize(x, 1.0), x, atol=1e-12)
    assert G.imresize(x, 0.25).shape == (8, 6) and G.imresize(x, size=(5, 40)).shape == (5, 40)
    t = G.imresize_torch(torch.from_numpy(x)[None, None], 0.5)[0, 0].numpy()
    np.testing.assert_allclose(t, G.imresize(x, 0.5), atol=1e-12)
    # antialiased downscaling removes a Nyquist checkerboard; the plain kernel at 1/2 keeps part of it
    cb = (np.indices((32, 32)).sum(0) % 2).astype(np.float64)
    assert np.ptp(G.imresize(cb, 0.5)[4:-4, 4:-4]) < 1e-9
    with pytest.raises(ValueError, match='exactly one'): G.imresize(x)


def test_named_resizes():
    x = smooth(32, 32)
    outs = {m: G.resize(x, (8, 8), m) for m in G.RESIZE_METHODS}
    assert all(o.shape == (8, 8) for o in outs.values())
    np.testing.assert_allclose(outs['cv2-area'], x.reshape(8, 4, 8, 4).mean((1, 3)), atol=1e-6)
    assert np.abs(outs['matlab-bicubic'] - outs['cv2-cubic']).max() > 1e-3
    with pytest.raises(ValueError, match='valid: matlab-bicubic'): G.resize(x, (8, 8), 'lanczos')


def test_registry_has_matlab_bicubic_and_realesrgan():
    hr = smooth(64, 48)
    lr = G.get_degradation('matlab-bicubic')(hr, 4, None)
    np.testing.assert_allclose(lr, np.clip(G.imresize(hr, 0.25), 0, 1), atol=1e-6)
    lr, drawn = G.get_degradation('realesrgan')(hr, 4, np.random.default_rng(0))
    assert lr.shape == (16, 12) and drawn['name'] == 'realesrgan'


# ---------------------------------------------------------------- kernels

def test_kernels():
    k = G.gaussian_kernel(41, 2.0)
    g = G.kernel_grid(41)
    np.testing.assert_allclose((k * g[..., 0] ** 2).sum(), 4.0, rtol=1e-3)      # variance = sigma^2
    a = G.gaussian_kernel(41, 3.0, 1.0, np.pi / 4)
    cov = np.array([[(a * g[..., i] * g[..., j]).sum() for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(np.linalg.eigvalsh(cov), [1.0, 9.0], rtol=1e-3)   # rotated, same axes
    assert cov[0, 1] > 3.9
    # generalized Gaussian with beta > 1 is flatter at the top than the Gaussian of the same sigma
    assert G.generalized_gaussian_kernel(21, 2.0, beta=4)[10, 11] / G.generalized_gaussian_kernel(21, 2.0, beta=4)[10, 10] > \
           G.gaussian_kernel(21, 2.0)[10, 11] / G.gaussian_kernel(21, 2.0)[10, 10]
    # the sinc kernel passes frequencies below its cutoff and stops those above
    s = G.sinc_kernel(21, np.pi / 2)
    resp = np.abs(np.fft.fft2(G.pad_kernel(s, 63)))
    f = np.fft.fftfreq(63) * 2 * np.pi
    assert resp[0, np.argmin(np.abs(f - 0.3))] > 0.9 and resp[0, np.argmin(np.abs(f - 2.5))] < 0.1


def test_random_kernel_draws_follow_published_probabilities():
    rng = np.random.default_rng(0)
    kinds = [G.random_mixed_kernel(rng, 21)[1]['type'] for _ in range(2000)]
    for kind, p in zip(G.KERNEL_TYPES, [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]):
        assert abs(kinds.count(kind) / 2000 - p) < 0.035, kind
    sincs = [G.random_blur(smooth(32, 32), np.random.default_rng(i))[1]['type'] == 'sinc' for i in range(400)]
    assert 0.05 < np.mean(sincs) < 0.15


# ---------------------------------------------------------------- Real-ESRGAN

def test_realesrgan_config_is_x4plus():
    c = G.check_realesrgan({})
    assert c['kernel_prob'] == [0.45, 0.25, 0.12, 0.03, 0.12, 0.03] and c['blur_sigma'] == [0.2, 3.0] and c['blur_sigma2'] == [0.2, 1.5]
    assert c['resize_prob'] == [0.2, 0.7, 0.1] and c['resize_range'] == [0.15, 1.5] and c['noise_range'] == [1, 30]
    assert c['resize_prob2'] == [0.3, 0.4, 0.3] and c['noise_range2'] == [1, 25] and c['final_sinc_prob'] == 0.8
    assert c['second_blur_prob'] == 0.8 and c['poisson_scale_range2'] == [0.05, 2.5] and c['jpeg_range2'] == [30, 95]


def test_realesrgan_is_seeded_per_sample_and_loggable():
    hr = smooth(96, 64)
    lr, drawn = G.realesrgan_degrade(hr, 4, np.random.default_rng([3, 11]))
    lr2, drawn2 = G.realesrgan_degrade(hr, 4, np.random.default_rng([3, 11]))
    assert lr.shape == (24, 16) and lr.dtype == np.float32 and np.array_equal(lr, lr2) and drawn == drawn2
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-4)
    assert json.loads(json.dumps(drawn)) == drawn
    assert list(drawn) == ['name', 'blur1', 'resize1', 'noise1', 'jpeg1', 'blur2', 'resize2', 'noise2', 'final', 'clip', 'round']
    others = [G.realesrgan_degrade(hr, 4, np.random.default_rng([3, i]))[0] for i in range(4)]
    assert sum(np.array_equal(lr, o) for o in others) == 0


def test_realesrgan_parameters_steer_the_draws():
    hr = smooth(64, 64)
    for i in range(10):
        _, d = G.realesrgan_degrade(hr, 4, np.random.default_rng(i), second_blur_prob=0.0, final_sinc_prob=0.0,
                                    gaussian_noise_prob=1.0, noise_range=[2, 3], jpeg_range=[90, 90], resize_prob=[0, 0, 1])
        assert d['blur2'] == {'applied': False} and d['final']['sinc'] == {'type': 'none'}
        assert d['noise1']['type'] == 'gaussian' and 2 <= d['noise1']['sigma'] <= 3
        assert d['jpeg1']['quality'] == 90 and d['resize1']['size'] == [64, 64]
        assert d['resize2']['size'] == [int(16 * d['resize2']['factor'])] * 2


@pytest.mark.parametrize('key,value,valid', [
    ('jpeg_range', [10, 120], '1 <= low <= high <= 100'), ('noise_range2', [9, 2], 'noise_range2'),
    ('blur_sigma', [0, 3], 'blur_sigma'), ('kernel_prob', [1.0], '6 probabilities'), ('resize_prob2', [0.5, 0.6, 0.1], 'summing to 1'),
    ('gray_noise_prob', 2, 'a probability in [0, 1]'), ('kernel_list', ['box'], 'kernel_list'), ('kernel_sizes', [8, 21], 'odd'),
    ('sigma', 1, 'unknown')])
def test_realesrgan_rejects_bad_parameters(key, value, valid):
    with pytest.raises(ValueError, match=key):
        G.check_realesrgan({key: value})
    with pytest.raises(ValueError, match=valid.replace('[', r'\[').replace(']', r'\]')):
        G.check_realesrgan({key: value})


def test_pipeline_composes_pure_steps():
    def scale_by(img, rng, lo=0.5, hi=1.0):
        f = float(rng.uniform(lo, hi)); return img * f, dict(f=f)
    p = G.Pipeline([('a', scale_by), ('b', scale_by, dict(lo=0.1, hi=0.2)), G.Step('c', G.random_jpeg, dict(jpeg_range=(50, 50)))])
    x = smooth(32, 32)
    out, d = p(x, np.random.default_rng(1))
    assert 0.1 <= d['b']['f'] <= 0.2 and d['c'] == {'quality': 50}
    np.testing.assert_allclose(out, G.jpeg(x * d['a']['f'] * d['b']['f'], 50), atol=1e-6)
    assert np.array_equal(out, p(x, np.random.default_rng(1))[0])


def test_paired_dataset_with_realesrgan_dict_logs_draws(tmp_path):
    root = tmp_path/'imgs'; root.mkdir()
    for i in range(3): cv2.imwrite(str(root/f'img_{i}.png'), np.round(smooth(80, 80, i) * 255).astype(np.uint8))
    items = D.scan_folder(root, subject_re=None)
    spec = {'name': 'realesrgan', 'noise_range': [1, 5], 'second_blur_prob': 0.0}
    ds = D.PairedDataset(items, scale=4, patch=64, degradation=spec, seed=3)
    s = ds[1]
    assert s['lr'].shape == (1, 16, 16) and ds.degradation_name == 'realesrgan'
    rec = json.loads(s['deg'])
    assert rec['name'] == 'realesrgan' and rec['noise_range'] == [1, 5] and rec['blur2'] == {'applied': False}
    assert torch.equal(ds[1]['lr'], s['lr']) and ds[1]['deg'] == s['deg']
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))        # the default collate keeps deg strings
    assert len(batch['deg']) == 3 and batch['deg'][1] == s['deg']
    with pytest.raises(ValueError, match='noise_range'): D.PairedDataset(items, degradation={'name': 'realesrgan', 'noise_range': [1, 999]})
