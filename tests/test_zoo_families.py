"""What the card-driven table (tests/test_zoo.py) does not check, family by family: official key layouts written
independently of our module names, wrong-layout error messages, input ranges, hub entries of unfetchable files,
and each family's own mechanics (CARN-M's heads, A2N's branch softmax, BSRN's input tiling, SPAN's gate)."""
import pytest
import torch
import torch.nn.functional as F

import tisr.models.hub as hub
from tisr.models import MODELS, CheckpointMismatch, build_model, load_checkpoint, load_state_dict_checked, model_spec
from tisr.models.layers import DIV2K_RGB_MEAN
from tisr.models.arch.a2n import A2N, AAB
from tisr.models.arch.bsrn import BSRN, InputTiling
from tisr.models.arch.carn import CARNM
from tisr.models.arch.drln import drln, drln_bam
from tisr.models.arch.edsr import edsr, edsr_baseline
from tisr.models.arch.imdn import IMDN, IMDN_RTC
from tisr.models.arch.msrn import msrn
from tisr.models.arch.pan import PAN
from tisr.models.arch.rfdn import RFDN
from tisr.models.arch.rlfn import RLFN
from tisr.models.arch.safmn import SAFMN
from tisr.models.arch.span import SPAN, SPAB
from tisr.models.arch.srresnet import msrresnet


def _randomise(net, seed=0, std=0.05):
    "Non-trivial random weights (biases included) so that colour channels and blocks all matter."
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad: p.normal_(0, std)
    return net.eval()


# ---------------------------------------------------------------- every family

INPUT_RANGE = {'a2n': 255, 'edsr': 255, 'edsr_baseline': 255, 'msrn': 255, 'rfdn': 255, 'rlfn': 255, 'rlfn-s': 255,
               'rlfn-ntire': 255, 'bsrn': 1, 'carn-m': 1, 'cfsr': 1, 'drln': 1, 'drln_bam': 1, 'imdn': 1, 'imdn-rtc': 1,
               'msrresnet': 1, 'pan': 1, 'safmn': 1, 'span': 1, 'srresnet_face': 1}


@pytest.mark.parametrize('name', list(INPUT_RANGE))
def test_input_range_is_the_official_codes(name):
    assert model_spec(name).input_range == INPUT_RANGE[name]


# the published figures the cards' exact counts must round to (papers and the shared weights README)
PUBLISHED_PARAMS = [('edsr', 4, 1e6, 0, 43), ('edsr_baseline', 4, 1e6, 1, 1.5), ('msrn', 4, 1e6, 2, 6.08),
                    ('msrresnet', 4, 1e6, 2, 1.52), ('drln', 2, 1e6, 2, 34.43), ('drln', 4, 1e6, 2, 34.58),
                    ('drln_bam', 4, 1e6, 2, 34.31), ('a2n', 2, 1e6, 2, 1.04), ('carn-m', 2, 1e3, 0, 415),
                    ('cfsr', 2, 1e3, 0, 291), ('cfsr', 3, 1e3, 0, 298), ('cfsr', 4, 1e3, 0, 307),
                    ('imdn', 2, 1e3, 0, 694), ('imdn', 3, 1e3, 0, 703), ('imdn', 4, 1e3, 0, 715),
                    ('imdn-rtc', 2, 1e3, 0, 20), ('pan', 2, 1e3, 0, 261), ('pan', 4, 1e3, 0, 272),
                    ('rfdn', 4, 1e3, 0, 433), ('rlfn-s', 2, 1e3, 0, 455), ('rlfn', 4, 1e3, 0, 544),
                    ('safmn', 4, 1e3, 0, 237), ('span', 4, 1e3, 0, 151), ('bsrn', 4, 1e3, 0, 156)]


@pytest.mark.parametrize('name,scale,unit,digits,published', PUBLISHED_PARAMS,
                         ids=[f'{n}-x{s}' for n, s, *_ in PUBLISHED_PARAMS])
def test_card_counts_round_to_the_published_figures(name, scale, unit, digits, published):
    assert round(model_spec(name).card.params[scale] / unit, digits) == published


