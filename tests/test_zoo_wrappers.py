"Model-zoo wrappers: CFSR-Delta (frozen backbone + RefineNet) and CoReFusion (guided thermal SR, missing modalities)."
import os
import pytest
import torch
import tisr.models.hub as hub
from tisr.models import build_model, model_info
from tisr.models.arch.refinenet import RefineNet, DeltaSR, REFINENET_PARAMS, cfsr_delta
from tisr.models.arch.corefusion import CoReFusion


def tiny_backbone(channels=1):
    return build_model('cfsr', 4, pretrained=False, channels=channels, embed_dim=8, depths=(1,))


@pytest.mark.parametrize('channels,count', [(3, 11_011), (1, 9_857)])
def test_refinenet_parameter_count(channels, count):
    assert model_info(RefineNet(channels))['params'] == count == REFINENET_PARAMS[channels]


def test_refinenet_last_conv_starts_near_zero():
    torch.manual_seed(0)
    last = RefineNet(1).body[-1]
    assert last.bias.abs().max() == 0
    assert 5e-5 < last.weight.std().item() < 2e-4


def test_delta_starts_at_the_backbone_and_trains_only_the_refinenet():
    torch.manual_seed(0)
    backbone = tiny_backbone()
    delta = DeltaSR(backbone, RefineNet(1)).train()
    assert not delta.backbone.training and delta.refine.training
    x = torch.rand(2, 1, 12, 10)
    with torch.no_grad(): base = backbone(x)
    assert (delta(x) - base).abs().max() < 1e-3
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    opt = torch.optim.SGD(delta.parameters(), lr=0.5)  # every parameter handed over: frozen ones must not move
    (delta(x) - torch.rand(2, 1, 48, 40)).pow(2).mean().backward()
    opt.step()
    assert all(p.grad is None and not p.requires_grad for p in delta.backbone.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in delta.refine.parameters())
    assert all(torch.equal(v, backbone.state_dict()[k]) for k, v in before.items())
    assert (delta(x) - base).abs().max() > 1e-3  # the refine net did move


def test_cfsr_delta_never_falls_back_to_a_random_backbone(tmp_path, monkeypatch):
    "Without the CFSR weights, the pretrained backbone is an error saying where to put them, not a random net."
    monkeypatch.delenv('TISR_WEIGHTS', raising=False)
    monkeypatch.setenv('TISR_CACHE', str(tmp_path))
    def offline(*a, **k): raise OSError('network unreachable')
    monkeypatch.setattr(hub, 'download_file', offline)
    with pytest.raises(hub.WeightsNotFound, match=r'cfsr_x4.*TISR_WEIGHTS'): cfsr_delta(4, 1)
    assert model_info(cfsr_delta(4, 1, pretrained=False))['trainable'] == REFINENET_PARAMS[1]


@pytest.mark.skipif(not os.environ.get('TISR_WEIGHTS'), reason='set TISR_WEIGHTS for the pretrained CFSR backbone')
def test_cfsr_delta_registered_with_pretrained_backbone():
    torch.manual_seed(0)
    model = build_model('cfsr-delta', 4)
    ref = build_model('cfsr', 4)
    assert model.channels == 1 and model_info(model)['trainable'] == REFINENET_PARAMS[1]
    x = torch.rand(1, 1, 16, 20)
    with torch.no_grad(): out, base = model(x), ref(x)
    assert out.shape == (1, 1, 64, 80) and (out - base).abs().max() < 1e-3
    assert all(torch.equal(a, b) for a, b in zip(model.net.backbone.state_dict().values(), ref.state_dict().values()))


@pytest.fixture(scope='module')
def corefusion():
    torch.manual_seed(0)
    return CoReFusion()


def test_corefusion_shapes_and_range_at_x8(corefusion):
    lr, rgb = torch.rand(2, 1, 8, 8), torch.rand(2, 3, 64, 64)
    with torch.no_grad(): out = corefusion.eval()(lr, rgb, scale=8)
    assert out['sr'].shape == (2, 1, 64, 64)
    assert out['z_rgb'].shape == out['z_thermal'].shape == (2, 64)
    assert out['sr'].min() >= -1 and out['sr'].max() <= 1


def test_corefusion_missing_modalities(corefusion):
    lr, rgb = torch.rand(2, 1, 8, 8), torch.rand(2, 3, 64, 64)
    net = corefusion.eval()
    with torch.no_grad():
        only_th, only_rgb, both = net(lr_thermal=lr, scale=8), net(rgb=rgb), net(lr, rgb)
    assert only_th['sr'].shape == only_rgb['sr'].shape == (2, 1, 64, 64)
    assert only_th['z_rgb'] is None and only_th['z_thermal'].shape == (2, 64)
    assert only_rgb['z_thermal'] is None and only_rgb['z_rgb'].shape == (2, 64)
    assert not torch.allclose(only_th['sr'], both['sr'])  # the guide changes the result when present
    with pytest.raises(ValueError, match='neither'): net()
    with pytest.raises(ValueError, match='not the RGB size'): net(torch.rand(1, 1, 4, 4), torch.rand(1, 3, 64, 64))


def test_corefusion_gradients_reach_every_part(corefusion):
    net = corefusion.train()
    net.zero_grad()
    out = net(torch.rand(2, 1, 8, 8), torch.rand(2, 3, 64, 64))
    (out['sr'].mean() + out['z_rgb'].pow(2).mean() + out['z_thermal'].pow(2).mean()).backward()
    for part in ('rgb_encoder', 'thermal_encoder', 'decoder', 'head', 'rgb_proj', 'thermal_proj'):
        grads = [p.grad for p in getattr(net, part).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), part
        assert sum(g.abs().sum() for g in grads) > 0, part
