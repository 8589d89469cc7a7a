"""CPU time of one CFSR training step, ours against the official CFSR training code, and the data loader's throughput.

usage: python benchmarks/train_speed.py EXT_DIR [--threads 1] [--batch 16] [--patch 128] [--budget 60] [--rounds N]
       [--warmup 1] [--parts-rounds 2] [--profile-steps 2] [--loader-batches 24] [--workers 0 1 2]
       [--sides ours1 ours3 official3 official1] [--out benchmarks/results/train_speed_cpu.md]

EXT_DIR/CFSR is a checkout of Aitical/CFSR (never inside this project); it ships the BasicSR training code the
network was trained with (basicsr/models/sr_model.py and base_model.py equal XPixelGroup/BasicSR 8d56e3a's). Without
it the official rows say "official not available" and ours and the loader are still timed.

The step, at v1's shape (`resolve_recipe('v1')`: batch 16, HR patch 128 = LR 32 at x4, L1, AdamW lr 1e-5, weight
decay 1e-5, betas (0.9, 0.999), cosine schedule) with v2's EMA decay 0.999 so both sides keep an EMA copy:
- ours: `tisr.train.engine._Trainer.train_step`, the step `fit` runs (forward under the recipe's loss, non-finite
  check, zero_grad, backward, AdamW step, LR schedule step, EMA update), on `build_model('cfsr', 4,
  pretrained=False, channels=C)`: `ours1` the 1-channel network our runs train (RGB CFSR folded to grey),
  `ours3` the 3-channel one.
- official: BasicSR's `SRModel` of the checkout, built from an options dict as a training YAML would give it
  (network_g = options/test_CFSR_SRx4.yml's minus `small_kernel`, which the released CFSR class does not take;
  train: ema_decay 0.999, optim_g AdamW with our numbers, CosineAnnealingRestartLR over the same run length,
  pixel_opt L1Loss weight 1, mean), driven as its basicsr/train.py does per iteration: `update_learning_rate`,
  `feed_data`, `optimize_parameters` (zero_grad, net_g forward, L1Loss, backward, optimizer step,
  `reduce_loss_dict`, `model_ema(0.999)`). `official3` is the released 3-channel network, `official1` the same
  class with in_chans=1. The checkout's basicsr/ lacks archs/__init__.py and archs/vgg_arch.py and its package
  __init__ imports every model, dataset and op, so `basicsr`, `basicsr.models` and `basicsr.archs` are bare
  packages over the checkout's folders (every module used loads unchanged from it), `build_network` is upstream
  BasicSR's (registry lookup, basicsr/archs/__init__.py) and VGGFeatureExtractor (perceptual loss only) a placeholder.
All sides are random-initialised and get the same uniform-random batch (the 1-channel sides its first channel).
Before timing, ours3 is given official3's initial weights and both take one step on the batch: loss, gradients,
updated weights and EMA must agree (printed), so the two steps compute the same thing.

Method, as in zoo_speed.py (made for a shared, noisy machine): --threads fixed; --warmup untimed steps of each
side; then rounds of one step of each side, rotating which goes first (ABCD BCDA CDAB ...), so that a burst of load
or a cache effect hits all alike. Per side the MIN and MEDIAN step time; per pair (ours1 vs official3, ours3 vs
official3, ours1 vs official1) `official/ours` is the MEDIAN over rounds of the paired ratio official_i / ours_i, both
steps from round i (> 1: ours is faster),
its interquartile range beside it as the noise band, and min ratio (official min / ours min) as a check.
Where the time goes: --parts-rounds more rotated rounds with timers on each side's network (forward hooks), loss,
`Tensor.backward`, optimizer step (step hooks) and EMA update; `rest` is the step's time outside them (LR schedule,
zero_grad, loss checks and logging); medians per part. Then the torch profiler over --profile-steps steps of ours1:
the ops with the most self CPU time.
Data loader: our `PairedDataset` (v1: area LR, no augmentation, the patch above) on the embedded synthetic default
data's train split (`default_data_specs`, `build_manifest`), loaded as `fit` loads it (`epoch_batches`, the
engine's `_loader`, one DataLoader per epoch) with 0, 1, 2 workers: the first batch's latency (the workers' start,
paid once per epoch) and batches/s over the next --loader-batches, against the steps/s ours1 runs at. With 0 workers
loading runs in series with the step (its share of the wall time is shown); with workers it overlaps, and can starve
the step only if it delivers fewer batches/s than the step consumes.
With the defaults the whole run takes about 4 minutes on 2 shared cores (at least 10 rounds).
"""
from __future__ import annotations
import argparse, contextlib, copy, dataclasses, importlib, io, statistics, sys, tempfile, time, types
from pathlib import Path
from unittest import mock
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_speed import imports_from, interleaved_times, summarize  # noqa: E402
from tisr.models import build_model  # noqa: E402
from tisr.train.engine import _Trainer, _loader, epoch_batches  # noqa: E402
from tisr.train.recipes import resolve_recipe, train_config  # noqa: E402