def test_pinned_files_are_github_files_under_sr():
    "Files with a pinned sha256 come from a GitHub commit and sit under `sr/`, as in the shared weights folder."
    pinned = {wf.name: wf for spec in MODELS.values() for wf in spec.card.weights.values() if wf.sha256 is not None}
    assert len(pinned) >= 22   # the SR files of the shared weights folder
    for wf in pinned.values():
        assert wf.subdir == 'sr' and wf.url.startswith('https://github.com/') and len(wf.sha256) == 64, wf


# ---------------------------------------------------------------- EDSR, EDSR-baseline, MSRN, MSRResNet, DRLN

def _edsr_keys(n_blocks, upsampler_keys):
    keys = ['sub_mean', 'add_mean', 'head.0'] + [f'body.{i}.body.{j}' for i in range(n_blocks) for j in (0, 2)]
    keys += [f"body.{n_blocks}"] + upsampler_keys + ["tail.1"]
    return [f'{k}.{t}' for k in keys for t in ('weight', 'bias')]


def _msrn_keys(n_blocks):
    block = ['conv_3_1', 'conv_3_2', 'conv_5_1', 'conv_5_2', 'confusion']
    keys = ['sub_mean', 'add_mean', 'head.0'] + [f'body.{i}.{c}' for i in range(n_blocks) for c in block]
    keys += ['tail.0', 'tail.1', 'tail.2.0', 'tail.2.2', 'tail.3']
    return [f'{k}.{t}' for k in keys for t in ('weight', 'bias')]


def _msrresnet_keys(n_blocks):
    keys = ['conv_first'] + [f'body.{i}.conv{j}' for i in range(n_blocks) for j in (1, 2)]
    keys += ['upconv1', 'upconv2', 'conv_hr', 'conv_last']
    return [f'{k}.{t}' for k in keys for t in ('weight', 'bias')]


def _official(net, official_keys, wrap=None):
    "`net`'s tensors under the official key names (written independently of our module names), optionally wrapped."
    tensors = list(net.state_dict().values())
    assert len(tensors) == len(official_keys)
    sd = dict(zip(official_keys, tensors))
    return {wrap: sd} if wrap else sd


@pytest.mark.parametrize('name,builder,kw,keys,wrap', [
    ('edsr_baseline_x4', edsr_baseline, dict(n_resblocks=2, n_feats=8), _edsr_keys(2, ['tail.0.0', 'tail.0.2']), None),
    ('edsr_x4', edsr, dict(n_resblocks=3, n_feats=8), _edsr_keys(3, ['tail.0.0', 'tail.0.2']), None),
    ('msrn_x4', msrn, dict(n_feats=8, n_blocks=2), _msrn_keys(2), None),
    ('msrresnet_x4', msrresnet, dict(num_feat=8, num_block=2), _msrresnet_keys(2), 'params'),
    ('msrresnet_x4', msrresnet, dict(num_feat=8, num_block=2), _msrresnet_keys(2), 'params_ema'),
])
def test_official_layout_loads_strictly(tmp_path, name, builder, kw, keys, wrap):
    torch.manual_seed(0)
    src = builder(4, **kw)
    wf = hub.weight_file(name)
    path = tmp_path/wf.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_official(src, keys, wrap), path)
    dst = load_checkpoint(builder(4, **kw), path)
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()): assert torch.equal(a, b), k


def test_drln_official_keys_and_shapes():
    "Keys and shapes read from the official DRLN / super-image code, on the full-size x4 nets (meta device)."
    with torch.device('meta'): sd, bam = drln(4).state_dict(), drln_bam(4).state_dict()
    expected = {'sub_mean.shifter.weight': (3, 3, 1, 1), 'head.weight': (64, 3, 3, 3),
                'b1.r3.body.0.weight': (256, 256, 3, 3), 'b1.g.body.0.weight': (64, 512, 1, 1),
                'b1.ca.c1.body.0.weight': (4, 64, 3, 3), 'b1.ca.c4.body.0.weight': (64, 12, 3, 3),
                'c1.body.0.weight': (64, 128, 3, 3), 'c16.body.0.weight': (64, 320, 3, 3),
                'c20.body.0.weight': (64, 320, 3, 3), 'upsample.up.body.3.weight': (256, 64, 3, 3),
                'tail.weight': (3, 64, 3, 3), 'add_mean.shifter.bias': (3,)}
    for k, shape in expected.items(): assert tuple(sd[k].shape) == shape, k
    assert sum(k.endswith('.r1.body.0.weight') for k in sd) == 20 and 'b21.g.body.0.weight' not in sd
    for k, shape in {'b7.ca.ca.fc1.weight': (4, 64, 1, 1), 'b7.ca.ca.relu1.weight': (4,),
                     'b7.ca.sa.conv1.weight': (1, 1, 7, 7)}.items():
        assert tuple(bam[k].shape) == shape, k


