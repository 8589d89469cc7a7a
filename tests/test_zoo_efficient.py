"Integration tests of the efficient model zoo: CARN-M, SAFMN, SPAN, BSRN, A2N (layouts, grey fold, accuracy)."
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tisr.hub as hub
from tisr.arch.a2n import A2N, AAB
from tisr.arch.bsrn import BSRN, InputTiling
from tisr.arch.carn import CARNM
from tisr.arch.safmn import SAFMN
from tisr.arch.span import SPAN, SPAB
from tisr.core import env_dir
from tisr.models import (CheckpointMismatch, ReplicateAverage, build_model, fold_to_grey, load_checkpoint,
                         load_state_dict_checked, model_info, model_spec)

needs_weights = pytest.mark.skipif(env_dir('TISR_WEIGHTS') is None,
                                   reason='set TISR_WEIGHTS to the shared weights folder (e.g. ../shared/weights)')


def _astronaut_psnr_y(name, scale):
    "PSNR-Y of `name` on skimage's astronaut, the shared weights README protocol."
    from PIL import Image
    from skimage import data as skdata
    hr = skdata.astronaut()
    h, w = (s - s % scale for s in hr.shape[:2])
    hr = hr[:h, :w]
    lr = np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC))
    with torch.no_grad(): sr = build_model(name, scale, channels=3)(torch.from_numpy(lr / 255.).permute(2, 0, 1)[None].float())
    y = lambda x: (16 + x @ np.array([65.481, 128.553, 24.966])) / 255
    d = (y(sr[0].permute(1, 2, 0).double().numpy()) - y(hr / 255.))[scale:-scale, scale:-scale]
    return 10 * np.log10(1 / np.mean(d**2))