SIDES = ('ours1', 'ours3', 'official3', 'official1')
PAIRS = (('ours1', 'official3'), ('ours3', 'official3'), ('ours1', 'official1'))
LABEL = {'ours1': 'ours 1ch (RGB folded)', 'ours3': 'ours 3ch', 'official3': 'official 3ch',
         'official1': 'official 1ch (in_chans=1)'}
PARTS = ('forward', 'loss', 'backward', 'optimizer', 'ema', 'rest')
EMA_DECAY = 0.999
STEPS_PER_EPOCH = 100  # both schedules span epochs x this many steps (a step's time does not depend on it)


def official_sr_model(ext: Path, opt: dict):
    "BasicSR's SRModel from the CFSR checkout, built from `opt` (see the docstring for the import shims)."
    root = ext/'CFSR'/'basicsr'
    def package(name, folder):
        m = types.ModuleType(name); m.__path__ = [str(folder)]
        return m
    with imports_from(ext/'CFSR', shadowed=('basicsr',)):
        archs = package('basicsr.archs', root/'archs')
        vgg = types.ModuleType('basicsr.archs.vgg_arch'); vgg.VGGFeatureExtractor = None
        sys.modules.update({'basicsr': package('basicsr', root), 'basicsr.models': package('basicsr.models', root/'models'),
                            'basicsr.archs': archs, 'basicsr.archs.vgg_arch': vgg})
        from basicsr.utils import get_root_logger
        from basicsr.utils.registry import ARCH_REGISTRY

        def build_network(opt):  # upstream BasicSR's basicsr/archs/__init__.py
            opt = copy.deepcopy(opt)
            network_type = opt.pop('type')
            net = ARCH_REGISTRY.get(network_type)(**opt)
            get_root_logger().info(f'Network [{net.__class__.__name__}] is created.')
            return net
        archs.build_network = build_network
        with contextlib.redirect_stdout(io.StringIO()):  # cfsr_arch prints a line per merged MLP
            importlib.import_module('basicsr.archs.cfsr_arch')
            return importlib.import_module('basicsr.models.sr_model').SRModel(copy.deepcopy(opt))


def official_options(channels: int, scale: int, cfg, total_iters: int) -> dict:
    "The options a BasicSR training YAML for CFSR would give SRModel, with our recipe's numbers."
    return dict(num_gpu=0, is_train=True, dist=False, scale=scale,
                network_g=dict(type='CFSR', upscale=scale, in_chans=channels, dw_size=9, img_range=1., depths=[6, 6],
                               embed_dim=48, mlp_ratio=2, upsampler='pixelshuffledirect'),
                path=dict(pretrain_network_g=None, strict_load_g=True, resume_state=None),
                train=dict(ema_decay=cfg.ema,
                           optim_g=dict(type={'adamw': 'AdamW', 'adam': 'Adam'}[cfg.optimizer], lr=cfg.lr,
                                        weight_decay=cfg.weight_decay, betas=list(cfg.betas)),
                           scheduler=dict(type='CosineAnnealingRestartLR', periods=[total_iters], restart_weights=[1],
                                          eta_min=0),
                           pixel_opt=dict(type='L1Loss', loss_weight=1.0, reduction='mean')))


