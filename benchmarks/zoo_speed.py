"""CPU inference time of each zoo model against its official implementation, at matching output.

usage: python benchmarks/zoo_speed.py EXT_DIR [--threads 1] [--budget 6] [--rounds N] [--warmup 2] [--families cfsr imdn ...]

EXT_DIR holds checkouts of the official repositories (never inside this project), one folder each:
CFSR (Aitical/CFSR), IMDN (Zheng222/IMDN), RFDN (njulj/RFDN), RLFN (bytedance/RLFN), CARN (nmhkahn/CARN-pytorch),
PAN (zhaohengyuan1/PAN), A2N (haoyuc/A2N), SAFMN (sunny2109/SAFMN: its NTIRE 2023 team15 file), BSRN (xiaom233/BSRN:
its rfdnfinalB5 arch, the NTIRE 2022 model) and NTIRE2024_ESR (Amazingren/NTIRE2024_ESR: its team38 file is the SPAN
code of the released re-parameterised weights; hongyuanyu/SPAN's own Conv3XC rebuilds eval_conv from training-time
branches that checkpoint lacks, at every call).
A family whose checkout is absent is listed as "official not available". Both networks get the same pretrained
weights (found through TISR_WEIGHTS) and the same 1x3x128x160 LR input (160 wide, 128 high: the astronaut image,
area-reduced); their outputs must agree to 1e-5 (in [0, 1] units) before they are timed. Ours is timed twice: in the
default (contiguous) layout, where it runs the same operations as the official code, and in the channels_last layout
that `build_model(..., channels_last=True)` / `SRModel.to_channels_last()` gives (its output checked the same way). A model whose weights for --scale are not available offline is run
at the largest scale that is (the table's `x` column).

Method, made for a shared, noisy machine: a fixed number of threads (--threads); --warmup untimed calls of each
network; then rounds of one call each, alternating which goes first (AB BA AB ...) so that a burst of load from other
processes or a cache effect hits both alike. For each network the table shows the MIN and the MEDIAN of its per-call
times. The headline figure is `official/ours`: the MEDIAN over rounds of the paired ratio official_i / ours_i (> 1:
ours is faster). A pair runs back to back, so slow drifts of the machine's load cancel within it, and the median
drops the pairs that a burst hit on one side only; its interquartile range is printed beside it as the noise band.
`min ratio` (official min / ours min) is the best-case comparison, shown as a check on the headline.
With the defaults all 12 models take about 5 minutes on 2 shared cores (at least 10 rounds per comparison).
"""
from __future__ import annotations
import argparse, contextlib, copy, gc, importlib, importlib.util, io, statistics, sys, time, types
from pathlib import Path
from unittest import mock
import torch
from tisr.models.hub import find_weights, get_weights
from tisr.models import build_model, model_spec, unwrap_state_dict

LR_SHAPE = (1, 3, 128, 160)
TOLERANCE = 1e-5


@contextlib.contextmanager
def imports_from(folder: Path, shadowed=('model', 'models', 'block', 'utils', 'basicsr')):
    "Import official modules from `folder`, hiding (then restoring) same-named modules of other checkouts."
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split('.')[0] in shadowed}
    sys.path.insert(0, str(folder))
    try: yield
    finally:
        sys.path.remove(str(folder))
        for k in [k for k in sys.modules if k.split('.')[0] in shadowed]: del sys.modules[k]
        sys.modules.update(saved)


def load_file_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # a package-relative `import a.b as c` inside other loaded files finds it
    spec.loader.exec_module(mod)
    return mod


def basicsr_stub():
    "Stand-ins for `basicsr` and its registry, so one arch file loads without importing all of BasicSR."
    reg = types.ModuleType('basicsr.utils.registry')
    reg.ARCH_REGISTRY = types.SimpleNamespace(register=lambda *a, **k: (lambda c: c))
    mods = {n: types.ModuleType(n) for n in ('basicsr', 'basicsr.utils', 'basicsr.archs')}
    mods['basicsr.utils.registry'] = reg
    mods['basicsr'].utils, mods['basicsr'].archs, mods['basicsr.utils'].registry = mods['basicsr.utils'], mods['basicsr.archs'], reg
    return mock.patch.dict(sys.modules, mods)


