"Integration tests of the distillation-family zoo: IMDN, IMDN-RTC, RFDN, RLFN (-S, -ntire), PAN."
import numpy as np
import pytest
import torch

import tisr.hub as hub
from tisr.core import env_dir, sha256_file
from tisr.synth import render
from tisr.models import (CheckpointMismatch, ReplicateAverage, build_model, fold_to_grey, load_checkpoint,
                         model_info, model_spec)
from tisr.arch.imdn import IMDN, IMDN_RTC
from tisr.arch.rfdn import RFDN
from tisr.arch.rlfn import RLFN
from tisr.arch.pan import PAN

# (model, scale): exact parameter count of the official checkpoint, PSNR-Y listed in the shared weights README
ZOO = {('imdn', 2): (694_404, 36.60), ('imdn', 3): (703_059, 32.60), ('imdn', 4): (715_176, 30.23),
       ('imdn-rtc', 2): (20_190, 35.47), ('rfdn', 4): (433_448, 30.34),
       ('rlfn', 2): (526_856, 36.73), ('rlfn', 4): (543_740, 30.27),
       ('rlfn-s', 2): (454_620, 36.67), ('rlfn-s', 4): (470_208, 30.34), ('rlfn-ntire', 4): (317_218, 30.21),
       ('pan', 2): (261_403, 36.59), ('pan', 3): (261_403, 32.67), ('pan', 4): (272_419, 30.29)}
INPUT_RANGE = {'imdn': 1., 'imdn-rtc': 1., 'rfdn': 255., 'rlfn': 255., 'rlfn-s': 255., 'rlfn-ntire': 255., 'pan': 1.}

needs_weights = pytest.mark.skipif(env_dir('TISR_WEIGHTS') is None,
                                   reason='set TISR_WEIGHTS to the shared weights folder (e.g. ../shared/weights)')


def _perturbed(net, seed=0):
    "`net` in eval mode with its weights jittered, so the colour channels of its output differ."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters(): p.add_(0.05 * torch.randn(p.shape, generator=g))
    return net.eval()


@pytest.mark.parametrize('name,scale', list(ZOO))
def test_param_counts_and_registry(name, scale):
    m = build_model(name, scale, pretrained=False, channels=3)
    assert model_info(m)['params'] == ZOO[name, scale][0]
    assert m.input_range == INPUT_RANGE[name]
    wf = hub.weight_file(model_spec(name).weights_name(scale))
    assert wf.subdir == 'sr' and wf.url.startswith('https://github.com/') and len(wf.sha256) == 64


@pytest.mark.parametrize('name,scale', list(ZOO))
def test_grey_shapes_and_range(name, scale):
    m = build_model(name, scale, pretrained=False)
    x = torch.rand(1, 1, 16, 18, generator=torch.Generator().manual_seed(scale))
    with torch.no_grad(): y = m(x)
    assert y.shape == (1, 1, 16 * scale, 18 * scale)
    assert 0 <= y.min() and y.max() <= 1


@pytest.mark.parametrize('net', [IMDN(scale=2), IMDN_RTC(), RFDN(), RLFN(scale=2), RLFN(nf=46, mid=48, n_blocks=4),
                                 PAN(scale=3), PAN(scale=4)], ids=lambda n: f'{type(n).__name__}x{n.scale}')
