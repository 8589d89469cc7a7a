"Integration tests of tisr.models: registry, CFSR, bicubic, grey adapters, checkpoints, published accuracy."
import pytest
import torch
import torch.nn.functional as F

import tisr.models.hub as hub
from tisr.core import env_dir
from tisr.models import (CheckpointMismatch, ReplicateAverage, build_model, fold_to_grey, list_models,
                         load_checkpoint, model_info, published_psnr_y, register_model)
from tisr.models.arch.cfsr import CFSR, CFSR_CARD

needs_weights = pytest.mark.skipif(env_dir('TISR_WEIGHTS') is None,
                                   reason='set TISR_WEIGHTS to the shared weights folder (e.g. ../shared/weights)')


def _busy_cfsr(scale=4, seed=0):
    "A random RGB CFSR whose body matters (layer scales raised from 1e-6)."
    torch.manual_seed(seed)
    net = CFSR(scale=scale).eval()
    for n, p in net.named_parameters():
        if 'layer_scale' in n: p.data.uniform_(0.2, 0.5)
    return net


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_cfsr_param_counts(scale):
    assert model_info(CFSR(scale=scale))['params'] == CFSR_CARD.params[scale]
    assert model_info(build_model('cfsr', scale, pretrained=False, channels=3))['params'] == CFSR_CARD.params[scale]


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_build_model_shapes_and_range(scale):
    m = build_model('cfsr', scale, pretrained=False)
    x = torch.rand(1, 1, 32, 28, generator=torch.Generator().manual_seed(scale))
    with torch.no_grad(): y = m(x)
    assert y.shape == (1, 1, 32 * scale, 28 * scale)
    assert y.min() >= 0 and y.max() <= 1


