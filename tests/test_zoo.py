"The model zoo as one table driven by the model cards: every registered (model, scale) checked against its card."
import pytest
import torch

from tisr.core import env_dir
from tisr.data.synth import render
from tisr.models import (MODELS, ReplicateAverage, build_model, find_weights, fold_to_grey, get_weights,
                         load_checkpoint, model_info, model_spec, published_psnr_y)

# bicubic has no network; cfsr-delta is CFSR plus a RefineNet the user trains (tests/test_zoo_wrappers.py): neither
# is an RGB network with published weights, and neither folds
NOT_IN_TABLE = ('bicubic', 'cfsr-delta')
ZOO = [(spec.name, s) for spec in MODELS.values() if spec.name not in NOT_IN_TABLE and not spec.any_channels
       for s in spec.scales]
IDS = [f'{name}-x{s}' for name, s in ZOO]
NAMES = list(dict.fromkeys(name for name, _ in ZOO))

# The full EDSR, DRLN and MSRN take seconds per float64 forward on one CPU thread: the fold test runs them narrow
# (same code and layout, fewer features); the parameter and shape tests use the full networks.
NARROW = {'edsr': dict(n_resblocks=2, n_feats=8), 'edsr_baseline': dict(n_resblocks=2, n_feats=8),
          'msrn': dict(n_feats=8, n_blocks=2), 'drln': dict(chs=16), 'drln_bam': dict(chs=16)}

needs_weights = pytest.mark.skipif(env_dir('TISR_WEIGHTS') is None,
                                   reason='set TISR_WEIGHTS to the shared weights folder (e.g. ../shared/weights)')


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "Small tensors: thread start-up and contention on a shared machine cost more than they save."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_table_covers_the_zoo():
    "Every family with published RGB weights is in the table (a registration lost in a refactor would shrink it)."
    assert {'a2n', 'bsrn', 'carn-m', 'cfsr', 'drln', 'drln_bam', 'edsr', 'edsr_baseline', 'imdn', 'imdn-rtc', 'msrn',
            'msrresnet', 'pan', 'rfdn', 'rlfn', 'rlfn-s', 'rlfn-ntire', 'safmn', 'span', 'srresnet_face'} <= set(NAMES)
    assert len(ZOO) >= 47


@pytest.mark.parametrize('name', NAMES)
def test_card_covers_the_registered_scales(name):
    "A parameter count for every scale; weights only for registered scales; PSNR-Y only where a pinned file exists."
    spec = model_spec(name)
    assert set(spec.card.params) == set(spec.scales)
    assert set(spec.card.weights) <= set(spec.scales)
    pinned = {s for s, wf in spec.card.weights.items() if wf.sha256 is not None}
    assert set(spec.card.psnr_y) <= pinned


@pytest.mark.parametrize('name,scale', ZOO, ids=IDS)
def test_parameter_count_is_the_cards(name, scale):
    card = model_spec(name).card
    if scale not in card.params: pytest.skip(f'the {name} card has no parameter count for x{scale}')
    with torch.device('meta'): net = model_spec(name).builder(scale, 3)   # shapes only: no memory, no init time
    assert model_info(net)['params'] == card.params[scale]


@pytest.mark.parametrize('name,scale', ZOO, ids=IDS)
def test_grey_model_output_is_scale_times_input(name, scale):
    m = build_model(name, scale, pretrained=False)   # 1 channel, the RGB network folded
    x = torch.rand(1, 1, 16, 18, generator=torch.Generator().manual_seed(scale))
    with torch.no_grad(): y = m(x)
    assert y.shape == (1, 1, 16 * scale, 18 * scale)
    assert 0 <= y.min() and y.max() <= 1


def _perturbed(net, seed=0, std=0.05):
    "`net` in eval mode with its trainable weights and biases jittered, so that its colour channels differ."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad: p.add_(std * torch.randn(p.shape, generator=g))
    return net.eval()


@pytest.mark.parametrize('name,scale', ZOO, ids=IDS)
def test_fold_equals_replicate_random_weights(name, scale):
    "In float64, so that round-off can neither hide a wrong fold nor fake a difference."
    net = model_spec(name).builder(scale, 3, **NARROW.get(name, {}))
    if not hasattr(net, 'fold_spec'): pytest.skip(f'{type(net).__name__} has no fold_spec: only ReplicateAverage applies')
    net = _perturbed(net).double()
    g = torch.rand(2, 1, 16, 18, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        rgb = net(g.expand(-1, 3, -1, -1))
        fold, rep = fold_to_grey(net)(g), ReplicateAverage(net)(g)
    peak = max(1., rgb.abs().max().item())
    assert (rgb[:, 0] - rgb[:, 2]).abs().max() > 1e-3   # the colours differ: the check has teeth
    assert (fold - rep).abs().max() < 1e-9 * peak
    assert fold.shape == (2, 1, 16 * scale, 18 * scale)


def _shared_sha256sums() -> dict:
    "{relative path: sha256} of the shared weights folder's `sha256sums.txt`."
    text = (env_dir('TISR_WEIGHTS')/'sha256sums.txt').read_text()
    return dict(line.split()[::-1] for line in text.splitlines() if line.strip())


@needs_weights
@pytest.mark.parametrize('name,scale', ZOO, ids=IDS)
def test_card_weight_file_is_listed_with_its_sha256(name, scale):
    wf = model_spec(name).card.weights.get(scale)
    if wf is None: pytest.skip(f'{name} has no pretrained file for x{scale}')
    if wf.sha256 is None: pytest.skip(f'{wf.name}: no published sha256 (not in the shared folder either)')
    assert _shared_sha256sums().get(str(wf.relpath)) == wf.sha256, wf.relpath


@needs_weights
@pytest.mark.parametrize('name,scale', ZOO, ids=IDS)
def test_official_weights_load_and_reach_the_cards_psnr_y(name, scale):
    card = model_spec(name).card
    if scale not in card.psnr_y: pytest.skip(f'{name} x{scale}: no offline weights, so no PSNR-Y on the card')
    net = model_spec(name).builder(scale, 3)
    load_checkpoint(net, get_weights(card.weights[scale].name, download=False))   # strict, names what does not fit
    p = published_psnr_y(name, scale)
    assert abs(p - card.psnr_y[scale]) < 0.05, f'{name} x{scale}: {p:.3f} dB vs card {card.psnr_y[scale]}'


@needs_weights
@pytest.mark.parametrize('name,scale', ZOO, ids=IDS)
def test_fold_equals_replicate_official_weights(name, scale):
    wf = model_spec(name).card.weights.get(scale)
    if wf is None or find_weights(wf.name) is None: pytest.skip(f'{name} x{scale}: no offline weights')
    # a synthetic thermal face: on uniform noise the official PAN x2/x4 weights blow up (1e6-1e10) and float32
    # rounding differences between the two paths grow to O(1)
    g = torch.from_numpy(render('faces', 0, 0, 0, size=48))[None, None].float()
    with torch.no_grad():
        d = (build_model(name, scale, adapter='fold')(g) - build_model(name, scale, adapter='replicate')(g)).abs().max()
    assert d < 1e-5
