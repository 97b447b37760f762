"""Measure the attack lab's checkpoints and write the numbers into their cards (the tab shows them).

    python -m evaluation.attacks                          # every attacks-* checkpoint that exists, all 10,000 test images
    python -m evaluation.attacks --checkpoints attacks-resnet20-standard --per-class 100 --device cpu
    python -m evaluation.attacks --checkpoints attacks-efficientnet-lite0-standard --epsilons   # the distillation teacher: clean only

Classifiers (`attacks-resnet20-standard|noise|adversarial`, any `attacks-*` classifier):
- clean accuracy on the CIFAR-10 test split (10,000 images), and on the same images + N(0, 0.05) noise;
- accuracy under FGSM and PGD-10 (α = ε/4, random start) at ε ∈ {1, 2, 4, 8}/255, through torchattacks, in
  [0, 1] pixel space (the models normalise inside: the report attacked normalised tensors);
- AutoAttack (standard version, L∞, 8/255) on 1,000 test images (100 per class) for the adversarially trained model.
AdvGAN (`attacks-advgan`): attack success rate over the images the target classifies correctly, overall and per
class (and, for comparison, the report's definition over all images), against FGSM and PGD-10 at the same 8/255
budget on the same images, the perturbation's L∞/L2/PSNR, and seconds per image for AdvGAN, FGSM and PGD-10.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from models import registry
from models.attacks import set_range_check
from models.runtime import hardware, pick_device
from nndl_data.attacks import load_cifar

CLASSIFIERS = ("attacks-resnet20-standard", "attacks-resnet20-noise", "attacks-resnet20-adversarial")
ADVGAN = "attacks-advgan"
EPSILONS = (1, 2, 4, 8)  # in 1/255 units
ROBUST_MODEL = "attacks-resnet20-adversarial"


def _torchattacks():
    try:
        import torchattacks
    except ImportError as error:
        raise SystemExit("The evaluation needs torchattacks (`pip install torchattacks==3.5.1`).") from error
    return torchattacks


def _batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, device):
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size].to(device).float().div(255), labels[start : start + batch_size].to(device)


def adversarial_batches(attack, images, labels, batch_size: int, device):
    """(attack(x, y), y) batch by batch (attack=None: the clean batches). uint8 images in, [0, 1] to the attack."""
    for x, y in _batches(images, labels, batch_size, device):
        yield (x if attack is None else attack(x, y)), y


def attacked_accuracy(model, attack, images, labels, batch_size: int, device) -> float:
    """Top-1 accuracy on attack(x, y) (attack=None: clean accuracy). uint8 images in, [0, 1] to the attack."""
    correct = 0
    for x, y in adversarial_batches(attack, images, labels, batch_size, device):
        with torch.no_grad():
            correct += (model(x).argmax(1) == y).sum().item()
    return correct / len(images)


@torch.no_grad()
def noisy_accuracy(model, images, labels, std: float, batch_size: int, device, seed: int = 0) -> float:
    """Accuracy on test images + N(0, std²), clamped to [0, 1]: the "test noisy" half of the spec's 2×2 grid."""
    generator = torch.Generator(device=device).manual_seed(seed)
    correct = 0
    for x, y in _batches(images, labels, batch_size, device):
        noisy = (x + std * torch.randn(x.shape, generator=generator, device=device)).clamp(0, 1)
        correct += (model(noisy).argmax(1) == y).sum().item()
    return correct / len(images)


