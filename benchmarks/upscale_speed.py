"""tisr-upscale on one 640x512 RoadScene frame, x4, CFSR and SPAN: whole-frame against tiled peak memory and time
(each in a fresh process), torch eager against channels_last against onnxruntime (interleaved rounds, median,
ratios against eager), and the seam error of tiling.

    OMP_NUM_THREADS=1 TISR_DATA=/work/shared/data TISR_WEIGHTS=/work/shared/weights python benchmarks/upscale_speed.py

TISR_DATA is the folder that holds thermal/; the official weights are found through TISR_WEIGHTS (or the cache).
`python benchmarks/upscale_speed.py peak --model span --max-memory 160` prints one peak measurement as JSON
(tests/test_upscale.py uses it). About 4 minutes on one thread of a shared CPU."""

from __future__ import annotations
import argparse, gc, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch
import tisr.upscale as U

FRAME = 'thermal/roadscene/infrared/FLIR_00006.png'


def frame_path() -> Path:
    root = os.environ.get('TISR_DATA')
    if not root: sys.exit("set TISR_DATA to the folder that holds thermal/ (e.g. /work/shared/data)")
    if not os.environ.get('TISR_WEIGHTS'): print("TISR_WEIGHTS is unset: the weights come from the cache or a download", file=sys.stderr)
    return Path(root)/FRAME


# Peak memory of one call: the kernel's resident-set peak (VmHWM, reset through /proc/self/clear_refs) minus the
# resident set just before. It counts every page the call touches (torch, oneDNN scratch, onnxruntime, numpy),
# which is what a memory limit sees; tracemalloc would miss torch's CPU tensors.
def peak_call(model:str, frame:Path, max_memory:float|None, tile:int|None, overlap:int, backend:str='torch') -> dict:
    "Engine built (memory probe, ONNX export included) and one frame upscaled and encoded: peak resident MB added, seconds."
    lm = U.load_model(model, 4)
    x, norm = U.read_frame(frame)
    gc.collect()
    U.reset_peak_rss()
    base = U.rss_bytes('VmRSS')
    t0 = time.perf_counter()
    eng = U.make_engine(lm, tile=tile, overlap=overlap, max_memory=max_memory, backend=backend, progress=False)
    y = U.encode_frame(eng(x, 1), norm)
    seconds = time.perf_counter() - t0
    peak = U.rss_bytes('VmHWM') - base
    plan = eng.plans[(x.shape[0], x.shape[1], 1)]
    return dict(model=model, backend=backend, max_memory=max_memory, tile=[plan.tile_h, plan.tile_w], tiles=plan.count,
                batch=plan.batch, overlap=overlap, peak_mb=round(peak / 2**20, 1), seconds=round(seconds, 2),
                bytes_per_lr_px=round(eng.bytes_per_px) if eng.bytes_per_px else None, out_shape=list(y.shape))