def test_drln_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    src = drln(2, chs=16)
    path = tmp_path/hub.weight_file('drln_x2').relpath
    path.parent.mkdir(parents=True)
    torch.save(src.state_dict(), path)
    dst = load_checkpoint(drln(2, chs=16), path)
    assert torch.equal(dst.c20.body[0].weight, src.c20.body[0].weight)


def test_wrong_architecture_names_keys_and_shapes(tmp_path):
    path = tmp_path/'drln.pt'
    torch.save(drln(2, chs=16).state_dict(), path)
    with pytest.raises(CheckpointMismatch, match=r'missing keys: b1\.ca\.ca\.fc1\.weight.*unexpected keys: b1\.ca\.c1'):
        load_checkpoint(drln_bam(2, chs=16), path)
    path = tmp_path/'edsr.pt'
    torch.save(edsr_baseline(4, n_resblocks=2, n_feats=8).state_dict(), path)
    with pytest.raises(CheckpointMismatch, match=r'head\.0\.weight: checkpoint \(8, 3, 3, 3\) vs model \(16, 3, 3, 3\)'):
        load_checkpoint(edsr_baseline(4, n_resblocks=2, n_feats=16), path)
    with pytest.raises(CheckpointMismatch, match=r'unexpected keys: tail\.0\.2\.weight'):
        load_checkpoint(edsr_baseline(2, n_resblocks=2, n_feats=8), path)


TINY = {'edsr': dict(n_resblocks=2, n_feats=8), 'edsr_baseline': dict(n_resblocks=2, n_feats=8),
        'msrn': dict(n_feats=8, n_blocks=2), 'msrresnet': dict(num_feat=8, num_block=2),
        'srresnet_face': dict(num_feat=8, num_block=2), 'drln': dict(chs=16), 'drln_bam': dict(chs=16)}
LAST_CONV = {'edsr': 'tail.1', 'edsr_baseline': 'tail.1', 'msrn': 'tail.3', 'drln': 'tail', 'drln_bam': 'tail',
             'msrresnet': 'conv_last', 'srresnet_face': 'conv_last'}


@pytest.mark.parametrize('name', list(TINY))
def test_input_range_and_mean_shift(name):
    "With the last conv zeroed, [0,255] and [0,1] nets alike return the DIV2K mean (mean shift) or the bilinear input."
    scale = 2
    m = build_model(name, scale, pretrained=False, channels=3, **TINY[name])
    conv = m.net.get_submodule(LAST_CONV[name])
    with torch.no_grad(): conv.weight.zero_(); conv.bias.zero_()
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): y = m(x)
    if 'resnet' in name: expected = F.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False)
    else: expected = torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1).expand(1, 3, 12, 12)
    assert (y - expected).abs().max() < 1e-5


def test_hub_entries_name_official_files():
    assert hub.weight_file('edsr_x4').url == 'https://cv.snu.ac.kr/research/EDSR/models/edsr_x4-4f62e9ef.pt'
    assert hub.weight_file('edsr_baseline_x4').filename == 'edsr_baseline_x4-6b446fab.pt'
    assert hub.weight_file('drln_bam_x4').url == 'https://huggingface.co/eugenesiow/drln-bam/resolve/main/pytorch_model_4x.pt'
    assert hub.weight_file('msrn_x4').url.endswith('MIVRC/MSRN-PyTorch/raw/master/MSRN/Test/model/MSRN_x4.pt')
    assert hub.weight_file('msrresnet_x4').url is None  # Google Drive only
    for name in ('edsr', 'edsr_baseline', 'msrn', 'msrresnet', 'drln', 'drln_bam'):
        spec = model_spec(name)
        for s in spec.scales: assert spec.weights_name(s) in hub.WEIGHTS, (name, s)