def stratified_subset(labels: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of `count` images, the same number from each class, interleaved (the test split is sorted by class),
    so a time-limited AutoAttack that stops early still sees every class."""
    num_classes = int(labels.max()) + 1
    per_class = [torch.nonzero(labels == c).flatten()[: max(count // num_classes, 1)] for c in range(num_classes)]
    interleaved = torch.nn.utils.rnn.pad_sequence(per_class, padding_value=-1).flatten()  # (per_class × classes,)
    return interleaved[interleaved >= 0][:count]


def autoattack_accuracy(model, images, labels, epsilon: float, num_classes: int, device, time_budget_s: float, chunk: int = 250) -> tuple[float, int]:
    """AutoAttack (Croce & Hein 2020, torchattacks' port) in chunks, stopping early when the time budget is spent."""
    torchattacks = _torchattacks()
    attack = torchattacks.AutoAttack(model, norm="Linf", eps=epsilon, version="standard", n_classes=num_classes, seed=0)
    started, correct, counted = time.monotonic(), 0, 0
    for x, y in _batches(images, labels, chunk, device):
        adversarial = attack(x, y)
        with torch.no_grad():
            correct += (model(adversarial).argmax(1) == y).sum().item()
        counted += len(y)
        if time_budget_s and time.monotonic() - started > time_budget_s and counted < len(images):
            print(f"AutoAttack stopped after {counted} images: --autoattack-seconds {time_budget_s} spent", file=sys.stderr)
            break
    return correct / max(counted, 1), counted


def evaluate_classifier(name: str, images, labels, args, device) -> dict:
    torchattacks = _torchattacks()
    model = registry.load(name, root=args.checkpoint_root, device=device)
    if device.type == "cuda":
        set_range_check(model, False)  # torchattacks checks the [0, 1] range itself; the model's check syncs the GPU
    metrics = {"test_images": len(images), "clean_accuracy": attacked_accuracy(model, None, images, labels, args.batch_size, device)}
    print(f"{name}: clean {metrics['clean_accuracy']:.4f}", file=sys.stderr)
    metrics["noisy_test_accuracy"] = noisy_accuracy(model, images, labels, args.noise_std, args.batch_size, device)
    metrics["noisy_test_std"] = args.noise_std
    metrics["fgsm_accuracy"], metrics["pgd10_accuracy"] = {}, {}
    for epsilon in args.epsilons:
        fgsm = torchattacks.FGSM(model, eps=epsilon / 255)
        pgd = torchattacks.PGD(model, eps=epsilon / 255, alpha=epsilon / 255 / 4, steps=10, random_start=True)
        metrics["fgsm_accuracy"][str(epsilon)] = attacked_accuracy(model, fgsm, images, labels, args.batch_size, device)
        metrics["pgd10_accuracy"][str(epsilon)] = attacked_accuracy(model, pgd, images, labels, args.batch_size, device)
        print(f"{name}: ε={epsilon}/255 FGSM {metrics['fgsm_accuracy'][str(epsilon)]:.4f} PGD-10 {metrics['pgd10_accuracy'][str(epsilon)]:.4f}", file=sys.stderr)
    metrics["attack_settings"] = "torchattacks 3.5: FGSM; PGD-10 with α = ε/4 and a random start; ε in 1/255 units; [0, 1] pixel space"
    if name == ROBUST_MODEL and args.autoattack_images:
        subset = stratified_subset(labels, args.autoattack_images)
        accuracy, used = autoattack_accuracy(model, images[subset], labels[subset], 8 / 255, int(labels.max()) + 1, device, args.autoattack_seconds)
        metrics["autoattack_accuracy_8"], metrics["autoattack_images"] = accuracy, used
        print(f"{name}: AutoAttack 8/255 on {used} images {accuracy:.4f}", file=sys.stderr)
    metrics["evaluated_on"] = hardware()
    return metrics


def _seconds_per_image(function, x, y, repeats: int = 3) -> float:
    function(x, y)  # warm-up
    if x.is_cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        function(x, y)
    if x.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / (repeats * len(x))


def perturbation_stats(original: torch.Tensor, adversarial: torch.Tensor) -> dict[str, float]:
    delta = (adversarial - original).flatten(1)
    mse = delta.pow(2).mean(1).clamp(min=1e-12)
    return {"linf": delta.abs().amax(1).mean().item(), "l2": delta.norm(dim=1).mean().item(), "psnr_db": (10 * torch.log10(1 / mse)).mean().item()}


def evaluate_advgan(name: str, images, labels, classes, args, device) -> dict:
    torchattacks = _torchattacks()
    generator = registry.load(name, root=args.checkpoint_root, device=device)
    card = registry.load_card(name, root=args.checkpoint_root)
    target_name = card.get("data", {}).get("target_model", CLASSIFIERS[0])
    target = registry.load(target_name, root=args.checkpoint_root, device=device)
    if device.type == "cuda":
        set_range_check(target, False)
    epsilon = generator.config.epsilon
    fgsm = torchattacks.FGSM(target, eps=epsilon)
    pgd = torchattacks.PGD(target, eps=epsilon, alpha=epsilon / 4, steps=10, random_start=True)
    num_classes = len(classes)
    correct_per_class = torch.zeros(num_classes)
    fooled_per_class = torch.zeros(num_classes)
    fooled_all = torch.zeros(num_classes)
    totals = torch.zeros(num_classes)
    landed = torch.zeros(num_classes, num_classes)  # true class × class after the attack, correct images only
    fgsm_fooled = pgd_fooled = 0
    stats = {"linf": 0.0, "l2": 0.0, "psnr_db": 0.0}
    for x, y in _batches(images, labels, args.batch_size, device):
        with torch.no_grad():
            correct = target(x).argmax(1) == y
            adversarial = generator.attack(x, target=target)
            adversarial_prediction = target(adversarial).argmax(1)
            fooled = adversarial_prediction != y
        for key, value in perturbation_stats(x, adversarial).items():
            stats[key] += value * len(y)
        for attack_name, attack in (("fgsm", fgsm), ("pgd", pgd)):
            attacked = attack(x, y)
            with torch.no_grad():
                hit = (target(attacked).argmax(1) != y) & correct
            if attack_name == "fgsm":
                fgsm_fooled += hit.sum().item()
            else:
                pgd_fooled += hit.sum().item()
        y_cpu, correct_cpu, fooled_cpu = y.cpu(), correct.cpu().float(), fooled.cpu().float()
        totals += torch.bincount(y_cpu, minlength=num_classes)
        correct_per_class += torch.bincount(y_cpu, weights=correct_cpu, minlength=num_classes)
        fooled_per_class += torch.bincount(y_cpu, weights=correct_cpu * fooled_cpu, minlength=num_classes)
        fooled_all += torch.bincount(y_cpu, weights=fooled_cpu, minlength=num_classes)
        pairs = y_cpu * num_classes + adversarial_prediction.cpu()
        landed += torch.bincount(pairs, weights=correct_cpu, minlength=num_classes**2).view(num_classes, num_classes)
    correct_total = correct_per_class.sum().item()
    x, y = images[: args.timing_images].to(device).float().div(255), labels[: args.timing_images].to(device)
    with torch.no_grad():
        advgan_time = _seconds_per_image(lambda a, b: generator.attack(a, target=target), x, y)
    metrics = {
        "test_images": len(images),
        "target_model": target_name,
        "target_clean_accuracy": correct_total / len(images),
        "epsilon": epsilon,
        "success_rate": fooled_per_class.sum().item() / max(correct_total, 1),
        "success_rate_per_class": {classes[c]: fooled_per_class[c].item() / max(correct_per_class[c].item(), 1) for c in range(num_classes)},
        "success_rate_all_images": fooled_all.sum().item() / len(images),  # the report's definition (counts already-wrong images)
        "success_rate_all_images_per_class": {classes[c]: fooled_all[c].item() / max(totals[c].item(), 1) for c in range(num_classes)},
        "adversarial_accuracy": 1 - fooled_all.sum().item() / len(images),
        # where the attack sends each class: an untargeted generator that collapsed onto one class shows as one column
        "adversarial_predictions": {"rows": "true class (images the target gets right)", "columns": "class after the attack",
                                    "classes": list(classes), "counts": landed.int().tolist()},
        "fgsm_success_rate": fgsm_fooled / max(correct_total, 1),
        "pgd10_success_rate": pgd_fooled / max(correct_total, 1),
        **{f"mean_{key}": value / len(images) for key, value in stats.items()},
        "seconds_per_image_advgan": advgan_time,
        "seconds_per_image_fgsm": _seconds_per_image(fgsm, x, y),
        "seconds_per_image_pgd10": _seconds_per_image(pgd, x, y),
        "timing": f"batches of {len(x)} on {hardware()}",
        "evaluated_on": hardware(),
    }
    print(f"{name}: success rate {metrics['success_rate']:.4f} (correct images), FGSM {metrics['fgsm_success_rate']:.4f}, PGD-10 {metrics['pgd10_success_rate']:.4f}", file=sys.stderr)
    return metrics


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", default=None, help=f"default: whichever of {CLASSIFIERS + (ADVGAN,)} exist")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--checkpoint-root", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--per-class", type=int, default=0, help="test images per class (0 = the whole test split)")
    parser.add_argument("--epsilons", type=int, nargs="*", default=list(EPSILONS), help="L∞ budgets in 1/255 units (none: clean and noisy accuracy only)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--autoattack-images", type=int, default=1000, help="0 skips AutoAttack")
    parser.add_argument("--autoattack-seconds", type=float, default=0, help="stop AutoAttack early after this long (0 = no limit)")
    parser.add_argument("--timing-images", type=int, default=256)
    parser.add_argument("--noise-std", type=float, default=math.sqrt(0.05), help="noise of the noisy-test accuracy (the report's variance 0.05)")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(0)
    names = args.checkpoints or [name for name in CLASSIFIERS + (ADVGAN,) if registry.available(name, args.checkpoint_root)]
    if not names:
        raise SystemExit("No attacks-* checkpoints found. Train them with `python -m training.attacks --model standard` (see docs/attacks.md).")
    images, labels, classes = load_cifar("cifar10", "test", args.data_root, limit_per_class=args.per_class or None)
    command = "python -m evaluation.attacks " + " ".join(sys.argv[1:] if argv is None else argv)
    results = {}
    for name in names:
        started = time.monotonic()
        metrics = evaluate_advgan(name, images, labels, classes, args, device) if name == ADVGAN or name.startswith(ADVGAN + "-") \
            else evaluate_classifier(name, images, labels, args, device)
        metrics["evaluation_seconds"] = round(time.monotonic() - started, 1)
        registry.update_card(name, root=args.checkpoint_root, metrics=metrics, evaluation_command=command.strip())
        results[name] = metrics
    return results


if __name__ == "__main__":
    main()