class Ours:
    "Our training step (`_Trainer.train_step`, what `fit` runs) on a C-channel CFSR and a fixed batch."
    def __init__(self, channels: int, cfg, scale: int, lr: torch.Tensor, hr: torch.Tensor, init: dict|None = None):
        model = build_model('cfsr', scale, pretrained=False, channels=channels, adapter='fold' if channels == 1 else 'native')
        if init is not None: model.net.load_state_dict(init)
        run_dir = Path(tempfile.gettempdir())/'tisr_train_speed'   # never written: no checkpoint is saved
        self.T = _Trainer(model, range(cfg.batch_size * STEPS_PER_EPOCH), {}, cfg, scale, run_dir, 'cpu', None, None)
        self.batch, self.loss_value = {'lr': lr, 'hr': hr}, None
        self.net, self.loss, self.opt = self.T.model, self.T.crit, self.T.opt
        self.ema_owner, self.ema_attr = self.T.ema, 'update'
    def step(self, _=None): self.loss_value = self.T.train_step(self.batch)
    def params(self, ema=False): return dict((self.T.ema.model if ema else self.T.model).net.named_parameters())


class Official:
    "BasicSR's iteration (update_learning_rate, feed_data, optimize_parameters) on the official CFSR and the batch."
    def __init__(self, ext: Path, channels: int, cfg, scale: int, total_iters: int, lr: torch.Tensor, hr: torch.Tensor):
        self.m = official_sr_model(ext, official_options(channels, scale, cfg, total_iters))
        self.data, self.iter = {'lq': lr, 'gt': hr}, 0
        self.net, self.loss, self.opt = self.m.net_g, self.m.cri_pix, self.m.optimizer_g
        self.ema_owner, self.ema_attr = self.m, 'model_ema'
    def step(self, _=None):
        self.iter += 1
        self.m.update_learning_rate(self.iter, warmup_iter=-1)
        self.m.feed_data(self.data)
        self.m.optimize_parameters(self.iter)
    @property
    def loss_value(self): return self.m.log_dict['l_pix']
    def params(self, ema=False): return dict((self.m.net_g_ema if ema else self.m.net_g).named_parameters())


def n_params(side) -> int: return sum(p.numel() for p in side.net.parameters())


def step_check(ours: Ours, official: Official) -> dict:
    "One step of both from the same weights on the same batch: how far apart loss, gradients, weights and EMA end."
    ours.step(); official.step()
    o, f = ours.params(), official.params()
    if set(o) != set(f): return dict(ok=False, note=f'parameter names differ: {sorted(set(o) ^ set(f))[:4]}')
    oe, fe = ours.params(ema=True), official.params(ema=True)
    diff = lambda a, b: max((a[k] - b[k]).abs().max().item() for k in b)
    r = dict(loss_diff=abs(ours.loss_value - official.loss_value), weight_diff=diff(o, f), ema_diff=diff(oe, fe),
             grad_rel=diff({k: v.grad for k, v in o.items()}, {k: v.grad for k, v in f.items()})
                      / max(v.grad.abs().max().item() for v in f.values()))
    r['ok'] = r['loss_diff'] < 1e-5 and r['grad_rel'] < 1e-3 and r['weight_diff'] < 1e-6 and r['ema_diff'] < 1e-6
    return r


