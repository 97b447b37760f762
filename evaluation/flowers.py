"""Measure the Flowers-102 2 × 2 and write the numbers into their cards (the tab shows them).

    python -m evaluation.flowers                                   # every flowers-* checkpoint that exists
    python -m evaluation.flowers --checkpoints flowers-cnn-pretrained --parts clean attacks
    python -m evaluation.flowers --parts transfer                  # only the transfer matrix, between all that exist

Per model (`--parts clean`): top-1 / top-5 on the official test split (5,994 of its 6,149 images here) and on the
validation split, and per-class test accuracy. `--parts attacks`: accuracy under FGSM and PGD-10 (α = ε/4, random
start, as in evaluation.attacks) at ε ∈ {1, 2, 4, 8}/255 on a fixed class-stratified test subset (`--attack-images`,
1 per class by default), through torchattacks in [0, 1] pixel space (the models normalise inside). `--parts transfer`:
PGD-10 at 8/255 crafted on each model, evaluated on every model (rows: source, columns: target), stored in each
source's card as `transfer_pgd10_8`; its diagonal is the model's own PGD accuracy at that ε (same seed, same images).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from evaluation.attacks import _torchattacks, adversarial_batches, attacked_accuracy, stratified_subset
from models import registry
from models.runtime import hardware, pick_device
from nndl_data.flowers import FLOWER_NAMES, load_flowers

CHECKPOINTS = ("flowers-cnn-pretrained", "flowers-cnn-scratch", "flowers-vit-scratch", "flowers-vit-cifar10")
EPSILONS = (1, 2, 4, 8)  # 1/255 units
TRANSFER_EPSILON = 8
ATTACK_SEED = 0
ATTACK_SETTINGS = "torchattacks: FGSM; PGD-10 with α = ε/4 and a random start (seed 0); ε in 1/255 units; [0, 1] pixel space"


def pgd(model, epsilon: float, steps: int = 10):
    return _torchattacks().PGD(model, eps=epsilon / 255, alpha=epsilon / 255 / 4, steps=steps, random_start=True)


@torch.no_grad()
def topk_accuracy(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 128) -> tuple[float, float, list[float]]:
    """(top-1, top-5, per-class top-1 over the classes present) of uint8 images."""
    model.eval()
    top5 = torch.cat([model(images[i:i + batch_size].float().div(255)).topk(5, dim=1).indices for i in range(0, len(images), batch_size)])
    hit1, hit5 = top5[:, 0] == labels, (top5 == labels[:, None]).any(1)
    per_class = [float(hit1[labels == c].float().mean()) if (labels == c).any() else float("nan") for c in range(int(labels.max()) + 1)]
    return float(hit1.float().mean()), float(hit5.float().mean()), per_class


def robustness(model, images, labels, epsilons, batch_size: int, device) -> dict:
    """FGSM and PGD-10 accuracy at each ε (1/255 units) on uint8 images; PGD's random start seeded per ε."""
    torchattacks = _torchattacks()
    fgsm, pgd10 = {}, {}
    for epsilon in epsilons:
        fgsm[str(epsilon)] = attacked_accuracy(model, torchattacks.FGSM(model, eps=epsilon / 255), images, labels, batch_size, device)
        torch.manual_seed(ATTACK_SEED)
        pgd10[str(epsilon)] = attacked_accuracy(model, pgd(model, epsilon), images, labels, batch_size, device)
        print(f"  ε={epsilon}/255: FGSM {fgsm[str(epsilon)]:.4f}, PGD-10 {pgd10[str(epsilon)]:.4f}", file=sys.stderr)
    return {"fgsm_accuracy": fgsm, "pgd10_accuracy": pgd10}


