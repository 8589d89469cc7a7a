"""A tiny training job for the resume and DDP tests: `python tests/train_job.py RUN_DIR [--kill-at N] [--resume]`.

Writes 6 smooth random 32x32 images, trains a 2-layer conv net with PairedDataset crops (flips, rotations, area LR)
and an EMA, and, with --kill-at, SIGKILLs itself right after that optimisation step."""
import argparse, os, signal, sys
from pathlib import Path
import numpy as np
import torch, torch.nn as nn
from tisr.core import write_image
from tisr.data import scan_spec, PairedDataset
from tisr.train import TrainConfig, fit, init_distributed

ap = argparse.ArgumentParser()
ap.add_argument('run_dir'); ap.add_argument('--kill-at', type=int, default=0); ap.add_argument('--resume', action='store_true')
ap.add_argument('--data', default=None); ap.add_argument('--no-dropout', action='store_true'); ap.add_argument('--epochs', type=int, default=3)
args = ap.parse_args()
torch.set_num_threads(1)
rank, world = init_distributed()
data = Path(args.data or Path(args.run_dir).parent/'data')
if rank == 0 and not data.exists():
    rng = np.random.default_rng(0); data.mkdir(parents=True)
    for i in range(6):
        img = np.cumsum(np.cumsum(rng.random((32, 32)), 0), 1); img = (img - img.min()) / np.ptp(img)
        write_image(data/f'S{i:02d}_img.png', img.astype(np.float32))
if world > 1:
    import torch.distributed as dist; dist.barrier()
items = scan_spec(dict(layout='folder', path=str(data), name='toy'))
train = PairedDataset(items, scale=2, patch=16, augment=True, train=True, seed=1)
val = {'toy': PairedDataset(items[:2], scale=2, train=False, seed=1)}
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Dropout(0.0 if args.no_dropout else 0.1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1), nn.PixelShuffle(2))
cfg = TrainConfig(lr=1e-3, epochs=args.epochs, steps_per_epoch=4, batch_size=4, ema=0.9, warmup_epochs=1,
                  checkpoint_steps=2, seed=5)
kill = (lambda step: os.kill(os.getpid(), signal.SIGKILL) if step == args.kill_at else None) if args.kill_at else None
fit(model, train, val, cfg, scale=2, run_dir=args.run_dir, progress=False, resume=args.resume, on_step=kill)
