"Real-IISR in tisr: the TOC metric and loss by hand, TSG and CAC, the `real-iisr` network, a training run through `tisr.train.fit`, and a smoke run of the experiment notebook."
import copy, json, math, os
from pathlib import Path
from unittest import mock
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import tisr.models.arch.realiisr   # registers 'real-iisr' (not yet in the models package's import list)
from tisr.metrics import NEIGHBOURS_8, neighbour_diffs, thermal_order_violation_rate
from tisr.losses import ThermalOrderConsistencyLoss, ImageSumTOCLoss, WeightedLoss
from tisr.models import build_model, model_info
from tisr.models.arch.realiisr import RealIISR, real_iisr
from tisr.models.arch.realiisr_parts import (AttentionGate, ConditionalCodebook, GuidanceCrossAttention,
                                            ThermalStructuralGuidance, codebook_usage, sobel_magnitude, thermal_response_map)
from tisr.train import TrainConfig, fit, resolve_recipe
from tisr.run import RunConfig
from conftest import run_notebook

torch.set_num_threads(1)


def columns(values, rows=1, patch=8):
    "A 1x1x(rows*p)x(len(values)*p) image whose p-wide column k has the constant value values[k]."
    row = torch.tensor(values, dtype=torch.float32).repeat_interleave(patch)
    return row.view(1, 1, 1, -1).expand(1, 1, rows * patch, -1).clone()


# ---------------------------------------------------------------- TOC: hand-computed cases

def test_neighbour_diffs_replicate_the_border():
    d = neighbour_diffs(columns([0.25, 0.75]))
    assert d.shape == (1, 8, 1, 2)
    assert d[0, :, 0, 0].tolist() == [0, 0, -0.5, 0, -0.5, 0, -0.5, 0]   # offsets (0,-1), (-1,-1), (1,-1) see the right patch
    assert d[0, :, 0, 1].tolist() == [0, 0, 0, 0.5, 0, 0.5, 0, 0.5]


def test_toc_two_patches_inverted():
    hr, sr = columns([0.25, 0.75]), columns([0.625, 0.375])
    per_patch = 3 * 0.125 / 8                     # 3 offsets reach the other patch, each ReLU(-(0.25 * -0.5))
    assert ThermalOrderConsistencyLoss()(sr, hr).item() == pytest.approx(per_patch)            # tisr: mean over patches
    assert ImageSumTOCLoss()(sr, hr).item() == pytest.approx(2 * per_patch)                    # published: sum per image
    assert ThermalOrderConsistencyLoss(reduction='image-sum')(sr, hr).item() == pytest.approx(0.09375)
    assert thermal_order_violation_rate(sr, hr).item() == 1.0


def test_toc_2x2_grid_and_partial_flip():
    hr, sr = columns([0.25, 0.75], rows=2), columns([0.625, 0.375], rows=2)
    assert ImageSumTOCLoss()(sr, hr).item() == pytest.approx(4 * 3 * 0.125 / 8)
    hr3, sr3 = columns([0.25, 0.5, 0.75]), columns([0.25, 0.625, 0.375])
    assert ImageSumTOCLoss()(sr3, hr3).item() == pytest.approx(6 * 0.0625 / 8)
    assert ThermalOrderConsistencyLoss()(sr3, hr3).item() == pytest.approx(6 * 0.0625 / 8 / 3)
    assert thermal_order_violation_rate(sr3, hr3).item() == 0.5                             # 6 of 12 ordered pair-directions


def test_toc_threshold_acts_on_hr_only_and_is_inclusive():
    sr = columns([0.5, 0.25])
    assert ThermalOrderConsistencyLoss()(sr, columns([0.25, 0.3125])).item() == 0.0          # |dHR| = 0.0625 < 0.1
    assert math.isnan(thermal_order_violation_rate(sr, columns([0.25, 0.3125])).item())
    hr = columns([0.25, 0.375])
    assert ThermalOrderConsistencyLoss(threshold=0.125)(sr, hr).item() == pytest.approx(3 * 0.25 * 0.125 / 8)
    assert thermal_order_violation_rate(sr, hr, tol=0.125).item() == 1.0
    assert ThermalOrderConsistencyLoss()(columns([0.3, 0.4], rows=2), columns([0.25, 0.75], rows=2)).item() == 0.0