def official_cfsr(ext: Path, scale: int):
    with basicsr_stub(), contextlib.redirect_stdout(io.StringIO()):  # it prints a line per merged MLP
        mod = load_file_module(ext/'CFSR'/'basicsr'/'archs'/'cfsr_arch.py', 'official_cfsr_arch')
        return mod.CFSR(in_chans=3, embed_dim=48, depths=(6, 6), dw_size=9, mlp_ratio=2, upscale=scale,
                        img_range=1., upsampler='pixelshuffledirect')


def official_imdn(ext: Path, scale: int):
    with imports_from(ext/'IMDN'): return importlib.import_module('model.architecture').IMDN(upscale=scale)


def official_rfdn(ext: Path, scale: int):
    with imports_from(ext/'RFDN'): return importlib.import_module('RFDN').RFDN(upscale=scale)


def official_rlfn(kind: str):
    def make(ext: Path, scale: int):
        with imports_from(ext/'RLFN'):
            if kind == 'rlfn': return importlib.import_module('model.rlfn').RLFN(feature_channels=52, upscale=scale)
            if kind == 'rlfn-s': return importlib.import_module('model.rlfn_s').RLFN_S(feature_channels=48, upscale=scale)
            return importlib.import_module('model.rlfn_ntire').RLFN_Prune(upscale=scale)
    return make


class WithScale(torch.nn.Module):
    "CARN's multi-scale forward(x, scale) behind forward(x)."
    def __init__(self, net, scale): super().__init__(); self.net, self.scale = net, scale
    def forward(self, x): return self.net(x, self.scale)


def official_carn_m(ext: Path, scale: int):
    with imports_from(ext/'CARN'/'carn'):
        net = importlib.import_module('model.carn_m').Net(scale=scale, multi_scale=True, group=4)
    return WithScale(net, scale)


def official_pan(ext: Path, scale: int):
    with imports_from(ext/'PAN'/'codes'):
        return importlib.import_module('models.archs.PAN_arch').PAN(3, 3, nf=40, unf=24, nb=16, scale=scale)


def official_a2n(ext: Path, scale: int):
    with imports_from(ext/'A2N'/'code'):
        return importlib.import_module('model.aan').AAN(types.SimpleNamespace(scale=[scale]))


def official_safmn(ext: Path, scale: int):
    # team15_SAFMN.py imports einops.rearrange but never calls it, and einops is no dependency of this project
    einops = types.ModuleType('einops'); einops.rearrange = None
    with mock.patch.dict(sys.modules, {'einops': einops}):
        mod = load_file_module(ext/'SAFMN'/'NTIRE2023_ESR'/'models'/'team15_SAFMN.py', 'official_safmn_team15')
    return mod.SAFMN(dim=36, n_blocks=8, ffn_scale=2.0, upscaling_factor=scale)


def official_span(ext: Path, scale: int):
    mod = load_file_module(ext/'NTIRE2024_ESR'/'models'/'team38_SPAN.py', 'official_span_team38')
    # SPAN30.__init__ ends with a CUDA test call, `self.cuda()(torch.randn(...).cuda())`: run it on the CPU instead
    with mock.patch.object(torch.nn.Module, 'cuda', lambda self, *a, **k: self), \
         mock.patch.object(torch.Tensor, 'cuda', lambda self, *a, **k: self), torch.no_grad():
        return mod.SPAN30(3, 3, upscale=scale, feature_channels=28)


def official_bsrn(ext: Path, scale: int):
    archs = ext/'BSRN'/'basicsr'/'archs'
    with basicsr_stub(), contextlib.redirect_stdout(io.StringIO()):  # it prints 'BSConvU'
        for name in ('Blocks', 'Upsamplers'):
            setattr(sys.modules['basicsr.archs'], name, load_file_module(archs/f'{name}.py', f'basicsr.archs.{name}'))
        mod = load_file_module(archs/'rfdnfinalB5_arch.py', 'official_bsrn_rfdnfinalB5')
        return mod.RFDNFINALB5(num_in_ch=3, num_feat=48, num_block=5, num_out_ch=3, upscale=scale, conv='BSConvU')


