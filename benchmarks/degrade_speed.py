"Patches/s of the on-the-fly Real-ESRGAN degradation (192 px HR, x4) vs the patches/s CFSR x4 training consumes."
from __future__ import annotations
import argparse, os, time
import numpy as np
import torch
from tisr.degrade import realesrgan_degrade
from tisr.models import build_model
from tisr.synth import render


def degrade_rate(n:int, size:int=192, scale:int=4) -> float:
    "Patches/s of `realesrgan_degrade` in this process (one core's worth of work per call)."
    hrs = [render('faces', 0, i % 8, i, size=size) for i in range(8)]
    for i in range(3): realesrgan_degrade(hrs[i], scale, np.random.default_rng([0, i]))   # warm-up
    t = time.perf_counter()
    for i in range(n): realesrgan_degrade(hrs[i % len(hrs)], scale, np.random.default_rng([1, i]))
    return n / (time.perf_counter() - t)


def train_rate(steps:int, batch:int=16, lr_size:int=48, scale:int=4, device:str='cpu') -> float:
    "Patches/s of CFSR forward + L1 backward + Adam step on batch x 1 x lr_size^2 LR patches."
    model = build_model('cfsr', scale, pretrained=False).to(device).train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    lr = torch.rand(batch, 1, lr_size, lr_size, device=device)
    hr = torch.rand(batch, 1, lr_size * scale, lr_size * scale, device=device)
    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.l1_loss(model(lr), hr).backward()
        opt.step()
    for _ in range(2): step()
    if device.startswith('cuda'): torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps): step()
    if device.startswith('cuda'): torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--patches', type=int, default=200, help='degradations to time')
    ap.add_argument('--steps', type=int, default=3, help='training steps to time')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    a = ap.parse_args()
    d = degrade_rate(a.patches)
    cores = len(os.sched_getaffinity(0))
    t = train_rate(a.steps, device=a.device)
    print(f"realesrgan degradation (192 px HR, x4, 1 process): {d:.1f} patches/s; x{cores} cores (DataLoader workers, "
          f"ideal): {d * cores:.1f} patches/s")
    print(f"cfsr x4 training on {a.device} (16 x 1 x 48 x 48 LR, fwd+bwd+Adam, torch threads {torch.get_num_threads()}): {t:.1f} patches/s")
    print(f"ratio degradation / training, 1 process: {d / t:.2f}; with {cores} workers: {d * cores / t:.2f} (target >= 2)")