def test_toc_reductions_per_image_and_gradients():
    hr = torch.cat([columns([0.25, 0.75]), columns([0.25, 0.75])])
    sr = torch.cat([columns([0.625, 0.375]), columns([0.25, 0.75])])
    assert ImageSumTOCLoss()(sr, hr).item() == pytest.approx(0.09375 / 2)
    assert ThermalOrderConsistencyLoss()(sr, hr).item() == pytest.approx(0.09375 / 4)
    assert ThermalOrderConsistencyLoss(reduction='none')(sr, hr).shape == (2, 1, 1, 2)
    assert thermal_order_violation_rate(sr, hr).tolist() == [1.0, 0.0]
    x_hr, x_sr = hr.clone().requires_grad_(), sr.clone().requires_grad_()
    ThermalOrderConsistencyLoss()(x_sr, x_hr).backward()
    assert x_hr.grad is None and x_sr.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='valid: mean, image-sum, none'): ThermalOrderConsistencyLoss(reduction='sum')


def naive_toc(sr, hr, patch=8, threshold=0.1):
    "Brute force: the published loss (sum over patches, batch mean) and the pooled violation rate."
    loss, ordered, flipped = 0.0, 0, 0
    m_sr, m_hr = F.avg_pool2d(sr.double(), patch), F.avg_pool2d(hr.double(), patch)
    n, _, rows, cols = m_sr.shape
    for b in range(n):
        for i in range(rows):
            for j in range(cols):
                for dy, dx in NEIGHBOURS_8:
                    ni, nj = min(max(i - dy, 0), rows - 1), min(max(j - dx, 0), cols - 1)
                    d_sr = (m_sr[b, 0, i, j] - m_sr[b, 0, ni, nj]).item()
                    d_hr = (m_hr[b, 0, i, j] - m_hr[b, 0, ni, nj]).item()
                    if abs(d_hr) >= threshold:
                        loss += max(-(d_sr * d_hr), 0.0) / len(NEIGHBOURS_8)
                        ordered += 1
                        flipped += d_sr * d_hr < 0
    return loss / n, flipped / ordered


def test_toc_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    hr, sr = torch.rand(2, 1, 32, 40, generator=g), torch.rand(2, 1, 32, 40, generator=g)
    loss, rate = naive_toc(sr, hr)
    assert ImageSumTOCLoss()(sr, hr).item() == pytest.approx(loss, rel=1e-5)
    assert ThermalOrderConsistencyLoss()(sr, hr).item() == pytest.approx(loss * 2 / (2 * 4 * 5), rel=1e-5)
    ordered = (neighbour_diffs(hr.double()).abs() >= 0.1).flatten(1).sum(1).double()
    assert ((thermal_order_violation_rate(sr, hr) * ordered).sum() / ordered.sum()).item() == pytest.approx(rate)


def test_toc_registered_names():
    from tisr.losses import LOSSES
    assert LOSSES['toc'] is ThermalOrderConsistencyLoss and LOSSES['toc-sum'] is ImageSumTOCLoss


# ---------------------------------------------------------------- TSG

def test_maps_by_hand():
    x = torch.tensor([0., 1., 2., 3.]).view(1, 1, 2, 2)
    assert torch.allclose(thermal_response_map(x), torch.sigmoid(3 * (x - 1.5) / x.flatten().std()), atol=1e-5)
    step = torch.zeros(1, 1, 5, 6)
    step[..., 3:] = 1.0
    mag = sobel_magnitude(step)
    assert torch.allclose(mag[0, 0, :, 2:4], torch.full((5, 2), 4.0)) and mag[0, 0, :, [0, 5]].max() < 1e-5
    flat = torch.full((1, 1, 6, 6), 0.5, requires_grad=True)
    sobel_magnitude(flat).sum().backward()
    assert torch.isfinite(flat.grad).all()


@pytest.mark.parametrize('iterative', [False, True])
def test_attention_gate_mixes_the_two_maps(iterative):
    thermal, edge = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    fused, w = AttentionGate(16, iterative=iterative)(thermal, edge)
    assert ((w > 0) & (w < 1)).all() and torch.allclose(fused, w * thermal + (1 - w) * edge, atol=1e-6)


