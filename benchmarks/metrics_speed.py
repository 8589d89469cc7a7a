"Seconds for PSNR, SSIM and LPIPS over 348 images of 192x192 on CPU (target: <= 60 s in all on 2 cores)."
from __future__ import annotations
import argparse, time
import cv2
import numpy as np
import torch
from tisr.core import env_dir, read_image
from tisr.metrics import psnr, ssim, lpips_metric
from tisr.synth import render


def real_faces(n:int, size:int) -> np.ndarray | None:
    "Up to `n` registered LWIR faces from $TISR_DATA, resized to size x size; None when TISR_DATA is unset."
    data = env_dir('TISR_DATA')
    if data is None: return None
    root = data / 'thermal' / 'faces_lwir'
    files = (sorted((root / 'PUJ_T360' / 'registered').glob('*.png')) + sorted((root / 'UND' / 'registered').glob('*.png')))[:n]
    return np.stack([cv2.resize(read_image(f)[0], (size, size), interpolation=cv2.INTER_AREA) for f in files])


def synthetic(n:int, size:int) -> np.ndarray:
    "`n` procedural thermal faces (tisr.synth) of size x size."
    return np.stack([render('faces', 0, i % 8, i, size=size) for i in range(n)]).astype(np.float32)


def bicubic_sr(hr:np.ndarray, scale:int) -> np.ndarray:
    "x`scale` INTER_AREA reduction and OpenCV bicubic back up, clipped to [0, 1]."
    s = hr.shape[-1]
    return np.stack([np.clip(cv2.resize(cv2.resize(h, (s // scale, s // scale), interpolation=cv2.INTER_AREA), (s, s),
                                        interpolation=cv2.INTER_CUBIC), 0, 1) for h in hr])


def timed(f, *args):
    t = time.perf_counter(); out = f(*args)
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--n', type=int, default=348); ap.add_argument('--size', type=int, default=192)
    ap.add_argument('--scale', type=int, default=4); ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    hr = real_faces(a.n, a.size)
    source = 'real LWIR faces ($TISR_DATA)'
    if hr is None or len(hr) < a.n: hr, source = synthetic(a.n, a.size), 'synthetic faces (set TISR_DATA for real ones)'
    sr = bicubic_sr(hr, a.scale)
    hr_t, sr_t = torch.from_numpy(hr)[:, None], torch.from_numpy(sr)[:, None]
    lp = lpips_metric()
    lp(sr_t[:2], hr_t[:2])   # warm-up
    print(f"{len(hr)} images {a.size}x{a.size} ({source}), x{a.scale} bicubic, {torch.get_num_threads()} threads")
    p, tp = timed(psnr, sr_t, hr_t, a.scale)
    s, ts = timed(ssim, sr_t, hr_t, a.scale)
    d, tl = timed(lp, sr_t, hr_t)
    print(f"PSNR {tp:.2f} s (mean {p.mean():.3f} dB)")
    print(f"SSIM {ts:.2f} s (mean {s.mean():.4f})")
    print(f"{lp.name} {tl:.2f} s (mean {d.mean():.4f})")
    print(f"total {tp + ts + tl:.2f} s (target <= 60 s)")


if __name__ == '__main__': main()