def test_fold_equals_replicate_random_init():
    net = _busy_cfsr(4)
    g = torch.rand(2, 1, 48, 36, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b, rgb = ReplicateAverage(net)(g), fold_to_grey(net)(g), net(g.expand(-1, 3, -1, -1))
    assert (a - b).abs().max() < 1e-5
    # the body is not a no-op and the colour channels differ, so the check has teeth
    assert (rgb[:, 0] - rgb[:, 2]).abs().max() > 1e-3
    assert (a - F.interpolate(g, scale_factor=4.)).abs().max() > 1e-2


def test_fold_exact_on_borders_needs_offset():
    "Folding the input mean into the bias alone is wrong on the zero-padded border; ours is exact there."
    net = _busy_cfsr(2)
    grey = fold_to_grey(net)
    g = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = ReplicateAverage(net)(g)
        grey.conv_first.offset.zero_()
        naive = grey(g)
    assert (naive - ref).abs().max() > 1e-4
    with torch.no_grad(): assert (fold_to_grey(net)(g) - ref).abs().max() < 1e-5


def test_build_model_adapters_agree():
    torch.manual_seed(3); fold = build_model('cfsr', 3, pretrained=False, adapter='fold')
    torch.manual_seed(3); rep = build_model('cfsr', 3, pretrained=False, adapter='replicate')
    assert torch.allclose(rep.net.net.conv_first.weight.sum(1, keepdim=True), fold.net.conv_first.conv.weight)
    g = torch.rand(1, 1, 30, 30, generator=torch.Generator().manual_seed(4))
    with torch.no_grad(): assert (fold(g) - rep(g)).abs().max() < 1e-5


def test_folded_model_trains():
    m = build_model('cfsr', 2, pretrained=False).train()
    x = torch.rand(1, 1, 12, 12)
    F.l1_loss(m(x), torch.rand(1, 1, 24, 24)).backward()
    assert m.net.conv_first.conv.weight.grad.abs().sum() > 0


def test_srmodel_clamps_only_in_eval():
    m = build_model('cfsr', 2, pretrained=False, channels=3)
    with torch.no_grad(): m.net.upsample[0].bias.fill_(5.)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert m.eval()(x).max() <= 1
        assert m.train()(x).max() > 1


def test_bicubic_is_torch_bicubic():
    m = build_model('bicubic', 3, channels=1)
    x = torch.rand(1, 1, 16, 12, generator=torch.Generator().manual_seed(5))
    ref = F.interpolate(x, scale_factor=3., mode='bicubic', align_corners=False, antialias=False).clamp(0, 1)
    assert torch.equal(m(x), ref)
    assert model_info(m)['params'] == 0
    assert build_model('bicubic', 2, channels=3)(torch.rand(1, 3, 4, 4)).shape == (1, 3, 8, 8)


def test_registry_errors():
    with pytest.raises(ValueError, match='valid: .*bicubic.*cfsr'): build_model('swinir')
    with pytest.raises(ValueError, match='valid scales: 2, 3, 4, 8, 16'): build_model('cfsr', 5, pretrained=False)
    with pytest.raises(ValueError, match='valid: 1 \\(thermal\\), 3'): build_model('cfsr', 4, pretrained=False, channels=2)
    with pytest.raises(ValueError, match='already registered'): register_model('cfsr', (2,))(lambda s, c: None)
    with pytest.raises(ValueError, match='expected an Nx1xHxW'): build_model('cfsr', 2, pretrained=False)(torch.rand(1, 3, 8, 8))


def test_wrong_checkpoints_name_the_mismatch(tmp_path):
    torch.save({'params': CFSR(scale=2).state_dict()}, tmp_path/'x2.pth')
    with pytest.raises(CheckpointMismatch, match=r'upsample\.0\.weight: checkpoint \(12, 48, 3, 3\) vs model \(48, 48, 3, 3\)'):
        load_checkpoint(CFSR(scale=4), tmp_path/'x2.pth')
    with pytest.raises(CheckpointMismatch, match=r'conv_first\.weight: checkpoint \(48, 3, 3, 3\) vs model \(48, 1, 3, 3\)'):
        load_checkpoint(CFSR(in_chans=1, scale=2), tmp_path/'x2.pth')
    sd = CFSR(scale=2, depths=(6, 5)).state_dict()
    torch.save(sd, tmp_path/'short.pth')
    with pytest.raises(CheckpointMismatch, match=r'missing keys: layers\.1\.blocks\.5\.'):
        load_checkpoint(CFSR(scale=2), tmp_path/'short.pth')
    # an official-layout checkpoint (params wrapper, DataParallel prefix) loads strictly
    good = CFSR(scale=2).state_dict()
    torch.save({'params': {f'module.{k}': v for k, v in good.items()}}, tmp_path/'good.pth')
    net = load_checkpoint(CFSR(scale=2), tmp_path/'good.pth')
    assert torch.equal(net.conv_first.weight, good['conv_first.weight'])


def test_pretrained_missing_weights_says_where(tmp_path, monkeypatch):
    monkeypatch.delenv('TISR_WEIGHTS', raising=False)
    monkeypatch.setenv('TISR_CACHE', str(tmp_path))
    def offline(*a, **k): raise OSError('network unreachable')
    monkeypatch.setattr(hub, 'download_file', offline)
    with pytest.raises(hub.WeightsNotFound) as e: build_model('cfsr', 4)
    msg = str(e.value)
    assert str(tmp_path/'weights'/'sr'/'cfsr_x4.pth') in msg and 'TISR_WEIGHTS' in msg
    assert hub.WEIGHTS['cfsr_x4'].sha256 in msg


def test_pretrained_from_local_copy(tmp_path, monkeypatch):
    "A checkpoint put in TISR_WEIGHTS under any name is found by sha256 and loaded."
    net = _busy_cfsr(2)
    torch.save({'params': net.state_dict()}, tmp_path/'my_cfsr.pth')
    wf = hub.WeightFile('cfsr_x2', 'cfsr_x2.pth', None, hub.sha256_file(tmp_path/'my_cfsr.pth'), 'sr')
    monkeypatch.setitem(hub.WEIGHTS, 'cfsr_x2', wf)
    monkeypatch.setenv('TISR_WEIGHTS', str(tmp_path))
    m = build_model('cfsr', 2, channels=3)
    assert torch.equal(m.net.conv_first.weight, net.conv_first.weight)
    df = list_models()
    assert df.set_index(['name', 'scale']).loc[('cfsr', 2), 'local'] == True


def test_list_models():
    df = list_models()
    assert {'name', 'scale', 'params', 'input_range', 'weights', 'local'} <= set(df.columns)
    cf = df[df.name == 'cfsr'].set_index('scale')
    assert cf.params.to_dict() == CFSR_CARD.params
    assert cf.weights.to_dict() == {s: f'cfsr_x{s}' for s in (2, 3, 4)}
    assert (df[df.name == 'bicubic'].params == 0).all()


@needs_weights
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_cfsr_astronaut_psnr_y(scale):
    p = published_psnr_y('cfsr', scale)
    assert abs(p - CFSR_CARD.psnr_y[scale]) < 0.05, p


@needs_weights
def test_fold_equals_replicate_real_weights():
    g = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        d = (build_model('cfsr', 4, adapter='fold')(g) - build_model('cfsr', 4, adapter='replicate')(g)).abs().max()
    assert d < 1e-5