def test_cross_attention_and_pretrained_encoder():
    assert GuidanceCrossAttention(16, 4, 4)(torch.randn(2, 16, 10, 13), torch.randn(2, 16, 10, 13)).shape == (2, 16, 10, 13)
    backbone = nn.Conv2d(1, 24, 4, stride=4)
    tsg = ThermalStructuralGuidance(1, 32, thermal_encoder=backbone, thermal_encoder_channels=24).train()
    guided, maps = tsg(torch.rand(2, 1, 16, 16), torch.randn(2, 32, 16, 16))
    assert guided.shape == (2, 32, 16, 16) and maps['gate'].shape == (2, 32, 16, 16)
    assert not any(p.requires_grad for p in backbone.parameters()) and not backbone.training
    with pytest.raises(ValueError, match='pretrained_channels'): ThermalStructuralGuidance(1, 32, edge_encoder=backbone)
    model = RealIISR(2, edge_encoder=lambda m: F.avg_pool2d(m, 2).repeat(1, 5, 1, 1), edge_encoder_channels=5)
    assert model(torch.rand(1, 1, 8, 8)).shape == (1, 1, 16, 16)


# ---------------------------------------------------------------- CAC

def test_straight_through_passes_the_gradient_unchanged():
    for conditional in (False, True):
        vq = ConditionalCodebook(16, 4, rank=2, conditional=conditional).train()
        z = torch.randn(2, 4, 3, 3, requires_grad=True)
        out, _ = vq(z, torch.randn(2, 2) if conditional else None)
        weights = torch.randn_like(out)
        (out * weights).sum().backward()
        assert torch.allclose(z.grad, weights)


def test_nearest_entry_commitment_and_condition():
    vq = ConditionalCodebook(16, 4, rank=2, beta=0.25, data_init=False)
    z = torch.randn(2, 4, 3, 3)
    out, stats = vq(z, torch.randn(2, 2))
    entries = vq.codebook.weight[stats['indices']].permute(0, 3, 1, 2)
    assert torch.equal(stats['indices'].flatten(), torch.cdist(z.permute(0, 2, 3, 1).reshape(-1, 4), vq.codebook.weight).argmin(1))
    assert torch.allclose(out, entries, atol=1e-6)                                     # alpha = 0: the plain entry
    assert stats['vq'].item() == pytest.approx(1.25 * F.mse_loss(entries, z).item(), rel=1e-5)
    with torch.no_grad(): vq.alpha.fill_(1.0)
    same = torch.randn(1, 4, 2, 2).repeat(2, 1, 1, 1)
    out, stats = vq(same, torch.tensor([[1.0, -1.0], [3.0, 2.0]]))
    assert torch.equal(stats['indices'][0], stats['indices'][1]) and not torch.allclose(out[0], out[1])


def test_usage_and_perplexity_hand_case():
    vq = ConditionalCodebook(4, 2, conditional=False, data_init=False)
    with torch.no_grad(): vq.codebook.weight.copy_(torch.tensor([[0., 0.], [1., 0.], [0., 1.], [5., 5.]]))
    _, stats = vq(torch.tensor([[0., 0.1], [0.9, 0.], [0.1, 0.], [1., 0.1]]).T.reshape(1, 2, 2, 2))
    assert stats['usage'] == 0.5 and stats['perplexity'] == pytest.approx(2.0)
    assert codebook_usage(torch.tensor([3, 3, 3, 3]), 4) == {'usage': 0.25, 'perplexity': pytest.approx(1.0)}


# ---------------------------------------------------------------- the network

@pytest.mark.parametrize('scale', [2, 4, 8])
def test_shapes_and_aux(scale):
    model = build_model('real-iisr', scale, pretrained=False)
    out = model(torch.rand(2, 1, 12, 20))
    assert out.shape == (2, 1, 12 * scale, 20 * scale) and out.min() >= 0 and out.max() <= 1
    aux = model.net.aux
    assert aux['gate'].shape == (2, 64, 12, 20) and aux['thermal_map'].shape == aux['edge_map'].shape == (2, 1, 12, 20)
    assert aux['indices'].shape == (2, 12, 20) and aux['h'].shape == (2, 8)