def _fold_vs_replicate(net, seed=0, size=(20, 17)):
    "Max |fold - replicate| in float64 (so round-off cannot hide a wrong fold), and the RGB channel spread."
    net = net.double()
    g = torch.rand(2, 1, *size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        rgb = net(g.expand(-1, 3, -1, -1))
        d = (fold_to_grey(net)(g) - ReplicateAverage(net)(g)).abs().max().item()
    return d, (rgb[:, 0] - rgb[:, 2]).abs().max().item()


def _grey_photo(size=48):
    "A natural grey image (skimage's camera, downsampled), float32 1x1xHxW in [0, 1]."
    from skimage import data as skdata
    cam = skdata.camera()[::512 // size, ::512 // size] / 255.
    return torch.from_numpy(cam).float()[None, None]


def _fold_vs_replicate_pretrained(name, scale):
    "Max |fold - replicate| of the real float32 weights on a natural grey image."
    g = _grey_photo()
    with torch.no_grad():
        return (build_model(name, scale, adapter='fold')(g) - build_model(name, scale, adapter='replicate')(g)).abs().max().item()


def _randomise(net, seed=0, std=0.05):
    "Non-trivial random weights (biases included) so that colour channels and blocks all matter."
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad: p.normal_(0, std)
    return net.eval()


# ---------------------------------------------------------------- CARN-M

# published "415K": 414,787 trainable + 24 frozen mean-shift values
CARN_M_PARAMS = 414_811
CARN_M_PSNR_Y = {2: 36.19, 3: 32.23, 4: 29.93}


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_carn_m_one_network_every_scale(scale):
    m = build_model('carn-m', scale, pretrained=False, channels=3)
    assert model_info(m)['params'] == CARN_M_PARAMS
    assert model_spec('carn-m').weights_name(scale) == 'carn_m_x234'
    with torch.no_grad(): y = m(torch.rand(1, 3, 9, 7))
    assert y.shape == (1, 3, 9 * scale, 7 * scale)


def test_carn_m_scale_argument_picks_head():
    net = _randomise(CARNM(scale=2))
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        assert net(x).shape[-1] == 12 and net(x, 4).shape[-1] == 24
        x4 = CARNM(scale=4).eval()
        x4.load_state_dict(net.state_dict())
        assert torch.equal(x4(x), net(x, 4))


def test_carn_m_fold_equals_replicate_random():
    d, spread = _fold_vs_replicate(_randomise(CARNM(scale=3)))
    assert spread > 1e-3 and d < 1e-9


def test_carn_m_wrong_layout_names_keys():
    sd = CARNM().state_dict()
    sd = {k.replace('upsample.up4', 'upsample.up'): v for k, v in sd.items() if 'up2' not in k and 'up3' not in k}
    with pytest.raises(CheckpointMismatch, match=r'missing keys: upsample\.up2.*unexpected keys: upsample\.up\.body'):
        load_state_dict_checked(CARNM(), sd)


@needs_weights
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_carn_m_astronaut_psnr_y(scale):
    p = _astronaut_psnr_y('carn-m', scale)
    assert abs(p - CARN_M_PSNR_Y[scale]) < 0.05, p


@needs_weights
def test_carn_m_fold_equals_replicate_real_weights():
    assert _fold_vs_replicate_pretrained('carn-m', 2) < 1e-5


# ---------------------------------------------------------------- SAFMN


def test_safmn_params_and_shape():
    m = build_model('safmn', 4, pretrained=False, channels=3)
    assert model_info(m)['params'] == 237_000
    with torch.no_grad(): assert m(torch.rand(1, 3, 16, 20)).shape == (1, 3, 64, 80)


def test_safmn_fold_equals_replicate_random():
    d, spread = _fold_vs_replicate(_randomise(SAFMN()), size=(16, 20))
    assert spread > 1e-3 and d < 1e-9


def test_safmn_wrong_scale_names_shapes():
    with pytest.raises(CheckpointMismatch, match=r'to_img\.0\.weight: checkpoint \(12, 36, 3, 3\) vs model \(48, 36, 3, 3\)'):
        load_state_dict_checked(SAFMN(scale=4), SAFMN(scale=2).state_dict())


@needs_weights
def test_safmn_astronaut_psnr_y():
    p = _astronaut_psnr_y('safmn', 4)
    assert abs(p - 30.25) < 0.05, p


@needs_weights
def test_safmn_fold_equals_replicate_real_weights():
    assert _fold_vs_replicate_pretrained('safmn', 4) < 1e-5


# ---------------------------------------------------------------- SPAN


def test_span_params_and_shape():
    m = build_model('span', 4, pretrained=False, channels=3)
    assert model_info(m)['params'] == 150_688
    assert 'net.mean' not in m.state_dict()
    with torch.no_grad(): assert m(torch.rand(1, 3, 10, 12)).shape == (1, 3, 40, 48)


def test_span_block_gate_is_bounded():
    "The parameter-free attention (sigmoid - 0.5) keeps |out| below half of |c3 + x|."
    blk = _randomise(SPAB(8), std=0.3)
    x = torch.randn(1, 8, 6, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out, _ = blk(x)
        c3 = blk.c3_r(F.silu(blk.c2_r(F.silu(blk.c1_r(x)))))
    assert (out.abs() <= 0.5 * (c3 + x).abs() + 1e-6).all() and out.abs().max() > 1e-3


def test_span_fold_equals_replicate_random():
    d, spread = _fold_vs_replicate(_randomise(SPAN(), std=0.02), size=(12, 10))
    assert spread > 1e-3 and d < 1e-9


def test_span_wrong_width_names_shapes():
    with pytest.raises(CheckpointMismatch, match=r'conv_1\.eval_conv\.weight: checkpoint \(26, 3, 3, 3\) vs model \(28, 3, 3, 3\)'):
        load_state_dict_checked(SPAN(), SPAN(nf=26).state_dict())


@needs_weights
def test_span_astronaut_psnr_y():
    p = _astronaut_psnr_y('span', 4)
    assert abs(p - 29.91) < 0.05, p


@needs_weights
def test_span_fold_equals_replicate_real_weights():
    assert _fold_vs_replicate_pretrained('span', 4) < 1e-5


# ---------------------------------------------------------------- BSRN


def test_bsrn_params_and_shape():
    m = build_model('bsrn', 4, pretrained=False, channels=3)
    assert model_info(m)['params'] == 156_288
    with torch.no_grad(): assert m(torch.rand(1, 3, 16, 17)).shape == (1, 3, 64, 68)


def test_bsrn_input_tiling_is_four_copies_outside_state_dict():
    x = torch.rand(1, 3, 4, 5)
    assert torch.equal(InputTiling()(x), torch.cat([x] * 4, 1))
    assert not any(k.startswith('input_tiling') for k in BSRN().state_dict())


def test_bsrn_fold_equals_replicate_random():
    d, spread = _fold_vs_replicate(_randomise(BSRN(), std=0.1), size=(16, 15))
    assert spread > 1e-3 and d < 1e-9


def test_bsrn_wrong_layout_names_keys_and_shapes():
    with pytest.raises(CheckpointMismatch, match=r'missing keys: B5\..*fea_conv\.pw\.weight: checkpoint \(50, 12\) vs model \(48, 12\)'):
        load_state_dict_checked(BSRN(), BSRN(nf=50, n_blocks=4).state_dict())


@needs_weights
def test_bsrn_astronaut_psnr_y():
    p = _astronaut_psnr_y('bsrn', 4)
    assert abs(p - 30.14) < 0.05, p


@needs_weights
def test_bsrn_fold_equals_replicate_real_weights():
    assert _fold_vs_replicate_pretrained('bsrn', 4) < 1e-5


# ---------------------------------------------------------------- A2N

A2N_PARAMS = {2: 1_036_443, 3: 1_036_443, 4: 1_047_459}
A2N_PSNR_Y = {2: 36.70, 3: 32.73}


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_a2n_params_and_shape(scale):
    m = build_model('a2n', scale, pretrained=False, channels=3)
    assert model_info(m)['params'] == A2N_PARAMS[scale]
    assert m.input_range == 255.
    with torch.no_grad(): assert m(torch.rand(1, 3, 6, 5)).shape == (1, 3, 6 * scale, 5 * scale)


def test_a2n_published_params():
    assert round(A2N_PARAMS[2] / 1e6, 2) == 1.04   # the paper's 1.04M (x2/x3)


def test_a2n_branch_weights_are_a_softmax():
    w = _randomise(AAB(8), std=0.5).branch_weights(torch.randn(4, 8, 5, 5, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(w.sum(1), torch.ones(4)) and (w > 0).all() and w.shape == (4, 2)


def test_a2n_fold_equals_replicate_random():
    d, spread = _fold_vs_replicate(_randomise(A2N(scale=4)), size=(9, 8))
    assert spread > 1e-3 and d < 1e-9


def test_a2n_x4_hub_entry_and_self_written_checkpoint(tmp_path):
    wf = hub.WEIGHTS['a2n_x4']
    assert wf.url.endswith('/code/experiment/model/aan_x4.pt') and '210b38c' in wf.url and wf.sha256 is None
    src = _randomise(A2N(scale=4), seed=3)
    torch.save(src.state_dict(), tmp_path / 'aan_x4.pt')          # flat keys, as the official files
    net = load_checkpoint(A2N(scale=4), tmp_path / 'aan_x4.pt').eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad(): assert torch.equal(net(x), src(x))


def test_a2n_wrong_scale_names_keys():
    with pytest.raises(CheckpointMismatch, match=r'missing keys: upconv2\.weight'):
        load_state_dict_checked(A2N(scale=4), A2N(scale=2).state_dict())


@needs_weights
@pytest.mark.parametrize('scale', [2, 3])
def test_a2n_astronaut_psnr_y(scale):
    p = _astronaut_psnr_y('a2n', scale)
    assert abs(p - A2N_PSNR_Y[scale]) < 0.05, p


@needs_weights
def test_a2n_fold_equals_replicate_real_weights():
    assert _fold_vs_replicate_pretrained('a2n', 2) < 1e-5


def test_a2n_x4_builds_from_a_local_folder(tmp_path, monkeypatch):
    "The x4 hub entry has no sha256: a file at its registered path is used (with a warning) by build_model."
    src = _randomise(A2N(scale=4), seed=4)
    (tmp_path / 'sr').mkdir()
    torch.save(src.state_dict(), tmp_path / 'sr' / 'a2n_x4.pt')
    monkeypatch.setenv('TISR_WEIGHTS', str(tmp_path))
    with pytest.warns(UserWarning, match='no published sha256'):
        m = build_model('a2n', 4, channels=3)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad(): assert torch.allclose(m(x), (src(x * 255) / 255).clamp(0, 1), atol=1e-6)