def test_fold_equals_replicate_random_weights(net):
    net = _perturbed(net)
    g = torch.rand(2, 1, 16, 20, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        rgb, fold, rep = net(g.expand(-1, 3, -1, -1)), fold_to_grey(net)(g), ReplicateAverage(net)(g)
    assert (rgb[:, 0] - rgb[:, 2]).abs().max() > 1e-3
    assert (fold - rep).abs().max() < 1e-5
    assert sum(p.numel() for p in fold_to_grey(net).parameters()) < sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize('name', ['imdn', 'rlfn-s', 'pan'])
def test_build_model_fold_equals_replicate(name):
    scale = model_spec(name).scales[-1]
    torch.manual_seed(2); fold = build_model(name, scale, pretrained=False, adapter='fold')
    torch.manual_seed(2); rep = build_model(name, scale, pretrained=False, adapter='replicate')
    g = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(): assert (fold(g) - rep(g)).abs().max() < 1e-5


@pytest.mark.parametrize('saved,target,expected', [
    (IMDN(scale=2), IMDN(scale=3), r'upsampler\.0\.weight: checkpoint \(12, 64, 3, 3\) vs model \(27, 64, 3, 3\)'),
    (IMDN(scale=2), IMDN_RTC(), r'missing keys: model\.0\.weight'),
    (RFDN(scale=2), RFDN(scale=4), r'upsampler\.0\.weight: checkpoint \(12, 50, 3, 3\) vs model \(48, 50, 3, 3\)'),
    (RLFN(scale=2), RLFN(scale=4), r'upsampler\.0\.weight: checkpoint \(12, 52, 3, 3\) vs model \(48, 52, 3, 3\)'),
    (RLFN(scale=4, nf=48), RLFN(scale=4), r'conv_1\.weight: checkpoint \(48, 3, 3, 3\) vs model \(52, 3, 3, 3\)'),
    (PAN(scale=2), PAN(scale=4), r'missing keys: upconv2\.weight, upconv2\.bias'),
], ids=['imdn', 'imdn-rtc', 'rfdn', 'rlfn', 'rlfn-s', 'pan'])
def test_wrong_checkpoint_names_the_mismatch(tmp_path, saved, target, expected):
    path = tmp_path/'ckpt.pth'
    torch.save({f'module.{k}': v for k, v in saved.state_dict().items()}, path)
    with pytest.raises(CheckpointMismatch, match=expected): load_checkpoint(target, path)


def test_official_layout_loads_strictly(tmp_path):
    "IMDN files carry a DataParallel prefix; a round trip through it is exact."
    src = _perturbed(IMDN(scale=4))
    torch.save({f'module.{k}': v for k, v in src.state_dict().items()}, tmp_path/'imdn.pth')
    dst = load_checkpoint(IMDN(scale=4).eval(), tmp_path/'imdn.pth')
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad(): assert torch.equal(src(x), dst(x))


def _psnr_y(a, b, border):
    y = lambda x: (16 + x @ np.array([65.481, 128.553, 24.966])) / 255
    d = (y(a) - y(b))[border:-border, border:-border]
    return 10 * np.log10(1 / np.mean(d**2))


def astronaut_psnr_y(name, scale):
    "PSNR-Y of pretrained `name` by the shared weights README protocol (astronaut, PIL bicubic LR, border = scale)."
    from PIL import Image
    from skimage import data as skdata
    hr = skdata.astronaut()
    h, w = (s - s % scale for s in hr.shape[:2])
    hr = hr[:h, :w]
    lr = np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC)) / 255.
    with torch.no_grad(): sr = build_model(name, scale, channels=3)(torch.from_numpy(lr).permute(2, 0, 1)[None].float())
    return _psnr_y(sr[0].permute(1, 2, 0).double().numpy(), hr / 255., scale)


@needs_weights
@pytest.mark.parametrize('name,scale', list(ZOO))
def test_official_weights(name, scale):
    wf = hub.weight_file(model_spec(name).weights_name(scale))
    path = hub.get_weights(wf.name, download=False)
    assert sha256_file(path) == wf.sha256
    p = astronaut_psnr_y(name, scale)
    assert abs(p - ZOO[name, scale][1]) < 0.05, f'{name} x{scale}: {p:.3f} dB vs listed {ZOO[name, scale][1]}'


@needs_weights
@pytest.mark.parametrize('name,scale', list(ZOO))
def test_fold_equals_replicate_real_weights(name, scale):
    # a synthetic thermal face: on uniform noise the official PAN x2/x4 weights blow up (1e6-1e10) and float32
    # rounding differences between the two paths grow to O(1)
    g = torch.from_numpy(render('faces', 0, 0, 0, size=48))[None, None].float()
    with torch.no_grad():
        d = (build_model(name, scale, adapter='fold')(g) - build_model(name, scale, adapter='replicate')(g)).abs().max()
    assert d < 1e-5