def test_builder_channels_and_scales():
    assert real_iisr(2, channels=3)(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match='valid scales: 2, 4, 8'): build_model('real-iisr', 3, pretrained=False)
    with pytest.raises(ValueError, match='expected an Nx1xHxW'): RealIISR(2)(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize('kw', [{}, {'tsg': False}, {'cac': False}, {'tsg': False, 'cac': False}])
def test_params_under_2m_at_x4(kw):
    assert model_info(build_model('real-iisr', 4, pretrained=False, **kw))['trainable'] < 2_000_000


def test_parameter_counts():
    counts = {k: model_info(RealIISR(4, **kw))['trainable'] for k, kw in
              dict(full={}, no_tsg=dict(tsg=False), no_cac=dict(cac=False)).items()}
    assert counts == {'full': 1_028_714, 'no_tsg': 951_690, 'no_cac': 1_022_017}


def test_ablation_switches_change_the_parameter_set():
    def shapes(**kw): return {n: tuple(p.shape) for n, p in RealIISR(4, **kw).named_parameters()}
    full, no_tsg, no_cac, plain = shapes(), shapes(tsg=False), shapes(cac=False), shapes(tsg=False, cac=False)
    tsg_names = {n for n in full if n.startswith('tsg.')}
    cac_names = {'quantiser.U', 'quantiser.V', 'quantiser.alpha'} | {n for n in full if n.startswith('condition.')}
    assert set(full) - set(no_tsg) == tsg_names and set(full) - set(no_cac) == cac_names
    assert set(full) - set(plain) == tsg_names | cac_names and all(full[n] == plain[n] for n in plain)
    model = RealIISR(2, tsg=False, cac=False)
    model(torch.rand(1, 1, 8, 8))
    assert model.aux['gate'] is None and model.aux['h'] is None


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = RealIISR(4).train()
    crit = WeightedLoss({'mse': 0.2, 'toc': 0.8})
    lr, hr = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 64, 64)
    def grads():
        model.zero_grad()
        (crit(model(lr), hr) + model.aux_loss()).backward()
        return {n: p.grad for n, p in model.named_parameters()}
    g = grads()
    assert all(v is not None and torch.isfinite(v).all() for v in g.values())
    # alpha = 0 at step 0 (the zero-initialised modulation): U and V get exactly zero gradient, alpha does not
    assert g['quantiser.U'].abs().sum() == 0 and g['quantiser.V'].abs().sum() == 0 and g['quantiser.alpha'].abs().sum() > 0
    with torch.no_grad(): model.quantiser.alpha.fill_(0.1)
    assert [n for n, v in grads().items() if v.abs().sum() == 0] == []


def test_usage_eval_determinism_and_near_bicubic():
    torch.manual_seed(0)
    model = RealIISR(4).train()
    model(torch.rand(4, 1, 16, 16))                       # the first training batch initialises the codebook
    assert bool(model.quantiser.initialised) and 0 < model.aux['usage'] <= 1
    assert 1 <= model.aux['perplexity'] <= model.aux['usage'] * 512 + 1e-3
    model.eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)
    bicubic = F.interpolate(x, scale_factor=4, mode='bicubic', align_corners=False).clamp(0, 1)
    assert (RealIISR(4).eval()(x) - bicubic).abs().mean() < 0.02


def test_aux_loss_and_copies():
    model = RealIISR(2).train()
    with pytest.raises(RuntimeError, match='needs a forward pass'): model.aux_loss()
    model(torch.rand(2, 1, 8, 8))
    assert model.aux_loss().requires_grad and model.aux_loss().item() == model.aux['vq'].item()
    twin = copy.deepcopy(model)                            # EMA and best-weights copies after a training forward
    assert all(torch.equal(a, b) for a, b in zip(twin.state_dict().values(), model.state_dict().values()))


def test_recipe_and_run_config():
    r = resolve_recipe('real-iisr')
    assert (r['model'], r['loss'], r['degradation'], r['pretrained']) == ('real-iisr', {'mse': 0.2, 'toc': 0.8}, 'real-blur', False)
    assert RunConfig(recipe='real-iisr', device='cpu', knobs={'model_kw': {'tsg': False}}).check()['model_kw'] == {'tsg': False}
    with pytest.raises(ValueError, match="model_kw {'gate': 1} do not fit"):
        RunConfig(recipe='real-iisr', device='cpu', knobs={'model_kw': {'gate': 1}}).check()


# ---------------------------------------------------------------- training through tisr.train.fit

def smooth_image(size=128, seed=0):
    "A smooth synthetic thermal frame in [0, 1]: a ramp plus a few Gaussian hot spots."
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing='ij')
    img = 0.3 * xs + 0.1 * ys
    for _ in range(6):
        cy, cx, amp = torch.rand(3, generator=g)
        width = 0.05 + 0.1 * torch.rand(1, generator=g)
        img = img + 0.6 * amp * torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * width ** 2))
    return ((img - img.min()) / (img.max() - img.min()))[None]


