"Integration tests of the classic zoo (EDSR, EDSR-baseline, MSRN, MSRResNet, SRResNet-face, DRLN, DRLN-BAM): counts, layouts, adapters."
import pytest
import torch

import tisr.hub as hub
from tisr.models import (DIV2K_RGB_MEAN, CheckpointMismatch, build_model, load_checkpoint, model_info, model_spec)
from tisr.arch.drln import drln, drln_bam
from tisr.arch.edsr import edsr, edsr_baseline
from tisr.arch.msrn import msrn
from tisr.arch.srresnet import msrresnet, srresnet_face

# exact x4 counts (frozen mean-shift convs included) and their rounding as published (EDSR 43M, baseline 1.5M,
# MSRN ~6.08M, MSRResNet 1.52M; DRLN 34.58M at x4, DRLN-BAM 34.31M; SRResNet-face has no published figure)
PARAMS = {'edsr': (edsr, 43_089_947, 43.), 'edsr_baseline': (edsr_baseline, 1_517_595, 1.5),
          'msrn': (msrn, 6_078_043, 6.08), 'msrresnet': (msrresnet, 1_517_571, 1.52),
          'srresnet_face': (srresnet_face, 1_812_995, 1.81), 'drln': (drln, 34_577_867, 34.58),
          'drln_bam': (drln_bam, 34_311_167, 34.31)}

# small configs for anything that runs
TINY = {'edsr': dict(n_resblocks=2, n_feats=8), 'edsr_baseline': dict(n_resblocks=2, n_feats=8),
        'msrn': dict(n_feats=8, n_blocks=2), 'msrresnet': dict(num_feat=8, num_block=2),
        'srresnet_face': dict(num_feat=8, num_block=2), 'drln': dict(chs=16), 'drln_bam': dict(chs=16)}
BUILDERS = {name: f for name, (f, _, _) in PARAMS.items()}


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "Tiny tensors: thread start-up and contention on a shared machine cost more than they save."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def meta_params(builder, scale=4) -> int:
    with torch.device('meta'): return model_info(builder(scale))['params']


@pytest.mark.parametrize('name', list(PARAMS))
def test_published_param_counts(name):
    builder, exact, published = PARAMS[name]
    n = meta_params(builder)
    assert n == exact
    digits = 0 if published == 43. else 1 if published in (1.5,) else 2
    assert round(n / 1e6, digits) == published


def test_drln_x2_is_the_papers_34_43m():
    assert round(meta_params(drln, 2) / 1e6, 2) == 34.43


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


@pytest.mark.parametrize('name', list(TINY))
def test_fold_equals_replicate(name):
    scale = 2 if name.startswith('drln') else 4
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    outs = {}
    for adapter in ('fold', 'replicate'):
        torch.manual_seed(0)
        m = build_model(name, scale, pretrained=False, channels=1, adapter=adapter, **TINY[name])
        with torch.no_grad(): outs[adapter] = m(x)
    assert outs['fold'].shape == (2, 1, 8 * scale, 8 * scale)
    assert outs['fold'].std() > 1e-4
    assert (outs['fold'] - outs['replicate']).abs().max() < 1e-5


@pytest.mark.parametrize('name,input_range', [('edsr', 255), ('edsr_baseline', 255), ('msrn', 255),
                                              ('drln', 1), ('drln_bam', 1), ('msrresnet', 1), ('srresnet_face', 1)])
def test_input_range_and_mean_shift(name, input_range):
    "With the last conv zeroed, [0,255] and [0,1] nets alike return the DIV2K mean (mean shift) or the bilinear input."
    assert model_spec(name).input_range == input_range
    scale = 2
    m = build_model(name, scale, pretrained=False, channels=3, **TINY[name])
    last = {'edsr': 'tail.1', 'edsr_baseline': 'tail.1', 'msrn': 'tail.3', 'drln': 'tail', 'drln_bam': 'tail',
            'msrresnet': 'conv_last', 'srresnet_face': 'conv_last'}[name]
    conv = m.net.get_submodule(last)
    with torch.no_grad(): conv.weight.zero_(); conv.bias.zero_()
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(): y = m(x)
    if name.endswith('resnet') or name == 'srresnet_face':
        expected = torch.nn.functional.interpolate(x, scale_factor=scale, mode='bilinear', align_corners=False)
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