# ---------------------------------------------------------------- CARN-M

@pytest.mark.parametrize('scale', [2, 3, 4])
def test_carn_m_one_file_for_every_scale(scale):
    assert model_spec('carn-m').weights_name(scale) == 'carn_m_x234'


def test_carn_m_scale_argument_picks_head():
    net = _randomise(CARNM(scale=2))
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        assert net(x).shape[-1] == 12 and net(x, 4).shape[-1] == 24
        x4 = CARNM(scale=4).eval()
        x4.load_state_dict(net.state_dict())
        assert torch.equal(x4(x), net(x, 4))


def test_carn_m_wrong_layout_names_keys():
    sd = CARNM().state_dict()
    sd = {k.replace('upsample.up4', 'upsample.up'): v for k, v in sd.items() if 'up2' not in k and 'up3' not in k}
    with pytest.raises(CheckpointMismatch, match=r'missing keys: upsample\.up2.*unexpected keys: upsample\.up\.body'):
        load_state_dict_checked(CARNM(), sd)


# ---------------------------------------------------------------- SAFMN, SPAN, BSRN

def test_safmn_wrong_scale_names_shapes():
    with pytest.raises(CheckpointMismatch, match=r'to_img\.0\.weight: checkpoint \(12, 36, 3, 3\) vs model \(48, 36, 3, 3\)'):
        load_state_dict_checked(SAFMN(scale=4), SAFMN(scale=2).state_dict())


def test_span_mean_is_not_in_the_state_dict():
    assert 'net.mean' not in build_model('span', 4, pretrained=False, channels=3).state_dict()
    assert 'mean' not in SPAN().state_dict()


def test_span_block_gate_is_bounded():
    "The parameter-free attention (sigmoid - 0.5) keeps |out| below half of |c3 + x|."
    blk = _randomise(SPAB(8), std=0.3)
    x = torch.randn(1, 8, 6, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out, _ = blk(x)
        c3 = blk.c3_r(F.silu(blk.c2_r(F.silu(blk.c1_r(x)))))
    assert (out.abs() <= 0.5 * (c3 + x).abs() + 1e-6).all() and out.abs().max() > 1e-3


def test_span_wrong_width_names_shapes():
    with pytest.raises(CheckpointMismatch, match=r'conv_1\.eval_conv\.weight: checkpoint \(26, 3, 3, 3\) vs model \(28, 3, 3, 3\)'):
        load_state_dict_checked(SPAN(), SPAN(nf=26).state_dict())


def test_bsrn_input_tiling_is_four_copies_outside_state_dict():
    x = torch.rand(1, 3, 4, 5)
    assert torch.equal(InputTiling()(x), torch.cat([x] * 4, 1))
    assert not any(k.startswith('input_tiling') for k in BSRN().state_dict())


def test_bsrn_wrong_layout_names_keys_and_shapes():
    with pytest.raises(CheckpointMismatch, match=r'missing keys: B5\..*fea_conv\.pw\.weight: checkpoint \(50, 12\) vs model \(48, 12\)'):
        load_state_dict_checked(BSRN(), BSRN(nf=50, n_blocks=4).state_dict())


# ---------------------------------------------------------------- A2N

def test_a2n_branch_weights_are_a_softmax():
    w = _randomise(AAB(8), std=0.5).branch_weights(torch.randn(4, 8, 5, 5, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(w.sum(1), torch.ones(4)) and (w > 0).all() and w.shape == (4, 2)


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


# ---------------------------------------------------------------- IMDN, IMDN-RTC, RFDN, RLFN, PAN

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


def test_imdn_dataparallel_prefix_round_trip(tmp_path):
    "IMDN files carry a DataParallel prefix; a round trip through it is exact."
    src = _randomise(IMDN(scale=4))
    torch.save({f'module.{k}': v for k, v in src.state_dict().items()}, tmp_path/'imdn.pth')
    dst = load_checkpoint(IMDN(scale=4).eval(), tmp_path/'imdn.pth')
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad(): assert torch.equal(src(x), dst(x))
