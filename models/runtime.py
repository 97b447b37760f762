"""Where and how models run, shared by training, evaluation and the app: the device, bf16 autocast, the hardware line of a card."""

from __future__ import annotations

import functools
import platform
import warnings
from pathlib import Path

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_bf16_units() -> str:
    """The CPU's native bf16 instructions, "AMX" (Sapphire Rapids and later) or "AVX512-BF16" (say AMD Zen 4), or ""."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return ""
    return "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else ""


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether `--precision` asks for bf16 autocast on this device. `auto` picks it where it pays: on CUDA, and on
    CPUs with native bf16 (AMX tiles, or AVX512-BF16), where oneDNN's bf16 convolutions train a CIFAR ResNet or
    AdvGAN's generator two to four times as fast as fp32 (docs/cpu-training.md). Elsewhere bf16 on a CPU is emulated and slower."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"unknown precision {precision!r}; choose auto, bf16 or fp32")
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and bool(cpu_bf16_units()))
    if precision == "bf16" and device.type == "cpu" and not cpu_bf16_units():
        # Session 19's CPU (AVX2 only) ran a CycleGAN step 13x slower in bf16 than in fp32. Called every step via autocast();
        # Python shows a warning once per call site, so a run prints it once.
        warnings.warn("--precision bf16 on a CPU without native bf16 (no AMX or AVX512-BF16 in /proc/cpuinfo): "
                      "it is emulated and many times slower than fp32; use --precision auto or fp32", stacklevel=2)
    return precision == "bf16"


def autocast(precision: str, device: torch.device):
    """The forward passes' context: bf16 mixed precision (weights, optimiser state and losses stay fp32) or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16(precision, device))


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA)"
    return f"{platform.processor() or platform.machine()} CPU{f' with {cpu_bf16_units()}' if cpu_bf16_units() else ''}, {torch.get_num_threads()} threads"