# registry name -> (checkout folder, builder of the official network)
OFFICIAL = {'cfsr': ('CFSR', official_cfsr), 'imdn': ('IMDN', official_imdn), 'rfdn': ('RFDN', official_rfdn),
            'rlfn': ('RLFN', official_rlfn('rlfn')), 'rlfn-s': ('RLFN', official_rlfn('rlfn-s')),
            'rlfn-ntire': ('RLFN', official_rlfn('rlfn-ntire')), 'carn-m': ('CARN', official_carn_m),
            'pan': ('PAN', official_pan), 'a2n': ('A2N', official_a2n), 'safmn': ('SAFMN', official_safmn),
            'span': ('NTIRE2024_ESR', official_span), 'bsrn': ('BSRN', official_bsrn)}


def available_scale(name: str, wanted: int) -> int|None:
    "`wanted` if its weights are found offline, else the largest scale whose weights are, else None."
    spec = model_spec(name)
    found = [s for s in spec.scales if spec.weights_name(s) and find_weights(spec.weights_name(s)) is not None]
    return wanted if wanted in found else max(found, default=None)


def load_official_weights(net, wname: str, ext_net_name: str) -> str:
    "Load the shared weights file into the official net: strict when it fits, else report what it left out."
    sd = unwrap_state_dict(torch.load(get_weights(wname, download=False), map_location='cpu', weights_only=True))
    target = net.net if isinstance(net, WithScale) else net
    res = target.load_state_dict(sd, strict=False)
    missing = [k for k in res.missing_keys if not k.startswith('mask_') and '.mask_' not in k]
    if missing or res.unexpected_keys:
        return f"{ext_net_name}: missing {missing[:3]} ({len(missing)}), unexpected {res.unexpected_keys[:3]} ({len(res.unexpected_keys)})"
    return ''


def call_seconds(net, x) -> float:
    t = time.perf_counter(); net(x)
    return time.perf_counter() - t


def interleaved_times(fns: list, x, rounds: int, warmup: int, budget_s: float) -> list[list]:
    """Per-call seconds of each of `fns` over rounds that rotate which goes first (AB BA ... for two, ABC BCA CAB ...
    for three); `rounds` 0: as many as fit `budget_s` (at least 10, at most 400)."""
    for _ in range(warmup):
        for f in fns: f(x)
    if rounds <= 0:
        round_s = max(1e-9, sum(call_seconds(f, x) for f in fns))
        rounds = min(400, max(10, int(budget_s / round_s)))
    times = [[] for _ in fns]
    gc.disable()  # a collection inside one timed call would land on one side of a pair only
    try:
        for i in range(rounds):
            for k in range(len(fns)):
                j = (i + k) % len(fns)
                times[j].append(call_seconds(fns[j], x))
    finally: gc.enable()
    return times


def paired_times(ours, official, x, rounds: int, warmup: int, budget_s: float) -> tuple[list, list]:
    "Per-call seconds of both networks over interleaved rounds (AB BA ...); `rounds` 0: as many as fit `budget_s`."
    o_s, f_s = interleaved_times([ours, official], x, rounds, warmup, budget_s)
    return o_s, f_s


def summarize(o_s: list, f_s: list) -> dict:
    ratios = sorted(f / o for o, f in zip(o_s, f_s))
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return dict(rounds=len(o_s), ours_min=1e3 * min(o_s), ours_med=1e3 * statistics.median(o_s),
                off_min=1e3 * min(f_s), off_med=1e3 * statistics.median(f_s),
                ratio=statistics.median(ratios), ratio_q1=q[0], ratio_q3=q[2], min_ratio=min(f_s) / min(o_s))


@torch.inference_mode()
def compare(name: str, ext: Path, scale: int, rounds: int, warmup: int, budget_s: float) -> dict:
    folder, make = OFFICIAL[name]
    spec = model_spec(name)
    ours = build_model(name, scale, channels=3, adapter='native', pretrained=True).net.eval()
    official = make(ext, scale).eval()
    note = load_official_weights(official, spec.weights_name(scale), folder)
    r = spec.input_range
    x = lr_input() * r
    ref = official(x)
    diff = (ours(x) - ref).abs().max().item() / r
    row = dict(model=name, scale=scale, max_abs_diff=diff, note=note)
    if not diff < TOLERANCE: return row
    row.update(summarize(*paired_times(ours, official, x, rounds, warmup, budget_s)))
    # the same network in the channels_last layout (SRModel.to_channels_last), input conversion included in its time
    net_cl = copy.deepcopy(ours).to(memory_format=torch.channels_last)
    ours_cl = lambda t: net_cl(t.contiguous(memory_format=torch.channels_last))
    row['cl_diff'] = (ours_cl(x) - ref).abs().max().item() / r
    if row['cl_diff'] < TOLERANCE:
        cl = summarize(*paired_times(ours_cl, official, x, rounds, warmup, budget_s))
        row.update(cl_med=cl['ours_med'], cl_ratio=cl['ratio'], cl_q1=cl['ratio_q1'], cl_q3=cl['ratio_q3'])
    return row