def peak_in_subprocess(model:str, max_memory:float|None, tile:int|None=None, overlap:int=40, backend:str='torch') -> dict:
    "`peak_call` in a fresh interpreter, so that memory freed earlier in this process cannot hide inside the baseline."
    cmd = [sys.executable, __file__, 'peak', '--model', model, '--overlap', str(overlap), '--backend', backend]
    if max_memory is not None: cmd += ['--max-memory', str(max_memory)]
    if tile is not None: cmd += ['--tile', str(tile)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


# Speed: the whole-frame forward only (no file I/O); each variant once per round, rounds interleaved, so that the
# load of the shared machine falls on all variants alike; the median per variant.
def variants(model:str, onnx_dir:Path) -> dict:
    lm = U.load_model(model, 4)
    cpu = torch.device('cpu')
    channels_last = U.load_model(model, 4).model.to_channels_last()
    path = U.export_onnx(lm, onnx_dir/f'{model}.onnx')
    return {'eager': U.TorchRunner(lm.model, cpu), 'channels_last': U.TorchRunner(channels_last, cpu),
            'onnxruntime': U.OrtRunner(path, torch.get_num_threads())}


def time_variants(runners:dict, x:np.ndarray, rounds:int) -> dict:
    t = torch.from_numpy(np.ascontiguousarray(x))[None, None]
    times = {k: [] for k in runners}
    for _ in range(rounds):
        for k, r in runners.items():
            t0 = time.perf_counter()
            with torch.inference_mode(): r(t)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def onnx_diff(runners:dict, x:np.ndarray) -> float:
    t = torch.from_numpy(np.ascontiguousarray(x))[None, None]
    with torch.inference_mode(): return float((runners['onnxruntime'](t) - runners['eager'](t)).abs().max())


# Seam error: tiled against whole on a square crop, in 3x3 tiles placed so that neighbours share exactly `overlap`.
def seam_errors(model:str, crop:np.ndarray, overlaps:list[int]) -> list[dict]:
    "Max |tiled - whole| in 3x3 tiles sharing exactly `overlap` LR pixels: in float (x255) and in 8-bit levels."
    n = crop.shape[0]
    lm = U.load_model(model, 4)
    whole = U.make_engine(lm, progress=False)(crop)
    q = lambda a: np.rint(np.clip(a, 0, 1) * 255)
    rows = []
    for overlap in overlaps:
        tile = (n + 2 * overlap) // 3
        eng = U.make_engine(lm, tile=tile, overlap=overlap, progress=False)
        tiled = eng(crop)
        p = eng.plans[(n, n, 1)]
        rows.append(dict(model=model, overlap=overlap, tile=tile, exact_overlap=p.ys[1] - p.ys[0] == tile - overlap,
                         float_x255=round(float(np.abs(tiled - whole).max()) * 255, 3),
                         levels_8bit=int(np.abs(q(tiled) - q(whole)).max())))
    return rows


def markdown(rows:list[dict], cols:list[str]) -> str:
    lines = ['| ' + ' | '.join(cols) + ' |', '|' + '---|' * len(cols)]
    return '\n'.join(lines + ['| ' + ' | '.join(str(r.get(c, '')) for c in cols) + ' |' for r in rows])


def memory_table(budget:float) -> list[dict]:
    rows = []
    for model, max_memory, backend in (('span', None, 'torch'), ('span', budget, 'torch'), ('span', budget, 'onnxruntime'),
                                       ('cfsr', None, 'torch'), ('cfsr', budget, 'torch')):
        rows.append(peak_in_subprocess(model, max_memory, backend=backend))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def speed_table(x:np.ndarray, rounds:int) -> list[dict]:
    rows = []
    for model, crop in (('span', x), ('cfsr', x[128:384, 192:448])):   # cfsr on 256x256: its full frame takes ~1 min a pass
        with tempfile.TemporaryDirectory() as d: runners = variants(model, Path(d))
        med = time_variants(runners, crop, rounds)
        diff = onnx_diff(runners, crop)
        for k, v in med.items():
            rows.append(dict(model=model, input=f'{crop.shape[1]}x{crop.shape[0]}', variant=k, median_s=round(v, 2),
                             vs_eager=round(med['eager'] / v, 2), onnx_max_diff=f'{diff:.1e}' if k == 'onnxruntime' else ''))
        print(f"{model} timed", flush=True)
    return rows


def run_all(budget:float, rounds:int, seam_overlaps:list[int]):
    frame = frame_path()
    x, _ = U.read_frame(frame)
    print(f"frame {frame.name} {x.shape[1]}x{x.shape[0]} x4, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)
    mem = memory_table(budget)
    speed = speed_table(x, rounds)
    crop = x[160:344, 220:404]
    seams = [r for m in ('span', 'cfsr') for r in seam_errors(m, crop, seam_overlaps)]
    print('\nPeak memory added by one call (fresh process, VmHWM - VmRSS before), and its seconds (memory probe included):')
    print(markdown(mem, ['model', 'backend', 'max_memory', 'tile', 'tiles', 'batch', 'overlap', 'bytes_per_lr_px', 'peak_mb', 'seconds']))
    print(f'\nWhole-frame forward, median of {rounds} interleaved rounds (vs_eager > 1: faster than eager):')
    print(markdown(speed, ['model', 'input', 'variant', 'median_s', 'vs_eager', 'onnx_max_diff']))
    print(f'\nSeam error, tiled (3x3 tiles) against whole on a {crop.shape[1]}x{crop.shape[0]} crop (levels_8bit: max difference in 8-bit levels):')
    print(markdown(seams, ['model', 'overlap', 'tile', 'exact_overlap', 'float_x255', 'levels_8bit']))


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('what', nargs='?', default='all', choices=('all', 'peak'))
    ap.add_argument('--model', default='span')
    ap.add_argument('--max-memory', type=float, default=None)
    ap.add_argument('--tile', type=int, default=None)
    ap.add_argument('--overlap', type=int, default=40)
    ap.add_argument('--backend', default='torch')
    ap.add_argument('--budget', type=float, default=256, help='max_memory (MB) of the tiled runs')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--seam-overlaps', default='16,28,40')
    return ap.parse_args(argv)


if __name__ == '__main__':
    a = parse()
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    if a.what == 'peak': print(json.dumps(peak_call(a.model, frame_path(), a.max_memory, a.tile, a.overlap, a.backend)))
    else: run_all(a.budget, a.rounds, [int(v) for v in a.seam_overlaps.split(',')])
