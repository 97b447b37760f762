"""Training-step speed in fp32 and in bf16 autocast (`--precision`) on this machine.

    python -m benchmarks.precision [--runs 5] [--threads 1]

Times one forward + backward of the models the trainers spend their time in, at the trainers' own batch shapes,
once in fp32 and once under `models.runtime.autocast("bf16")`. On CPUs with native bf16 (AMX tiles, or AVX512-BF16)
oneDNN's bf16 convolutions are two to four times as fast, which is why `--precision auto` picks bf16 there; the ImageNet
EfficientNet-Lite0 (depthwise convolutions) is the exception, slower in bf16. Prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json

import timm
import torch

from benchmarks.timing import latencies
from models.attacks import AdvGANGenerator, AdvGANGeneratorConfig, CifarResNet, ResNetConfig
from models.cyclegan import CycleGANGenerator, CycleGANGeneratorConfig
from models.runtime import autocast, cpu_bf16_units

CASES = {  # name: (model factory, input shape of one training forward)
    "cyclegan-generator-32f-96px": (lambda: CycleGANGenerator(CycleGANGeneratorConfig(filters=32)), (2, 3, 96, 96)),
    "resnet20-batch128": (lambda: CifarResNet(ResNetConfig()), (128, 3, 32, 32)),
    "advgan-generator-full-res-batch128": (lambda: AdvGANGenerator(AdvGANGeneratorConfig(channels=(32, 64, 64), full_resolution=True)), (128, 3, 32, 32)),
    "efficientnet-lite0-128px-batch16": (lambda: timm.create_model("efficientnet_lite0", num_classes=10), (16, 3, 128, 128)),
}


def step_ms(model: torch.nn.Module, shape: tuple[int, ...], precision: str, runs: int) -> float:
    images = torch.rand(shape)
    device = torch.device("cpu")

    def step():
        with autocast(precision, device):
            out = model(images)
        out.float().mean().backward()

    return round(1000 * latencies(step, runs, warmup=2)["p50"], 1)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the trainers run one per process here)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = []
    for name, (factory, shape) in CASES.items():
        model = factory().train()
        fp32, bf16 = step_ms(model, shape, "fp32", args.runs), step_ms(model, shape, "bf16", args.runs)
        result = {"case": name, "fp32_ms": fp32, "bf16_ms": bf16, "speed-up": round(fp32 / bf16, 2),
                  "threads": args.threads, "cpu_bf16": cpu_bf16_units()}
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


if __name__ == "__main__":
    main()
