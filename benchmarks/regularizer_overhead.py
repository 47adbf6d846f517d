"""Training-step overhead of every registered regularizer, relative to plain dropout.

For each entry of ``autodropout.regularizers.available()``, built with its registry
``example_params`` with its rate parameter (if it has one) set to the baseline's 0.1, since
Bernoulli sampling costs differ with the rate, and each activation layout it accepts
(``input_kinds``):

* conv ``(128, 64, 32, 32)`` and seq ``(32, 128, 512)`` float32 tensors;
* time: forward + backward (``module(x).backward(grad)``) in training mode, ``--repeats`` runs
  after ``--warmup`` runs, each followed by a run of ``torch.nn.functional.dropout(x, p=0.1)``;
  the table gives both medians and the median of the run-by-run ratios (each pair sees the same
  machine load, which matters on a shared machine);
* memory: MiB that autograd keeps for backward, counted by a ``torch.autograd.graph.saved_tensors_hooks``
  pack hook over distinct storages, leaving out the input and the parameters (they exist anyway).
  This is the memory a regularizer adds for the whole forward-backward interval, per site; it does
  not count temporaries freed during the forward.

Extra rows: ``conv_pattern`` with ``share_c`` (the example is per-channel) and ``transformer_pattern``
with Gaussian noise. Entries with a ``channels`` parameter get the tensor's channel count. Work a
method does outside its module is not timed (Y-Drop's conductance estimation; its example
parameters also keep it in the plain-dropout warm-up).
``dropconnect`` wraps a layer, so it is timed as ``DropConnect(layer)`` against the plain layer (a 3x3
``Conv2d(64, 64)`` on the conv tensor, a ``Linear(512, 512)`` on the seq tensor) in its own table.

Usage::

    python benchmarks/regularizer_overhead.py [--repeats 11] [--warmup 2] [--threads N]
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import autodropout.regularizers as regs

LAYOUTS = {"conv": (128, 64, 32, 32), "seq": (32, 128, 512)}
MIB = 2**20


def step_time(fn: Callable[[Tensor], Tensor], x: Tensor, grad: Tensor) -> float:
    start = time.perf_counter()
    fn(x).backward(grad)
    x.grad = None
    return time.perf_counter() - start


def paired_medians(
    fn: Callable[[Tensor], Tensor],
    base: Callable[[Tensor], Tensor],
    x: Tensor,
    grad: Tensor,
    warmup: int,
    repeats: int,
) -> tuple[float, float, float]:
    """Median seconds of ``fn`` and of ``base``, run alternately, and the median of their ratios
    pair by pair (robust to load that drifts during the run)."""
    for _ in range(warmup):
        step_time(fn, x, grad)
        step_time(base, x, grad)
    times = [(step_time(fn, x, grad), step_time(base, x, grad)) for _ in range(repeats)]
    return (
        statistics.median(t for t, _ in times),
        statistics.median(b for _, b in times),
        statistics.median(t / b for t, b in times),
    )


def saved_bytes(fn: Callable[[Tensor], Tensor], x: Tensor, exclude: tuple[Tensor, ...] = ()) -> int:
    """Bytes of distinct storages autograd saves for backward in ``fn(x)``, minus ``x`` and ``exclude``."""
    skip = {t.untyped_storage().data_ptr() for t in (x, *exclude)}
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(x)
    del out
    return sum(seen.values())


def build(name: str, shape: tuple[int, ...], **overrides: object) -> nn.Module:
    params = dict(regs.info(name).example_params, **overrides)
    if "channels" in params:
        params["channels"] = shape[1] if len(shape) == 4 else shape[-1]
    return regs.create(name, **params).train()


BASELINE_P = 0.1


def variants() -> list[tuple[str, str, dict[str, object]]]:
    """(row label, registry name, parameter overrides) of every timed activation regularizer."""
    rows = []
    for name in regs.available():
        if "layer" in regs.info(name).input_kinds:
            continue
        example = regs.info(name).example_params.get("pattern")
        if name == "conv_pattern":
            rows.append(("conv_pattern (per-channel)", name, {}))
            rows.append(("conv_pattern (share_c)", name, {"pattern": dataclasses.replace(example, share_c=True)}))
        elif name == "transformer_pattern":
            rows.append(("transformer_pattern (bernoulli)", name, {}))
            gaussian = dataclasses.replace(example, noise="gaussian")
            rows.append(("transformer_pattern (gaussian)", name, {"pattern": gaussian}))
        else:
            # Bernoulli sampling cost depends on the rate: compare at the baseline's rate.
            rate = regs.info(name).rate_param
            rows.append((name, name, {rate: BASELINE_P} if rate else {}))
    return rows


def activation_table(warmup: int, repeats: int) -> list[str]:
    lines = [
        "| regularizer | layout | fwd+bwd ms | dropout ms | ratio to dropout | saved for backward MiB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for layout, shape in LAYOUTS.items():
        torch.manual_seed(0)
        x = torch.randn(shape, requires_grad=True)
        grad = torch.randn(shape)

        def base(t: Tensor) -> Tensor:
            return F.dropout(t, p=BASELINE_P)

        lines.append(f"| dropout p={BASELINE_P} (baseline) | {layout} | | | 1.00 | {saved_bytes(base, x) / MIB:.1f} |")
        for label, name, overrides in variants():
            if layout not in regs.info(name).input_kinds:
                continue
            module = build(name, shape, **overrides)
            params = tuple(module.parameters())
            fn_time, base_time, ratio = paired_medians(module, base, x, grad, warmup, repeats)
            mem = saved_bytes(module, x, params) / MIB
            lines.append(
                f"| {label} | {layout} | {fn_time * 1e3:.1f} | {base_time * 1e3:.1f} | {ratio:.2f} "
                f"| {mem:.1f} |"
            )
    return lines


def dropconnect_table(warmup: int, repeats: int) -> list[str]:
    lines = [
        "| dropconnect | layout | wrapped fwd+bwd ms | plain layer ms | ratio to plain layer "
        "| extra saved MiB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    layers = {"conv": nn.Conv2d(64, 64, 3, padding=1), "seq": nn.Linear(512, 512)}
    for layout, layer in layers.items():
        torch.manual_seed(0)
        shape = LAYOUTS[layout]
        x = torch.randn(shape, requires_grad=True)
        grad = torch.randn(shape)
        wrapped = regs.create("dropconnect", module=layer, **regs.info("dropconnect").example_params).train()
        params = tuple(layer.parameters())
        fn_time, base_time, ratio = paired_medians(wrapped, layer, x, grad, warmup, repeats)
        extra = (saved_bytes(wrapped, x, params) - saved_bytes(layer, x, params)) / MIB
        lines.append(
            f"| {type(layer).__name__} {tuple(layer.weight.shape)} | {layout} | {fn_time * 1e3:.1f} | "
            f"{base_time * 1e3:.1f} | {ratio:.2f} | {extra:.2f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=11, help="timed runs per row (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per row first")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, float32 CPU, "
        f"median of {args.repeats} after {args.warmup} warm-up runs\n"
    )
    print("\n".join(activation_table(args.warmup, args.repeats)))
    print()
    print("\n".join(dropconnect_table(args.warmup, args.repeats)))


if __name__ == "__main__":
    main()