def transfer_matrix(models: dict, images, labels, epsilon: float, batch_size: int, device) -> dict[str, dict[str, float]]:
    """{source: {target: accuracy of target on PGD-10 examples crafted on source}}; the same seed and batches as
    `robustness`, so the diagonal equals each model's own PGD-10 accuracy at `epsilon`."""
    matrix = {}
    for source, model in models.items():
        torch.manual_seed(ATTACK_SEED)
        correct = dict.fromkeys(models, 0)
        for x, y in adversarial_batches(pgd(model, epsilon), images, labels, batch_size, device):
            with torch.no_grad():
                for target, other in models.items():
                    correct[target] += (other.eval()(x).argmax(1) == y).sum().item()
        matrix[source] = {target: count / len(labels) for target, count in correct.items()}
        print(f"  transfer from {source}: " + ", ".join(f"{t} {a:.3f}" for t, a in matrix[source].items()), file=sys.stderr)
    return matrix


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", default=None, help=f"default: whichever of {CHECKPOINTS} exist")
    parser.add_argument("--parts", nargs="+", default=["clean", "attacks", "transfer"], choices=["clean", "attacks", "transfer"])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--checkpoint-root", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--attack-images", type=int, default=102, help="class-stratified test subset for the attacks and the transfer matrix")
    parser.add_argument("--epsilons", type=int, nargs="+", default=list(EPSILONS))
    parser.add_argument("--batch-size", type=int, default=102)
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    available = [name for name in CHECKPOINTS if registry.available(name, args.checkpoint_root)]
    names = args.checkpoints or available
    if not names:
        raise SystemExit("No flowers-* checkpoints found. Train them with `python -m training.flowers --preset cnn-pretrained` (docs/flowers.md).")
    command = ("python -m evaluation.flowers " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    test = load_flowers("test", args.data_root)
    validation = load_flowers("val", args.data_root)
    subset = stratified_subset(test.labels, args.attack_images)
    attack_images, attack_labels = test.images[subset], test.labels[subset]
    print(f"test: {test.describe()}; attack subset: {len(subset)} images", file=sys.stderr)
    models = {name: registry.load(name, root=args.checkpoint_root, device=device).eval() for name in set(names) | set(available if "transfer" in args.parts else [])}
    results = {}
    for name in names:
        started = time.monotonic()
        model, metrics = models[name], {}
        print(name, file=sys.stderr)
        if "clean" in args.parts:
            top1, top5, per_class = topk_accuracy(model, test.images.to(device), test.labels.to(device), args.batch_size)
            metrics.update(test_top1=top1, test_top5=top5, test_images=test.describe(), val_top1=topk_accuracy(model, validation.images.to(device),
                           validation.labels.to(device), args.batch_size)[0], per_class_test_accuracy=dict(zip(FLOWER_NAMES, per_class)))
            print(f"  test top-1 {top1:.4f}, top-5 {top5:.4f}, val top-1 {metrics['val_top1']:.4f}", file=sys.stderr)
        if "attacks" in args.parts:
            metrics.update(robustness(model, attack_images, attack_labels, args.epsilons, args.batch_size, device))
            metrics["attack_clean_accuracy"] = attacked_accuracy(model, None, attack_images, attack_labels, args.batch_size, device)
            metrics.update(attack_images=len(subset), attack_settings=ATTACK_SETTINGS)
        metrics.update(evaluated_on=hardware(), evaluation_seconds=round(time.monotonic() - started, 1))
        registry.update_card(name, root=args.checkpoint_root, metrics=metrics, evaluation_command=command)  # now: a later part may be cut
        results[name] = metrics
    if "transfer" in args.parts:
        matrix = transfer_matrix({name: models[name] for name in available}, attack_images, attack_labels, TRANSFER_EPSILON, args.batch_size, device)
        for name in names:
            transfer = {"transfer_pgd10_8": matrix[name], "transfer_settings": f"PGD-10 at {TRANSFER_EPSILON}/255 (α = ε/4, seed {ATTACK_SEED}) "
                        f"on the {len(subset)}-image attack subset; targets: {available}"}
            results[name].update(transfer)
            registry.update_card(name, root=args.checkpoint_root, metrics=transfer, evaluation_command=command)
    return results


if __name__ == "__main__":
    torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "1") or 1))
    main()