class PartTimer:
    "Seconds spent in each part of a step, from hooks on each side's network, loss, optimizer, EMA and Tensor.backward."
    def __init__(self): self.now: dict = {}
    def start(self, part): self.now['_' + part] = time.perf_counter()
    def stop(self, part): self.now[part] = self.now.get(part, 0.) + time.perf_counter() - self.now.pop('_' + part)

    @contextlib.contextmanager
    def on(self, sides: list):
        hooks = []
        for s in sides:
            for mod, part in ((s.net, 'forward'), (s.loss, 'loss')):
                hooks += [mod.register_forward_pre_hook(lambda *a, p=part: self.start(p)),
                          mod.register_forward_hook(lambda *a, p=part: self.stop(p))]
            hooks += [s.opt.register_step_pre_hook(lambda *a: self.start('optimizer')),
                      s.opt.register_step_post_hook(lambda *a: self.stop('optimizer'))]
            ema = getattr(s.ema_owner, s.ema_attr)
            def timed_ema(*a, _ema=ema, **k):
                self.start('ema'); _ema(*a, **k); self.stop('ema')
            setattr(s.ema_owner, s.ema_attr, timed_ema)
        backward = torch.Tensor.backward
        def timed_backward(t, *a, **k):
            self.start('backward'); backward(t, *a, **k); self.stop('backward')
        try:
            with mock.patch.object(torch.Tensor, 'backward', timed_backward): yield
        finally:
            for h in hooks: h.remove()
            for s in sides: delattr(s.ema_owner, s.ema_attr)  # back to the class's method

    def timed(self, side, out: list):
        "`side.step`, recording its parts (and the whole step as `total`) into `out`."
        def run(_=None):
            self.now = {}
            t = time.perf_counter(); side.step(); total = time.perf_counter() - t
            parts = {p: self.now.get(p, 0.) for p in PARTS[:-1]}
            out.append(dict(parts, rest=total - sum(parts.values()), total=total))
        return run


# where the weight is among an op's inputs (the input is the argument before it)
WEIGHT_ARG = {'aten::mkldnn_convolution': 1, 'aten::convolution': 1, 'aten::_convolution': 1, 'aten::conv2d': 1,
              'aten::_slow_conv2d_forward': 1, 'aten::convolution_backward': 2, 'aten::_slow_conv2d_backward': 2}


def shape_note(op: str, shapes) -> str:
    "The tensor shapes an op got, led by the kind of convolution its weight makes it."
    i, kind = WEIGHT_ARG.get(op), ''
    if i is not None and i < len(shapes) and len(shapes[i]) == 4 and len(shapes[i - 1]) == 4:
        o, c, kh, kw = shapes[i]
        kind = f'depthwise {kh}x{kw}: ' if c == 1 and shapes[i - 1][1] == o > 1 else f'{kh}x{kw} conv: '
    return kind + ' '.join(str(list(s)) for s in shapes if s)


def top_ops(step, steps: int, n: int = 8) -> tuple[list, float]:
    "The `n` (op, input shapes) with the most self CPU time over `steps` steps, per step; and the profiled ms/step."
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
        for _ in range(steps): step()
    ev = p.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in ev) / 1e3 / steps
    rows = sorted(ev, key=lambda e: -e.self_cpu_time_total)[:n]
    return [dict(op=e.key, shapes=shape_note(e.key, e.input_shapes), calls=e.count // steps,
                 ms=e.self_cpu_time_total / 1e3 / steps) for e in rows], total


def loader_rates(cfg, recipe: dict, patch: int, scale: int, workers: list, n_batches: int) -> list[dict]:
    "First-batch latency and batches/s of `fit`'s loading of the synthetic default train split, per worker count."
    from tisr.data import build_manifest, PairedDataset
    from tisr.run.finetune import default_data_specs
    manifest = build_manifest(default_data_specs(), seed=cfg.seed)
    ds = PairedDataset(manifest.split('train'), scale=scale, patch=patch, degradation=recipe['degradation'],
                       augment=recipe['augment'], train=True, seed=cfg.seed)
    rows = []
    for nw in workers:
        c = dataclasses.replace(cfg, num_workers=nw)
        batches = epoch_batches(len(ds), cfg.batch_size, n_batches + 1, cfg.seed, 0)
        t = time.perf_counter()
        it = iter(_loader(ds, batches, c, 0))
        next(it)
        first = time.perf_counter() - t
        t = time.perf_counter()
        k = sum(1 for _ in it)
        rows.append(dict(workers=nw, first_s=first, rate=k / (time.perf_counter() - t), items=len(ds)))
        del it
    return rows


def fmt_int(n) -> str: return f'{n:,}'


