"""CPU inference time of each zoo model against its official implementation, at matching output.

usage: python benchmarks/zoo_speed.py EXT_DIR [--repeats 5] [--threads 1] [--families cfsr imdn ...]

EXT_DIR holds checkouts of the official repositories (never inside this project), one folder each:
CFSR (Aitical/CFSR), IMDN (Zheng222/IMDN), RFDN (njulj/RFDN), RLFN (bytedance/RLFN), CARN (nmhkahn/CARN-pytorch).
A family whose checkout is absent is skipped. Both networks get the same pretrained weights (found through
TISR_WEIGHTS) and the same 1x3x128x160 LR input (160 wide, 128 high); their outputs must agree to 1e-5 (in [0, 1]
units) before they are timed. Prints official_ms / ours_ms per model (> 1: ours is faster).
"""
from __future__ import annotations
import argparse, contextlib, importlib, io, importlib.util, statistics, sys, time, types
from pathlib import Path
import torch
from tisr.hub import get_weights
from tisr.models import build_model, model_spec, unwrap_state_dict

LR_SHAPE = (1, 3, 128, 160)
TOLERANCE = 1e-5


@contextlib.contextmanager
def imports_from(folder: Path, shadowed=('model', 'block', 'utils')):
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
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def official_cfsr(ext: Path, scale: int):
    # cfsr_arch.py only needs BasicSR's registry decorator; a stand-in avoids importing all of BasicSR
    reg = types.ModuleType('basicsr.utils.registry')
    reg.ARCH_REGISTRY = types.SimpleNamespace(register=lambda *a, **k: (lambda c: c))
    for name in ('basicsr', 'basicsr.utils'): sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules['basicsr.utils.registry'] = reg
    mod = load_file_module(ext/'CFSR'/'basicsr'/'archs'/'cfsr_arch.py', 'official_cfsr_arch')
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per merged MLP
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


# registry name -> (checkout folder, builder of the official network)
OFFICIAL = {'cfsr': ('CFSR', official_cfsr), 'imdn': ('IMDN', official_imdn), 'rfdn': ('RFDN', official_rfdn),
            'rlfn': ('RLFN', official_rlfn('rlfn')), 'rlfn-s': ('RLFN', official_rlfn('rlfn-s')),
            'rlfn-ntire': ('RLFN', official_rlfn('rlfn-ntire')), 'carn-m': ('CARN', official_carn_m)}


def load_official_weights(net, wname: str, ext_net_name: str) -> str:
    "Load the shared weights file into the official net: strict when it fits, else report what it left out."
    sd = unwrap_state_dict(torch.load(get_weights(wname, download=False), map_location='cpu', weights_only=True))
    target = net.net if isinstance(net, WithScale) else net
    res = target.load_state_dict(sd, strict=False)
    missing = [k for k in res.missing_keys if not k.startswith('mask_') and '.mask_' not in k]
    if missing or res.unexpected_keys:
        return f"{ext_net_name}: missing {missing[:3]} ({len(missing)}), unexpected {res.unexpected_keys[:3]} ({len(res.unexpected_keys)})"
    return ''


def median_ms(net, x, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); net(x); times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


@torch.inference_mode()
def compare(name: str, ext: Path, scale: int, repeats: int) -> dict:
    folder, make = OFFICIAL[name]
    spec = model_spec(name)
    ours = build_model(name, scale, channels=3, adapter='native', pretrained=True).net.eval()
    official = make(ext, scale).eval()
    note = load_official_weights(official, spec.weights_name(scale), folder)
    r = spec.input_range
    x = torch.rand(LR_SHAPE, generator=torch.Generator().manual_seed(0)) * r
    diff = (ours(x) - official(x)).abs().max().item() / r
    row = dict(model=name, scale=scale, max_abs_diff=diff, note=note)
    if diff >= TOLERANCE: return dict(row, ours_ms=float('nan'), official_ms=float('nan'), ratio=float('nan'))
    ours(x); official(x)  # warm-up
    o_ms, f_ms = [], []
    for _ in range(repeats):  # alternate, so load from other processes hits both alike
        o_ms.append(median_ms(ours, x, 1)); f_ms.append(median_ms(official, x, 1))
    o, f = statistics.median(o_ms), statistics.median(f_ms)
    return dict(row, ours_ms=o, official_ms=f, ratio=f / o)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('ext_dir', type=Path, help='folder holding the official checkouts (CFSR/, IMDN/, ...)')
    p.add_argument('--scale', type=int, default=4)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--families', nargs='*', default=list(OFFICIAL), help=f'valid: {", ".join(OFFICIAL)}')
    a = p.parse_args(argv)
    bad = [f for f in a.families if f not in OFFICIAL]
    if bad: p.error(f"unknown families {bad}; valid: {', '.join(OFFICIAL)}")
    torch.set_num_threads(a.threads)
    print(f"LR input {LR_SHAPE[3]}x{LR_SHAPE[2]}, x{a.scale}, {a.threads} thread(s), median of {a.repeats}")
    print(f"{'model':<11} {'max|diff|':>10} {'ours ms':>9} {'official ms':>12} {'official/ours':>14}")
    for name in a.families:
        folder = OFFICIAL[name][0]
        if not (a.ext_dir/folder).is_dir(): print(f"{name:<11} skipped: no official checkout {a.ext_dir/folder}"); continue
        try: r = compare(name, a.ext_dir, a.scale, a.repeats)
        except Exception as e: print(f"{name:<11} skipped: {type(e).__name__}: {e}"); continue
        print(f"{name:<11} {r['max_abs_diff']:>10.2e} {r['ours_ms']:>9.1f} {r['official_ms']:>12.1f} {r['ratio']:>14.2f}"
              + (f"  ({r['note']})" if r['note'] else '') + ('' if r['max_abs_diff'] < TOLERANCE else '  OUTPUTS DIFFER: not timed'))


if __name__ == '__main__':
    main()
