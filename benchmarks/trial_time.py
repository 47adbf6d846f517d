"""Seconds per search trial of the embedded presets, the figure `autodropout list` prints.

    python benchmarks/trial_time.py [--presets digits_wrn_quick ...] [--patterns 3] [--device cpu|cuda]

A trial is what a search worker does with one suggestion: train the preset's model for its epochs
with a pattern sampled from the preset's space, evaluating validation after every epoch
(``task.fit``, the same call as the Ray trainable's, without Ray's reporting and checkpoints). Data
loading is left out (a search loads the data once and shares it). On the CPU, torch uses one thread
(a trial per core, as the presets' ``cpus_per_trial: 1`` schedules them). Run it on an otherwise idle
machine: the wall time is the figure (the process's CPU time is printed beside it; when the two
differ much, other processes shared the core). The medians are printed as the ``TRIAL_SECONDS``
table of ``autodropout/commands/catalog.py``, where they are pasted with the machine and date.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from autodropout.runs.experiment import find_experiment
from autodropout.tasks import Regularization, build_task

PRESETS = ["digits_wrn_quick", "lm_transformer_quick", "translation_numbers_quick"]


def trial_seconds(preset: str, patterns: int, device: str) -> list[float]:
    """Wall seconds of ``patterns`` trials of ``preset`` on ``device``, each with another sampled pattern."""
    task = build_task(find_experiment(preset).with_train(device=device).task)
    space = task.search_space()
    seconds = []
    for seed in range(patterns):
        wall, cpu = time.perf_counter(), time.process_time()
        task.fit(Regularization(pattern=space.decode(space.sample(seed))), progress=False)
        seconds.append(time.perf_counter() - wall)
        print(f"{preset} on {device}, pattern {seed}: {seconds[-1]:.1f} s wall, {time.process_time() - cpu:.1f} s CPU",
              flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--patterns", type=int, default=3, help="trials (sampled patterns) per preset")
    parser.add_argument("--device", default="cpu", help="cpu (one torch thread) or cuda")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    medians = {p: statistics.median(trial_seconds(p, args.patterns, args.device)) for p in args.presets}
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{platform.machine()}, 1 thread"
    print(f"\n# {where}, torch {torch.__version__}, median wall seconds of {args.patterns} trials")
    print("TRIAL_SECONDS = {" + ", ".join(f'"{p}": {s:.1f}' for p, s in medians.items()) + "}")


if __name__ == "__main__":
    main()