def report(a, cfg, patch, sides, counts, check, times, parts, ops, ops_total, loader, missing) -> str:
    L = [f"# Training step: ours vs the official CFSR training code (CPU)", '',
         f"`python benchmarks/train_speed.py {a.ext_dir}` -- CFSR x{a.scale}, batch {cfg.batch_size}, HR patch {patch} "
         f"(LR {patch // a.scale}), L1, {cfg.optimizer} lr {cfg.lr:g} wd {cfg.weight_decay:g}, EMA {cfg.ema}, "
         f"{torch.get_num_threads()} thread(s), torch {torch.__version__}; times in ms per step.", '']
    if missing: L += [f"official not available: {missing}", '']
    L += ['Parameters: ' + ', '.join(f"{LABEL[s]} {fmt_int(counts[s])}" for s in sides), '']
    if check is not None and 'loss_diff' not in check: L += [f"Step check failed: {check['note']}", '']
    elif check is not None:
        L += ["Step check (ours 3ch given official 3ch's initial weights, one step on the same batch): "
              f"loss |diff| {check['loss_diff']:.1e}, gradients max |diff| / max |grad| {check['grad_rel']:.1e}, "
              f"weights after the step max |diff| {check['weight_diff']:.1e}, EMA max |diff| {check['ema_diff']:.1e}: "
              + ('the same step.' if check['ok'] else 'DIFFERENT.'), '']
    L += ['| side | min | median | rounds |', '|---|---:|---:|---:|']
    for s in sides:
        L.append(f"| {LABEL[s]} | {1e3 * min(times[s]):.0f} | {1e3 * statistics.median(times[s]):.0f} | {len(times[s])} |")
    pairs = [(o, f) for o, f in PAIRS if o in sides and f in sides]
    if pairs:
        L += ['', '| pair | official/ours (median of paired ratios) | [q1, q3] | min ratio |', '|---|---:|---:|---:|']
        for o, f in pairs:
            r = summarize(times[o], times[f])
            L.append(f"| {LABEL[o]} vs {LABEL[f]} | **{r['ratio']:.2f}** | [{r['ratio_q1']:.2f}, {r['ratio_q3']:.2f}] | {r['min_ratio']:.2f} |")
    L += ['', f"Where the time goes (median ms over {a.parts_rounds} rotated rounds, timers on each part; % of the median step):", '',
          '| part | ' + ' | '.join(LABEL[s] for s in sides) + ' |', '|---|' + '---:|' * len(sides)]
    med = {s: {p: statistics.median(r[p] for r in parts[s]) for p in (*PARTS, 'total')} for s in sides}
    for p in (*PARTS, 'total'):
        cells = [f"{1e3 * med[s][p]:.0f}" + ('' if p == 'total' else f" ({100 * med[s][p] / med[s]['total']:.0f}%)") for s in sides]
        L.append(f"| {p} | " + ' | '.join(cells) + ' |')
    if ops:
        L += ['', f"Top ops of ours 1ch by self CPU time (torch profiler, {a.profile_steps} steps; {ops_total:.0f} ms/step profiled):", '',
              '| op | what (input shapes) | calls/step | ms/step | % |', '|---|---|---:|---:|---:|']
    for o in ops:
        L.append(f"| {o['op']} | {o['shapes']} | {o['calls']} | {o['ms']:.0f} | {100 * o['ms'] / ops_total:.0f}% |")
    step_s = statistics.median(times['ours1']) if 'ours1' in times else None
    L += ['', f"Data loader (`PairedDataset`, synthetic default train split of {loader[0]['items']} images, "
          f"{cfg.batch_size} x {patch} px patches, as `fit` loads it){'' if step_s is None else f'; ours 1ch steps at {1 / step_s:.2f} steps/s'}:", '',
          '| num_workers | first batch (s) | batches/s | ms/batch | loader / step rate | loading share of wall time |',
          '|---:|---:|---:|---:|---:|---:|']
    for r in loader:
        load_s = 1 / r['rate']
        share = 'overlapped' if r['workers'] else f"in series: {100 * load_s / (load_s + step_s):.1f}%" if step_s else 'n/a'
        L.append(f"| {r['workers']} | {r['first_s']:.2f} | {r['rate']:.1f} | {1e3 * load_s:.1f} | "
                 f"{f'{step_s / load_s:.0f}x' if step_s else 'n/a'} | {share} |")
    return '\n'.join(L) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('ext_dir', type=Path, help='folder holding the official checkouts (CFSR/)')
    p.add_argument('--scale', type=int, default=4)
    p.add_argument('--batch', type=int, default=None, help="default: the v1 recipe's (16)")
    p.add_argument('--patch', type=int, default=None, help="HR patch; default: the v1 recipe's (128)")
    p.add_argument('--threads', type=int, default=1, help='torch intra-op threads, fixed for all sides')
    p.add_argument('--warmup', type=int, default=1, help='untimed steps of each side first')
    p.add_argument('--rounds', type=int, default=0, help='timed rounds; 0: as many as fit --budget (at least 10)')
    p.add_argument('--budget', type=float, default=60., help='seconds of timed steps when --rounds is 0')
    p.add_argument('--parts-rounds', type=int, default=2, help='rounds timing the parts of each step')
    p.add_argument('--profile-steps', type=int, default=2, help='steps of ours 1ch under the profiler (0: none)')
    p.add_argument('--loader-batches', type=int, default=24, help='batches timed per worker count')
    p.add_argument('--workers', type=int, nargs='*', default=[0, 1, 2])
    p.add_argument('--sides', nargs='*', default=list(SIDES), choices=SIDES)
    p.add_argument('--out', type=Path, default=None, help='also write the markdown report here')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    recipe = resolve_recipe('v1', ema=EMA_DECAY, **({'batch_size': a.batch} if a.batch else {}))
    cfg, patch = train_config(recipe), a.patch or recipe['patch']
    if patch % a.scale: p.error(f'--patch {patch} is not a multiple of --scale {a.scale}')
    g = torch.Generator().manual_seed(0)
    lr3 = torch.rand(cfg.batch_size, 3, patch // a.scale, patch // a.scale, generator=g)
    hr3 = torch.rand(cfg.batch_size, 3, patch, patch, generator=g)
    lr1, hr1 = lr3[:, :1].contiguous(), hr3[:, :1].contiguous()
    log = lambda *m: print(*m, file=sys.stderr, flush=True)

    missing, built = '', {}
    want_official = [s for s in a.sides if s.startswith('official')]
    if want_official and not (a.ext_dir/'CFSR').is_dir(): missing = f'no checkout {a.ext_dir/"CFSR"}'
    if 'ours1' in a.sides: built['ours1'] = Ours(1, cfg, a.scale, lr1, hr1)
    for s in want_official if not missing else []:
        c = int(s[-1])
        try: built[s] = Official(a.ext_dir, c, cfg, a.scale, cfg.epochs * STEPS_PER_EPOCH, *((lr3, hr3) if c == 3 else (lr1, hr1)))
        except Exception as e: missing = f'{type(e).__name__}: {e}'; break
    if missing:
        for s in want_official: built.pop(s, None)
        log(f"official not available: {missing}")
    check = None
    if 'ours3' in a.sides:
        init = built['official3'].m.net_g.state_dict() if 'official3' in built else None
        built['ours3'] = Ours(3, cfg, a.scale, lr3, hr3, init=init)
        if init is not None:
            check = step_check(built['ours3'], built['official3'])
            log('step check:', check)
    sides = [s for s in SIDES if s in built and s in a.sides]
    counts = {s: n_params(built[s]) for s in sides}
    log('parameters:', counts)

    log(f'timing {", ".join(sides)} ...')
    ts = interleaved_times([built[s].step for s in sides], None, a.rounds, a.warmup, a.budget)
    times = dict(zip(sides, ts))
    for s in sides: log(f'  {s}: median {1e3 * statistics.median(times[s]):.0f} ms over {len(times[s])} rounds')
    log('timing the parts ...')
    timer, parts = PartTimer(), {s: [] for s in sides}
    with timer.on([built[s] for s in sides]):
        interleaved_times([timer.timed(built[s], parts[s]) for s in sides], None, a.parts_rounds, 0, 0.)
    ops, ops_total = [], float('nan')
    if a.profile_steps and 'ours1' in built:
        log('profiling ours 1ch ...')
        ops, ops_total = top_ops(built['ours1'].step, a.profile_steps)
    log('timing the data loader ...')
    loader = loader_rates(cfg, recipe, patch, a.scale, a.workers, a.loader_batches)
    text = report(a, cfg, patch, sides, counts, check, times, parts, ops, ops_total, loader, missing)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)


if __name__ == '__main__':
    main()