class Crops(torch.utils.data.Dataset):
    "32x32 crops of a smooth frame at fixed seeded positions, LR by 4x4 area averaging."
    def __init__(self, n=64, seed=1):
        self.img = smooth_image()
        g = torch.Generator().manual_seed(seed)
        self.corners = torch.randint(0, 128 - 32 + 1, (n, 2), generator=g).tolist()
    def __len__(self): return len(self.corners)
    def __getitem__(self, i):
        y, x = self.corners[i]
        hr = self.img[:, y:y + 32, x:x + 32]
        return dict(lr=F.avg_pool2d(hr[None], 4)[0], hr=hr, path=f'c{i}.png', dataset='smooth')


def test_training_through_fit_lowers_the_loss_and_uses_aux_loss(tmp_path):
    torch.manual_seed(0)
    model = build_model('real-iisr', 4, pretrained=False)
    cfg = TrainConfig(loss={'mse': 0.2, 'toc': 0.8}, optimizer='adamw', lr=1e-3, weight_decay=0.0, epochs=6,
                      steps_per_epoch=5, batch_size=8, schedule='constant', seed=0)
    with mock.patch.object(RealIISR, 'aux_loss', autospec=True, side_effect=RealIISR.aux_loss) as spy:
        result = fit(model, Crops(), {}, cfg, scale=4, run_dir=tmp_path, progress=False)
    assert spy.call_count == 30                            # the engine added the network's own term at every step
    losses = result.log['loss'].tolist()
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    # the codebook entries get gradient only from the VQ terms, i.e. only through aux_loss
    assert model.net.quantiser.codebook.weight.grad is not None and model.net.quantiser.codebook.weight.grad.abs().sum() > 0
    assert model.net.quantiser.alpha.item() != 0.0         # the CAC gate has started to open


# ---------------------------------------------------------------- the experiment notebook

TINY = dict(max_val=1, max_test=2, eval_size=64, quick=True, seed=1, progress=False, lepton_images=2,
            knobs=dict(epochs=1, steps_per_epoch=2, batch_size=4))


def test_experiment_notebook_smoke(tmp_path):
    out = run_notebook('realiisr.ipynb', tmp_path, run='smoke', **TINY)
    root = tmp_path/'outputs'/'realiisr'
    assert sorted(p.name for p in root.iterdir()) == ['smoke-ablation', 'smoke-full', 'smoke-no-cac', 'smoke-no-toc',
                                                      'smoke-no-tsg', 'smoke-v1']
    summary = root/'smoke-ablation'
    for f in ('ablation.csv', 'ablation.md', 'cost.csv', 'guidance.png', 'experiment.json', 'runs.json'):
        assert (summary/f).is_file(), f
    tidy = pd.read_csv(summary/'ablation.csv')
    start = 'cfsr zero-shot' if os.environ.get('TISR_WEIGHTS') else 'cfsr scratch-init'
    assert set(tidy['method']) == {'bicubic', start, 'cfsr v1', 'Real-IISR', 'w/o TSG', 'w/o CAC', 'w/o TOC'}
    assert tidy['manifest_hash'].nunique() == 1
    test = tidy[(tidy['split'] == 'test') & (tidy['dataset'] == 'all')]
    ordering = test[test['metric'] == 'order_violation'].set_index('method')['value']
    assert ordering.drop(labels=['cfsr scratch-init'], errors='ignore').between(0, 1).all()
    assert test[test['metric'] == 'psnr'].set_index('method')['value'].loc['bicubic'] > 20
    cost = pd.read_csv(summary/'cost.csv')
    assert list(cost['variant']) == ['Real-IISR', 'w/o TSG', 'w/o CAC', 'w/o TOC'] and (cost['params'] < 2_000_000).all()
    assert cost['codebook_usage'].between(0, 1).all() and (cost['step_s'] > 0).all()
    text = out.read_text()
    lepton_ready = os.environ.get('TISR_DATA') and os.environ.get('TISR_WEIGHTS')
    assert (summary/'lepton.png').is_file() if lepton_ready else 'skipped: ' in text


def test_experiment_refuses_an_unknown_variant_before_writing(tmp_path):
    papermill = pytest.importorskip('papermill')
    with pytest.raises(papermill.PapermillExecutionError, match=r"unknown variant\(s\) \['no-gate'\]; valid: full, no-tsg"):
        run_notebook('realiisr.ipynb', tmp_path, run='bad', variants=['no-gate'], **TINY)
    assert not (tmp_path/'outputs').exists()