def lr_input() -> torch.Tensor:
    """The 1x3x128x160 LR input: skimage's astronaut, area-reduced to 160x128, in [0, 1].

    A natural image, not noise: on uniform random noise PAN's attention saturates and a change of memory layout
    moves single output pixels by up to 1.0, while on images every model agrees with itself to ~5e-6."""
    import cv2
    from skimage import data
    img = cv2.resize(data.astronaut(), (LR_SHAPE[3], LR_SHAPE[2]), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(img.astype('float32') / 255).permute(2, 0, 1)[None].contiguous()


HEADER = (f"{'model':<11} {'x':>1} {'max|diff|':>9} {'ours min':>8} {'ours med':>8} {'off min':>8} {'off med':>8} "
          f"{'official/ours':>13} {'[q1, q3]':>12} {'min ratio':>9} {'rounds':>6} | {'cl |diff|':>9} {'cl med':>7} "
          f"{'official/cl':>11} {'[q1, q3]':>12}")


def format_row(r: dict) -> str:
    head = f"{r['model']:<11} {r['scale']:>1} {r['max_abs_diff']:>9.1e}"
    if 'ratio' not in r: return head + '  OUTPUTS DIFFER: not timed' + (f"  ({r['note']})" if r['note'] else '')
    band = f"[{r['ratio_q1']:.2f}, {r['ratio_q3']:.2f}]"
    cl = f" | {r['cl_diff']:>9.1e}" if 'cl_diff' in r else ''
    if 'cl_ratio' in r:
        cl += f" {r['cl_med']:>7.1f} {r['cl_ratio']:>11.2f} {'[%.2f, %.2f]' % (r['cl_q1'], r['cl_q3']):>12}"
    elif cl: cl += '  channels_last output differs: not timed'
    return (head + f" {r['ours_min']:>8.1f} {r['ours_med']:>8.1f} {r['off_min']:>8.1f} {r['off_med']:>8.1f} "
            f"{r['ratio']:>13.2f} {band:>12} {r['min_ratio']:>9.2f} {r['rounds']:>6}" + cl + (f"  ({r['note']})" if r['note'] else ''))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('ext_dir', type=Path, help='folder holding the official checkouts (CFSR/, IMDN/, ...)')
    p.add_argument('--scale', type=int, default=4)
    p.add_argument('--threads', type=int, default=1, help='torch intra-op threads, fixed for both networks')
    p.add_argument('--warmup', type=int, default=2, help='untimed calls of each network first')
    p.add_argument('--rounds', type=int, default=0, help='timed AB pairs per model; 0: as many as fit --budget')
    p.add_argument('--budget', type=float, default=6., help='seconds of timed calls per model when --rounds is 0')
    p.add_argument('--families', nargs='*', default=list(OFFICIAL), help=f'valid: {", ".join(OFFICIAL)}')
    a = p.parse_args(argv)
    bad = [f for f in a.families if f not in OFFICIAL]
    if bad: p.error(f"unknown families {bad}; valid: {', '.join(OFFICIAL)}")
    torch.set_num_threads(a.threads)
    rounds = f'{a.rounds} rounds' if a.rounds > 0 else f'rounds filling {a.budget:g} s'
    print(f"LR input {LR_SHAPE[3]}x{LR_SHAPE[2]}, x{a.scale}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, "
          f"{a.warmup} warm-up calls, {rounds} per model; times in ms")
    print(HEADER)
    for name in a.families:
        folder = OFFICIAL[name][0]
        if not (a.ext_dir/folder).is_dir(): print(f"{name:<11} official not available: no checkout {a.ext_dir/folder}"); continue
        if (scale := available_scale(name, a.scale)) is None: print(f"{name:<11} not run: no pretrained weights offline"); continue
        try: r = compare(name, a.ext_dir, scale, a.rounds, a.warmup, a.budget)
        except Exception as e: print(f"{name:<11} official not available: {type(e).__name__}: {e}"); continue
        print(format_row(r), flush=True)


if __name__ == '__main__':
    main()
