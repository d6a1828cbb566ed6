"""Benchmark: wall time of ``mirage vision`` (target: the full run under 15 minutes on 2 cores).

Figures measured in the same run:

(a) seconds per experiment of the quick (default) or full (``--full``) run, and the total;
(b) why training pins torch to one thread: the median time of a training step of the largest
    autoencoder with one intra-op thread / with torch's default thread count (the baseline).

The load average is printed with the figures, since the machine is usually shared.

    python benchmarks/vision_time.py [--full] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn


def step_time(threads: int, steps: int) -> float:
    from mirage.vision.experiments import EXPERIMENTS
    from mirage.vision.models import ShallowAutoencoder

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = ShallowAutoencoder(EXPERIMENTS["autoencoder"].sizes[-1], 16 * 16 * 3)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.rand(64, 16, 16, 3)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            opt.zero_grad()
            nn.functional.mse_loss(model(x), x).backward()
            opt.step()
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        torch.set_num_threads(before)


def main() -> None:
    from mirage import VisionSettings, run_vision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="time the full run (default: --quick)")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}, cores: {os.cpu_count()}")
    start = time.perf_counter()
    result = run_vision(VisionSettings(quick=not args.full, seed=0), progress=False)
    total = time.perf_counter() - start
    for name, sec in result.seconds.items():
        print(f"{'full' if args.full else 'quick'} {name}: {sec:.1f} s")
    print(f"total {total:.1f} s ({total / 60:.2f} min; target < 15 min for the full run)")
    one, default = step_time(1, args.steps), step_time(torch.get_num_threads(), args.steps)
    print(
        f"autoencoder step: 1 thread {one * 1e3:.2f} ms, {torch.get_num_threads()} threads "
        f"{default * 1e3:.2f} ms, ratio {one / default:.2f} (below 1: one thread is faster)"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
