"""The prepared GPU check: CUDA tests, the main job at the published schedule shape, training throughput, zoo
inference speed; one table at the end. `--dry-run` runs every step in a tiny form on the CPU (CI keeps it working).

    python benchmarks/device_check.py [--dry-run] [--out DIR]
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tisr.models import build_model, MODELS, model_info, is_guided  # noqa: E402
from tisr.train import TrainConfig, EMA, make_optimizer, model_aux_loss  # noqa: E402
from tisr.losses import WeightedLoss                               # noqa: E402


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def cuda_tests(dry:bool) -> dict:
    "The CUDA-marked tests (skipped, with the reason, without a GPU)."
    t = time.time()
    p = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rs', '-m', 'cuda', str(ROOT/'tests'/'test_cuda.py'),
                        str(ROOT/'tests'/'test_upscale.py')],
                       capture_output=True, text=True, cwd=ROOT)
    tail = [l for l in p.stdout.splitlines() if l.strip()][-1] if p.stdout.strip() else p.stderr[-300:]
    print(p.stdout[-3000:])
    return dict(step='cuda tests', result=tail, seconds=round(time.time() - t, 1), ok=p.returncode in (0, 5) if dry else p.returncode == 0)


def main_job(dry:bool, out:Path) -> dict:
    "The main job (finetune v2 on the embedded default) through the CLI: the published schedule shape, few epochs."
    t = time.time()
    args = ['--recipe', 'v2', '--out-root', str(out), '--run', 'device-main', '--progress', 'false', '--overwrite', 'true']
    args += (['--quick', 'true', '--set', 'epochs=1', '--set', 'steps_per_epoch=2', '--max-test', '2', '--max-val', '2',
              '--eval-size', '64', '--device', 'cpu'] if dry else ['--quick', 'false', '--set', 'epochs=3', '--set', 'warmup_epochs=1'])   # v2 warms up 5 epochs: 1 of 3 here
    p = subprocess.run([sys.executable, '-m', 'tisr.cli', *args], capture_output=True, text=True, cwd=ROOT)
    print(p.stdout[-2500:], p.stderr[-2500:])
    cfg = out/'finetune'/'device-main'/'config.json'
    timings = json.loads(cfg.read_text())['timings'] if cfg.exists() else {}
    return dict(step='main job v2 ' + ('(dry run)' if dry else '(quick False, 3 epochs, warmup 1)'), ok=p.returncode == 0,
                result=f"train {timings.get('train_s', 'n/a')} s, total {timings.get('total_s', 'n/a')} s",
                seconds=round(time.time() - t, 1))


def train_throughput(name:str, recipe:str, device, dry:bool, scale:int=4, batch:int=16, patch:int|None=None, **kw) -> dict:
    "Patches per second of one training step (forward, backward, AdamW, EMA for v2) at the recipe's patch and batch."
    patch, ema = (patch or 128, None) if recipe != 'v2' else (patch or 192, 0.999)
    if dry: batch, patch = 2, 32 if scale == 4 else 64
    if dry and name == 'drln': kw = dict(chs=16)
    model = build_model(name, scale, pretrained=False, channels=1, **kw).to(device).train()
    cfg = TrainConfig(lr=1e-5, loss={'l1': 1.0}, ema=ema)
    opt, crit = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg), WeightedLoss(cfg.loss, device)
    ema_copy = EMA(model, ema) if ema else None
    lr = torch.rand(batch, 1, patch // scale, patch // scale, device=device)
    hr = torch.rand(batch, 1, patch, patch, device=device)
    # a guided model (CoReFusion, guided-concat) also gets its RGB guide at HR size
    guide = {'guide': torch.rand(batch, 3, patch, patch, device=device)} if is_guided(model) else {}
    rows = {}
    for amp in (None, 'bf16'):
        steps = 2 if dry else 20
        for i in range(3 + steps):
            if i == 3:
                sync(device)
                t = time.time()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == 'bf16'):
                loss = crit(model(lr, **guide).float(), hr) + model_aux_loss(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema_copy: ema_copy.update(model)
        sync(device)
        rows[amp or 'fp32'] = batch * steps / (time.time() - t)
    return dict(step=f'train {name} x{scale} {recipe} {patch}px b{batch}', ok=True,
                result=f"{rows['fp32']:.1f} patches/s fp32, {rows['bf16']:.1f} bf16", seconds=None)


@torch.inference_mode()
def zoo_speed(device, dry:bool) -> list[dict]:
    "Milliseconds per 640x512 output frame (160x128 LR, x4) of every registered x4 network, fp32 and bf16 channels_last."
    h, w = (128, 160) if not dry else (16, 20)
    names = sorted(n for n, s in MODELS.items() if 4 in s.scales and n not in ('bicubic',))
    if dry: names = ['cfsr', 'span']
    out = []
    for name in names:
        try: m = build_model(name, 4, pretrained=False, channels=1).to(device).eval()
        except Exception as e:
            out.append(dict(step=f'zoo {name}', ok=False, result=f'{type(e).__name__}: {e}'[:80], seconds=None))
            continue
        x = torch.rand(1, 1, h, w, device=device)
        res = {}
        for mode in ('fp32', 'bf16+cl'):
            mm = m.to_channels_last() if mode != 'fp32' else m
            reps = 2 if dry else 20
            for i in range(3 + reps):
                if i == 3:
                    sync(device)
                    t = time.time()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode != 'fp32'):
                    mm(x)
            sync(device)
            res[mode] = 1e3 * (time.time() - t) / reps
        out.append(dict(step=f'zoo {name} ({model_info(m)["params"]:,} params)', ok=True,
                        result=f"{res['fp32']:.2f} ms fp32, {res['bf16+cl']:.2f} ms bf16 channels_last", seconds=None))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--dry-run', action='store_true', help='tiny CPU form of every step')
    ap.add_argument('--out', default=None, help='folder for the run and the table (default: a temporary folder)')
    a = ap.parse_args(argv)
    device = torch.device('cpu' if a.dry_run or not torch.cuda.is_available() else 'cuda')
    if not a.dry_run and device.type != 'cuda': sys.exit("no CUDA device: run with --dry-run for the CPU form")
    out = Path(a.out or tempfile.mkdtemp(prefix='tisr-device-'))
    out.mkdir(parents=True, exist_ok=True)
    head = dict(device=torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu', torch=torch.__version__,
                cuda=torch.version.cuda)
    print('device check:', head)
    rows = [cuda_tests(a.dry_run), main_job(a.dry_run, out)]
    for name in ('cfsr', 'drln'):
        for recipe in ('v1', 'v2'): rows.append(train_throughput(name, recipe, device, a.dry_run))
    # the guided models at x8, at the corefusion recipe's batch and patch
    rows.append(train_throughput('corefusion', 'corefusion', device, a.dry_run, scale=8, batch=8, patch=256))
    rows.append(train_throughput('guided-concat', 'v1', device, a.dry_run, scale=8, batch=16, patch=128, base='cfsr'))
    rows += zoo_speed(device, a.dry_run)
    table = ['| step | ok | result | s |', '|---|---|---|---:|']
    table += [f"| {r['step']} | {'yes' if r['ok'] else 'NO'} | {r['result']} | {r['seconds'] if r['seconds'] is not None else ''} |" for r in rows]
    text = f"device check on {head['device']} (torch {head['torch']}, CUDA {head['cuda']})\n\n" + '\n'.join(table)
    print(text)
    (out/'device_check.md').write_text(text + '\n')
    (out/'device_check.json').write_text(json.dumps(dict(head=head, rows=rows), indent=1))
    return 0 if all(r['ok'] for r in rows) else 1


if __name__ == '__main__': sys.exit(main())
