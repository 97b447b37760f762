"""Train the attack lab's CIFAR classifiers (standard, Gaussian-noise, adversarial) and AdvGAN.

    python -m training.attacks --model standard              # CPU preset: ResNet-20, ~1 h on 2 cores
    python -m training.attacks --model noise                 # trained on images + N(0, 0.05) noise (the report's noisy model)
    python -m training.attacks --model adversarial           # PGD adversarial training (Madry et al. 2018), ε = 8/255
    python -m training.attacks --model advgan                # AdvGAN against attacks-resnet20-standard (train that first)
    python -m training.attacks --preset gpu --model standard --max-minutes 3
    python -m training.attacks --preset report --model standard   # the report's ResNet-18 on CIFAR-100 (GPU)
    python -m training.attacks --dry-run --model advgan      # a few steps on tiny generated data
    python -m training.attacks --preset teacher              # ImageNet EfficientNet-Lite0 fine-tuned on CIFAR (~15 min)
    python -m training.attacks --model standard --distill-from attacks-efficientnet-lite0-standard --steps 7000

Classifiers: SGD with Nesterov momentum and a one-cycle schedule (linear warm-up, cosine decay), random crop
(pad 4) + horizontal flip (+ AutoAugment's CIFAR-10 policy, drawn per group of images), all on the training
device. With `--max-minutes`, the schedule follows whichever budget runs out first (steps or minutes), so a
time-limited run still ends with an annealed learning rate instead of stopping mid-cycle.

- noise: x + N(0, noise_std²) after augmentation, clamped to [0, 1] so the model's [0, 1] contract holds. The
  report says variance 0.05 (std 0.2236) and did not clamp; the clamp is our deviation.
- adversarial: `--adversarial-attack fgsm-rs` (the CPU default; "Fast is better than free", Wong et al. 2020: one
  FGSM step of α = 1.25 ε from a random start) or `pgd` (the GPU preset; Madry et al. 2018: a random start in the
  ε-ball, then `adversarial_steps` steps of α; the report used 4 PGD steps during adversarial training). Written in plain torch (the GPU machine
  has no torchattacks) and trained from scratch on adversarial images only.
- distillation (`--distill-from`, Hinton et al. 2015): the loss is w·T²·KL(teacher_T ‖ student_T) + (1 − w)·CE.
  The 15,000-image CIFAR-10 subset holds a ResNet-20 trained on labels alone at ~83 % test accuracy; a teacher that
  knows ImageNet (the `teacher` preset) can pass on what 15,000 labels cannot, as far as it is better itself. The
  teacher labels `distill_views` augmented views of every training image once, before training, and the student trains on exactly
  those views ("consistent teaching", Beyer et al. 2022): on the CPU a teacher pass costs ~6 student steps.
  `--distill-mixup 1.0` makes each view a mixup of two training images, which the teacher labels as it is, so the
  student also learns the teacher's answers between images (validation 89.8 vs 87.6 % with plain views; docs/attacks.md).
- advgan: G and D of models/attacks.py, loss L_adv + α·L_GAN + β·L_hinge (spec trivae-advgan §B4) with the C&W
  margin as L_adv (untargeted, or towards `--target-class`), an LSGAN L_GAN, and L_hinge = max(0, ‖δ‖₂ − c).
  `--advgan-loss complement` swaps the margin for −log(1 − p_y), which leaves the images already fooled alone.
  `--pgd-guide-weight w` adds w·‖δ/ε − δ_PGD/ε‖² (pixel mean) on the images G does not fool yet (on every image
  with `--pgd-guide-images all`), towards the PGD-10 perturbation of each training image (made once, before training).
  Untargeted, `--aim runner-up` pushes each image past the class the target ranks second on it instead of past
  whichever class leads (an experiment against the collapse into one target class; docs/attacks.md).
  The L∞ bound ε is built into G (ε·tanh). The target classifier is fixed (eval mode, no gradients to it).

Writes `attacks-<architecture>-<model>` (`attacks-resnet20-standard`, ...) or `attacks-advgan` (the generator
only); then `python -m evaluation.attacks` measures them and writes the metrics into their cards.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from models import registry
from models.attacks import (
    CIFAR100_MEAN,
    CIFAR100_STD,
    AdvGANDiscriminator,
    AdvGANDiscriminatorConfig,
    AdvGANGenerator,
    AdvGANGeneratorConfig,
    CifarEfficientNet,
    CifarResNet,
    CifarResNet18,
    EfficientNetConfig,
    ResNet18Config,
    ResNetConfig,
    set_range_check,
)
from models.runtime import autocast
from nndl_data.attacks import fake_cifar, load_cifar
from training.common import BaseTrainConfig, batch_indices, initialise_from, parse_config, progress
from training.loop import Run

SLUG = "attacks"
MODELS = ("standard", "noise", "adversarial", "advgan")
ARCHITECTURES = ("resnet20", "resnet18", "efficientnet-lite0")


@dataclass
class TrainConfig(BaseTrainConfig):
    model: str = "standard"  # standard | noise | adversarial | advgan
    architecture: str = "resnet20"  # resnet20 (He et al. CIFAR ResNet) | resnet18 (the report's CIFAR ResNet-18)
    dataset: str = "cifar10"  # cifar10 | cifar100 (torchvision pickle layout, when you have it)
    name: str = ""  # checkpoint name; default attacks-<architecture>[-cifar100]-<model>, or attacks-advgan
    steps: int = 3500  # ~30 epochs of the 15k-image CIFAR-10 subset at batch 128
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd (Nesterov) | adam (the report's)
    learning_rate: float = 0.1
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.15
    label_smoothing: float = 0.0
    autoaugment_groups: int = 0  # 0 = off; else AutoAugment (CIFAR-10 policy) with this many policy draws per batch
    validation_size: int = 500  # held out of the training split for the curves
    noise_std: float = math.sqrt(0.05)  # the report's "variance 0.05"
    epsilon: float = 8 / 255  # L∞ budget of adversarial training and of AdvGAN
    adversarial_attack: str = "fgsm-rs"  # fgsm-rs (CPU: 2 passes a step) | pgd (the GPU preset)
    adversarial_steps: int = 4  # PGD steps during training (the report: 4)
    adversarial_alpha: float = 0.0  # 0 = 2.5 ε / steps for PGD (Madry), 1.25 ε for fgsm-rs (Wong et al.)
    # AdvGAN
    target: str = "attacks-resnet20-standard"  # checkpoint of the fixed classifier G attacks
    target_class: int = -1  # -1 = untargeted; else every image is pushed towards this class
    # Untargeted only: "any" = past the best other class (C&W); "runner-up" = past the class the target ranks second on
    # the clean image. With "any", G collapsed into a near-universal "make it a truck" attack (docs/attacks.md).
    aim: str = "any"
    # L_adv: "cw" = the C&W margin (AdvGAN's); "complement" = −log(1 − p_y) untargeted (−log p_t targeted), whose
    # gradient fades with p_y, so images already fooled stop pulling G and the ones not yet fooled get the whole step.
    advgan_loss: str = "cw"
    # > 0 (untargeted): on the images G does not fool yet, also pull G's δ towards the PGD-10 perturbation of that
    # image, made once before training (pgd_guide_bank). PGD spreads its images over the classes (it lands on the
    # clean runner-up 66 % of the time) where G collapsed onto one; the guide shows G image-specific directions.
    pgd_guide_weight: float = 0.0
    # which images the guide pulls: "unfooled" (the ones G does not fool yet) or "all", so that the images already
    # fooled are also drawn towards PGD's spread of classes and away from the collapse onto one
    pgd_guide_images: str = "unfooled"
    # α, c and κ: the settings of the committed generator's last stage (docs/attacks.md). Against the labels-only target
    # (logit std 4.2), raising κ from 2 to 10, then 20, lifted test success 86.8 → 89.9 → 90.3 %: a saturated C&W
    # term leaves images just across the boundary. The distilled target's logits are smaller (std 1.5), where κ = 20
    # never clips; κ = 5 lifted test success 85.3 → 86.0 % (a context pathway then 86.8 %, the PGD guide 87.2 %, the target's features 91.8 %).
    gan_weight: float = 0.1  # α (the report: 15); ε·tanh already bounds δ, so D only needs to shape its texture
    hinge_weight: float = 10.0  # β (the report: 10)
    hinge_bound: float = 1.74  # c, on ‖δ‖₂ per image: the whole 8/255 box; the report's "8/25" read as L2
    margin: float = 5.0  # κ of the C&W loss: G keeps pushing until the wrong logit leads by κ
    generator_learning_rate: float = 1e-3
    generator_channels: tuple[int, int, int] = (8, 16, 32)
    generator_residual_blocks: int = 4
    generator_full_resolution: bool = False  # stride-1 layers throughout instead of AdvGAN_pytorch's 6×6 bottleneck
    generator_context_size: int = 0  # > 0: a global context pathway (FiLM) of this width; grows an --init-from parent
    generator_target_features: int = 0  # 64: G is also conditioned on the target ResNet-20's features (AdvGAN++); grows a parent
    generator_refine_blocks: int = 0  # extra gated residual blocks (a deeper G); grow a parent
    # Adam's rate for those three grown pathways: they start from scratch while the rest is fine-tuned at
    # --generator-learning-rate. At 2e-4 the context's zero-initialised output layer had moved by 4e-4 on average after 500 steps.
    context_learning_rate: float = 1e-3
    # knowledge distillation (classifiers)
    distill_from: str = ""  # checkpoint of a stronger classifier on the same split whose soft labels the model learns
    distill_views: int = 8  # augmented views per training image, labelled once by the teacher (cached in the run folder)
    distill_temperature: float = 4.0
    distill_weight: float = 0.9  # w: share of the distillation term, the rest is cross-entropy on the true labels
    # 0 = off; else each view is a mixup of two images, share ~ Beta(a, a) folded into [0.5, 1] so the view's own
    # image dominates and keeps its label for the cross-entropy term ("function matching", Beyer et al. 2022)
    distill_mixup: float = 0.0
    log_every: int = 50
    eval_every: int = 500
    save_every: int = 500


PRESETS = {
    "cpu": TrainConfig(),
    # One H100, three runs side by side: the time limit (--max-minutes) decides the length.
    # AdvGAN on the GPU: a full-resolution generator (the AdvGAN_pytorch layout's 6×6 bottleneck plateaued at ~35 %)
    # with the global context pathway of the committed generator (eleventh session), its PGD guide (twelfth) and the
    # target's features (fourteenth; docs/attacks.md).
    "gpu": TrainConfig(steps=30_000, batch_size=256, learning_rate=0.15, autoaugment_groups=8, adversarial_attack="pgd",
                       generator_full_resolution=True, generator_channels=(32, 64, 64), generator_context_size=128, generator_target_features=64,
                       pgd_guide_weight=1.0,
                       log_every=100, eval_every=1000, save_every=1000),
    # The distillation teacher: ImageNet EfficientNet-Lite0 fine-tuned at 128 px, 4 epochs of the 14,500 images.
    # fp32: its depthwise convolutions run slower in bf16 on an AMX CPU (benchmarks/precision.py); on a GPU pass --precision bf16.
    "teacher": TrainConfig(architecture="efficientnet-lite0", steps=900, batch_size=64, learning_rate=0.02, weight_decay=5e-5,
                           warmup_fraction=0.05, label_smoothing=0.1, autoaugment_groups=4, precision="fp32"),
    # The report's ResNet-18 on CIFAR-100: Adam 1e-3, weight decay 1e-4, 20 epochs of 45k at batch 256, AutoAugment.
    "report": TrainConfig(
        architecture="resnet18", dataset="cifar100", optimizer="adam", learning_rate=1e-3, weight_decay=1e-4,
        steps=20 * 45_000 // 256, batch_size=256, autoaugment_groups=16, validation_size=5000, warmup_fraction=0.0,
    ),
}


def checkpoint_name(cfg: TrainConfig) -> str:
    if cfg.name:
        return cfg.name
    if cfg.model == "advgan":
        return "attacks-advgan"
    return "-".join(["attacks", cfg.architecture] + (["cifar100"] if cfg.dataset == "cifar100" else []) + [cfg.model])


def _tiny_config(cfg: TrainConfig) -> TrainConfig:
    return dataclasses.replace(cfg, steps=min(cfg.steps, 4), batch_size=8, validation_size=8, adversarial_steps=2, log_every=1, eval_every=2, save_every=2,
                               autoaugment_groups=min(cfg.autoaugment_groups, 2))


def build_classifier(cfg: TrainConfig, num_classes: int) -> torch.nn.Module:
    if cfg.architecture == "resnet20":
        stats = {"mean": CIFAR100_MEAN, "std": CIFAR100_STD} if cfg.dataset == "cifar100" else {}
        return CifarResNet(ResNetConfig(num_classes=num_classes, **({"depth": 8} if cfg.dry_run else {}), **stats))
    if cfg.architecture == "resnet18":
        return CifarResNet18(ResNet18Config(num_classes=num_classes))
    if cfg.architecture == "efficientnet-lite0":
        return CifarEfficientNet.from_imagenet(EfficientNetConfig(num_classes=num_classes))
    raise ValueError(f"unknown architecture {cfg.architecture!r}; choose one of {ARCHITECTURES}")


def _load_data(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if cfg.dry_run:
        images, labels = fake_cifar(48, seed=cfg.seed)
        return images, labels, [f"class {index}" for index in range(10)]
    return load_cifar(cfg.dataset, "train", cfg.data_root)


def augment(images: torch.Tensor, autoaugment_groups: int, policy: v2.AutoAugment | None) -> torch.Tensor:
    """uint8 (B, 3, 32, 32) on the device → float [0, 1]: (AutoAugment), random crop with 4 px zero padding, flip."""
    if autoaugment_groups and policy is not None:
        images = torch.cat([policy(group) for group in images.chunk(autoaugment_groups)])
    return crop_flip(images.float().div(255))


def crop_flip(x: torch.Tensor) -> torch.Tensor:
    """Random crop with 4 px zero padding and a random horizontal flip of a float (B, C, 32, 32) batch. Any C: an
    image stacked with a per-pixel target (say a perturbation) on the channels moves with it."""
    batch, channels, device = x.shape[0], x.shape[1], x.device
    padded = F.pad(x, (4, 4, 4, 4))  # (B, C, 40, 40)
    offsets = torch.randint(0, 9, (2, batch), device=device)
    rows = (offsets[0, :, None] + torch.arange(32, device=device))[:, None, :, None]  # (B, 1, 32, 1)
    cols = (offsets[1, :, None] + torch.arange(32, device=device))[:, None, None, :]  # (B, 1, 1, 32)
    x = padded[torch.arange(batch, device=device)[:, None, None, None], torch.arange(channels, device=device)[None, :, None, None], rows, cols]
    flip = torch.rand(batch, device=device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)  # (B, C, 32, 32)


def pgd_perturb(model, images, labels, epsilon: float, alpha: float, steps: int, start: torch.Tensor | None = None) -> torch.Tensor:
    """L∞ PGD from a uniform random start (steps=1 with α = 1.25 ε is FGSM-RS); returns x + δ in [0, 1]. `start`: that
    random δ, when it is drawn for a whole batch of which `images` is one process's part."""
    delta = torch.empty_like(images).uniform_(-epsilon, epsilon) if start is None else start
    delta = ((images + delta).clamp(0, 1) - images).requires_grad_(True)
    for _ in range(steps):
        loss = F.cross_entropy(model(images + delta), labels)
        (gradient,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * gradient.sign()).clamp(-epsilon, epsilon)
        delta = ((images + delta).clamp(0, 1) - images).requires_grad_(True)
    return (images + delta).detach()


def schedule_progress(step: int, cfg: TrainConfig, elapsed_s: float) -> float:
    """Fraction of the run done: by steps, or by minutes when --max-minutes is set and runs out first."""
    by_steps = step / cfg.steps
    return max(by_steps, elapsed_s / (cfg.max_minutes * 60)) if cfg.max_minutes else by_steps


def learning_rate_at(fraction: float, peak: float, warmup: float) -> float:
    if fraction < warmup:
        return peak * (0.1 + 0.9 * fraction / warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min((fraction - warmup) / max(1 - warmup, 1e-8), 1.0)))


@torch.no_grad()
def accuracy(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy on uint8 images (N, 3, 32, 32)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size].to(device).float().div(255))
        correct += (logits.argmax(1) == labels[start : start + batch_size].to(device)).sum().item()
    model.train(was_training)
    return correct / max(len(images), 1)


def cached_bank(path: Path, run: Run, make):
    """What `make()` returns, made once per run and kept in the run folder (written atomically, by process 0), so a
    resumed run loads it instead of redoing it. Called before `run.resume` starts the clock: --max-minutes is for
    training. Under torchrun every process makes it (drawing the same random numbers) or every process loads it."""
    if run.agree(path.exists()):
        return torch.load(path, map_location=run.device, weights_only=True)
    bank = make()
    if run.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(bank, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
    return bank


def teacher_views(cfg: TrainConfig, images: torch.Tensor, policy: v2.AutoAugment | None, device: torch.device) -> dict:
    """`distill_views` augmented copies of every training image, uint8 (V·N, 3, 32, 32), and the teacher's logits on
    each, float16 (V·N, classes)."""
    require_same_split(cfg, cfg.distill_from, "a teacher that saw the held-out images would leak them into the student")
    teacher = registry.load(cfg.distill_from, root=cfg.checkpoint_root, device=device).to(memory_format=torch.channels_last)
    views, logits = [], []
    mixup = torch.distributions.Beta(cfg.distill_mixup, cfg.distill_mixup) if cfg.distill_mixup else None
    with torch.no_grad():
        for _ in progress(0, cfg.distill_views, f"views labelled by {cfg.distill_from}"):
            for start in range(0, len(images), 250):
                chunk = images[start : start + 250]
                groups = len(chunk) if cfg.autoaugment_groups else 0  # a policy draw per image: done once
                x = augment(chunk, groups, policy)
                if cfg.distill_mixup:  # the partner is another image: the training images are in random order
                    partner = augment(chunk.roll(1, 0), groups, policy)
                    share = mixup.sample((len(x), 1, 1, 1))
                    own = torch.maximum(share, 1 - share)  # folded into [0.5, 1]: the view's own image dominates
                    x = own * x + (1 - own) * partner
                view = x.mul(255).round().to(torch.uint8)  # the teacher labels exactly the 8-bit view the student sees
                logits.append(teacher(view.float().div(255).contiguous(memory_format=torch.channels_last)).half())
                views.append(view)
    return {"views": torch.cat(views), "logits": torch.cat(logits)}


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(softmax(teacher/T) ‖ softmax(student/T)), Hinton et al.'s scaling so gradients keep their size across T."""
    student = F.log_softmax(logits / temperature, dim=1)
    teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * temperature**2


def _optimizer(cfg: TrainConfig, parameters):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=cfg.learning_rate, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose sgd or adam")


def _split(cfg: TrainConfig, images: torch.Tensor, labels: torch.Tensor):
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(cfg.seed + 7))
    validation, train = order[: cfg.validation_size], order[cfg.validation_size :]
    return images[train], labels[train], images[validation], labels[validation]


def _split_description(cfg: TrainConfig) -> str:
    return f"train minus {cfg.validation_size} held-out images (seed {cfg.seed})"


def require_same_split(cfg: TrainConfig, checkpoint: str, why: str) -> None:
    """The split is seeded by --seed, so a run whose seed differs from the model it builds on holds out other images.
    A dry run against a real checkpoint (or the reverse) has nothing to leak: one side saw only generated images."""
    data = registry.load_card(checkpoint, root=cfg.checkpoint_root).get("data", {})
    if data.get("generated_dry_run_data", False) != cfg.dry_run:
        return
    split = data.get("split")
    if split != _split_description(cfg):
        raise ValueError(f"{checkpoint} was trained on '{split}', this run holds out '{_split_description(cfg)}': "
                         f"{why}. Use the same --seed and --validation-size.")


def _prepare(cfg: TrainConfig):
    """What both trainers start with: checkpoint name, the run (folder `runs/attacks/<name>`, seeded device), the
    train/validation split."""
    name = checkpoint_name(cfg)
    run = Run(cfg, f"{SLUG}/{name}")
    images, labels, classes = _load_data(cfg)
    train_images, train_labels, val_images, val_labels = _split(cfg, images, labels)
    return name, run, classes, train_images.to(run.device), train_labels.to(run.device), val_images, val_labels


def _schedule_position(cfg: TrainConfig, run: Run) -> tuple[dict, callable]:
    """The one-cycle schedule's position, set before each step (`position["fraction"]`), and the check that ends the
    run when it reaches 1 (by steps, or by --max-minutes of training over all of the run's sessions). Under torchrun
    the processes agree on the clock, so that they use the same learning rate."""
    position = {"fraction": 0.0}

    def schedule_ends(step: int) -> bool:
        position["fraction"] = schedule_progress(step, cfg, run.agree(run.elapsed()) if cfg.max_minutes else 0.0)
        return position["fraction"] >= 1

    return position, schedule_ends


def train_classifier(cfg: TrainConfig) -> Path | None:
    if cfg.model not in ("standard", "noise", "adversarial"):
        raise ValueError(f"unknown model {cfg.model!r}; choose one of {MODELS}")
    name, run, classes, train_images, train_labels, val_images, val_labels = _prepare(cfg)
    device = run.device
    model = build_classifier(cfg, len(classes)).to(device)
    model = model.to(memory_format=torch.channels_last)  # ~10 % faster on CPU too
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        set_range_check(model, False)  # the check synchronises with the GPU; inputs here are in [0, 1] by construction
    trained = run.wrap(model)
    optimizer = _optimizer(cfg, model.parameters())
    policy = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10) if cfg.autoaugment_groups else None
    alpha = cfg.adversarial_alpha or (1.25 * cfg.epsilon if cfg.adversarial_attack == "fgsm-rs" else 2.5 * cfg.epsilon / cfg.adversarial_steps)
    attack_steps = 1 if cfg.adversarial_attack == "fgsm-rs" else cfg.adversarial_steps
    if cfg.adversarial_attack not in ("pgd", "fgsm-rs"):
        raise ValueError(f"unknown adversarial attack {cfg.adversarial_attack!r}; choose pgd or fgsm-rs")

    bank = cached_bank(run.run_dir / "teacher-views.pt", run, lambda: teacher_views(cfg, train_images, policy, device)) if cfg.distill_from else None
    start = run.resume(model=model, optimizer=optimizer)
    parent = initialise_from(cfg, model, start, run.run_dir, device)
    model.train()
    position, schedule_ends = _schedule_position(cfg, run)

    def step(step: int) -> dict:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(position["fraction"], cfg.learning_rate, cfg.warmup_fraction)
        teacher_logits = None
        if bank is None:  # augmentations, noise and random starts are drawn for the whole batch, then split
            index = batch_indices(len(train_images), cfg.batch_size, step, cfg.seed).to(device)
            x = augment(train_images[index], cfg.autoaugment_groups, policy)  # (B, 3, 32, 32) in [0, 1]
            y = train_labels[index]
        else:
            index = batch_indices(len(bank["views"]), cfg.batch_size, step, cfg.seed).to(device)
            x, teacher_logits = bank["views"][index].float().div(255), run.shard(bank["logits"][index].float())
            y = train_labels[index % len(train_labels)]  # view v of image i sits at v·N + i
        if cfg.model == "noise":
            x = (x + cfg.noise_std * torch.randn_like(x)).clamp(0, 1)
        random_start = torch.empty_like(x).uniform_(-cfg.epsilon, cfg.epsilon) if cfg.model == "adversarial" else None  # PGD's δ
        x, y = run.shard(x), run.shard(y)  # this process's part
        if random_start is not None:  # the attack runs on the model itself: no gradient of the weights to average
            with run.autocast():
                x = pgd_perturb(model, x, y, cfg.epsilon, alpha, attack_steps, start=run.shard(random_start))
        x = x.contiguous(memory_format=torch.channels_last)
        with run.autocast():
            logits = trained(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            if teacher_logits is not None:
                loss = cfg.distill_weight * distillation_loss(logits.float(), teacher_logits, cfg.distill_temperature) + (1 - cfg.distill_weight) * loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"epoch": round((step + 1) * cfg.batch_size / len(train_images), 2), "loss": loss,
                "train_accuracy": (logits.argmax(1) == y).float().mean(), "lr": optimizer.param_groups[0]["lr"]}

    def validate(done: int) -> dict:
        row = {"val_accuracy": accuracy(model, val_images, val_labels)}
        if cfg.model == "adversarial":
            model.eval()
            x_val, y_val = val_images[:256].to(device).float().div(255), val_labels[:256].to(device)
            with run.autocast():
                x_adv = pgd_perturb(model, x_val, y_val, cfg.epsilon, cfg.epsilon / 4, 10)
            with torch.no_grad():
                row["val_pgd10_accuracy"] = (model(x_adv).argmax(1) == y_val).float().mean().item()
            model.train()
        return row

    steps_done = run.train(cfg.steps, step, validate=validate, log_every=cfg.log_every, eval_every=cfg.eval_every,
                           save_every=cfg.save_every, stop_before=schedule_ends)
    run.close()
    if not run.is_main:
        return None
    final_validation = accuracy(model, val_images, val_labels)
    print(f"{name}: {steps_done} steps, validation accuracy {final_validation:.4f}", file=sys.stderr)
    model = set_range_check(model.to("cpu", memory_format=torch.contiguous_format).float(), True)
    data = {
        "dataset": cfg.dataset, "split": _split_description(cfg),
        "train_images": len(train_images), "data_root": str(cfg.data_root or "$NNDL_DATA_ROOT or ../shared/data"),
        "generated_dry_run_data": cfg.dry_run,
    }
    role = {
        "standard": "standard training with augmentation" + (f", distilled from {cfg.distill_from}" if cfg.distill_from else ""),
        "noise": f"trained on augmented images + Gaussian noise (std {cfg.noise_std:.4f}, clamped to [0, 1])",
        "adversarial": f"adversarially trained ({cfg.adversarial_attack}, ε = {cfg.epsilon * 255:.0f}/255, {attack_steps} step(s) of α = {alpha * 255:.2f}/255)",
    }[cfg.model]
    return run.save_checkpoint(model, name, data=data, half=True, role=role, classes=classes, validation_accuracy=round(final_validation, 4),
                               finished=run.finished(cfg.steps), initialised_from=parent)


def _load_target(cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    if cfg.dry_run and not registry.available(cfg.target, cfg.checkpoint_root):
        return CifarResNet(ResNetConfig(depth=8)).to(device).eval()  # random stand-in: checks the code path only
    require_same_split(cfg, cfg.target, "validation success would be measured on images the target was trained on")
    return registry.load(cfg.target, root=cfg.checkpoint_root, device=device)


def cw_margin_loss(logits: torch.Tensor, labels: torch.Tensor, margin: float, targeted: bool,
                   toward: torch.Tensor | None = None) -> torch.Tensor:
    """C&W loss (Carlini & Wagner 2017) as AdvGAN uses it: untargeted max(Z_y − max_{i≠y} Z_i, −κ); targeted swaps roles.
    `toward` (untargeted): one class per image to push past instead of the best other."""
    one_hot = F.one_hot(labels, logits.shape[1]).bool()
    chosen = logits[one_hot]  # (B,)
    if toward is not None:
        best_other = logits.gather(1, toward[:, None]).squeeze(1)  # (B,)
    else:
        best_other = logits.masked_fill(one_hot, float("-inf")).amax(1)  # (B,)
    gap = best_other - chosen if targeted else chosen - best_other
    return gap.clamp(min=-margin).mean()


def complement_loss(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Untargeted −log(1 − p_y), computed as logsumexp(all logits) − logsumexp(the others) so that it stays finite
    at p_y → 1; targeted, the cross-entropy towards the target class. ∂/∂z_y = p_y: an image G already fools
    (p_y ≈ 0) adds almost nothing, where the C&W margin keeps pulling it until the lead reaches κ."""
    if targeted:
        return F.cross_entropy(logits, labels)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return (logits.logsumexp(1) - others.logsumexp(1)).mean()


@torch.no_grad()
def runner_up(target: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The class the target ranks second (first if it errs) on the clean images: the nearest one to push them to."""
    logits = target(images).float()
    return logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).argmax(1)  # (B,)


def pgd_guide_bank(cfg: TrainConfig, target: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Untargeted PGD-10 perturbations (ε, α = ε/4) of the target on every training image, float16 (N, 3, 32, 32)."""
    chunks = []
    batches = list(zip(images.split(250), labels.split(250)))
    for index in progress(0, len(batches), "PGD-10 guide (chunks of 250)"):
        x, y = batches[index][0].to(device).float().div(255), batches[index][1].to(device)
        with autocast(cfg.precision, device):
            chunks.append((pgd_perturb(target, x, y, cfg.epsilon, cfg.epsilon / 4, 10) - x).half())
    return torch.cat(chunks)


def train_advgan(cfg: TrainConfig) -> Path | None:
    if cfg.aim not in ("any", "runner-up") or (cfg.target_class >= 0 and cfg.aim != "any"):  # before any data is loaded
        raise SystemExit(f"--aim must be 'any' or 'runner-up' (untargeted only), not {cfg.aim!r}")
    if cfg.advgan_loss not in ("cw", "complement") or (cfg.advgan_loss == "complement" and cfg.aim != "any"):
        raise SystemExit(f"--advgan-loss must be 'cw' or 'complement' (with --aim any), not {cfg.advgan_loss!r}")
    if cfg.pgd_guide_images not in ("unfooled", "all"):
        raise SystemExit(f"--pgd-guide-images must be 'unfooled' or 'all', not {cfg.pgd_guide_images!r}")
    if cfg.pgd_guide_weight and cfg.target_class >= 0:
        raise SystemExit("--pgd-guide-weight guides untargeted attacks only (PGD-10 is run untargeted): pass --pgd-guide-weight 0")
    name, run, classes, train_images, train_labels, val_images, val_labels = _prepare(cfg)
    device = run.device
    target = _load_target(cfg, device)
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    if device.type == "cuda":
        set_range_check(target, False)
    generator = AdvGANGenerator(AdvGANGeneratorConfig(epsilon=cfg.epsilon, channels=cfg.generator_channels, residual_blocks=cfg.generator_residual_blocks,
                                                      full_resolution=cfg.generator_full_resolution, context_size=cfg.generator_context_size,
                                                      target_features=cfg.generator_target_features, refine_blocks=cfg.generator_refine_blocks)).to(device)
    discriminator = AdvGANDiscriminator(AdvGANDiscriminatorConfig()).to(device)
    # Under torchrun G and D average their gradients over the processes; G's step reads D unwrapped (D's gradients
    # from it are discarded: D's step zeroes them first).
    trained_generator, trained_discriminator = run.wrap(Attacking(generator)), run.wrap(discriminator)
    adam = dict(lr=cfg.generator_learning_rate, betas=(0.5, 0.999))
    grown = [parameter for name, parameter in generator.named_parameters() if name.startswith(generator.grown_prefixes)]
    rest = [parameter for name, parameter in generator.named_parameters() if not name.startswith(generator.grown_prefixes)]
    g_optimizer = torch.optim.Adam([{"params": rest}] + ([{"params": grown, "lr": cfg.context_learning_rate}] if grown else []), **adam)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), **adam)
    # each parameter group's peak rate, kept out of the optimizer's state so runs saved with one group still resume
    peaks = {g_optimizer: [group["lr"] for group in g_optimizer.param_groups], d_optimizer: [cfg.generator_learning_rate]}
    targeted = cfg.target_class >= 0

    guide_bank = (cached_bank(run.run_dir / "pgd_guide.pt", run, lambda: pgd_guide_bank(cfg, target, train_images, train_labels, device))
                  if cfg.pgd_guide_weight else None)
    start = run.resume(generator=generator, discriminator=discriminator, g_optimizer=g_optimizer, d_optimizer=d_optimizer)
    parent = initialise_from(cfg, generator, start, run.run_dir, device)  # the generator only: D starts afresh and catches up within steps
    position, schedule_ends = _schedule_position(cfg, run)

    def step(step: int) -> dict:
        for optimizer, optimizer_peaks in peaks.items():
            for group, peak in zip(optimizer.param_groups, optimizer_peaks, strict=True):
                group["lr"] = learning_rate_at(position["fraction"], peak, 0.0)
        index = batch_indices(len(train_images), cfg.batch_size, step, cfg.seed).to(device)
        guide = None
        if guide_bank is None:
            x = augment(train_images[index], 0, None)  # (B, 3, 32, 32) crop + flip only, drawn for the whole batch
        else:  # the PGD perturbation, in units of ε, is cropped and flipped with its image
            x, guide = crop_flip(torch.cat([train_images[index].float().div(255), guide_bank[index].float() / cfg.epsilon], 1)).split(3, 1)
            guide = run.shard(guide)
        y = train_labels[index] if not targeted else torch.full_like(train_labels[index], cfg.target_class)
        x, y = run.shard(x), run.shard(y)  # this process's part
        with run.autocast():
            x_adv = trained_generator(x, target).float()
            real, fake = trained_discriminator(x).float(), trained_discriminator(x_adv.detach()).float()  # (B, 1, 2, 2)
        d_loss = F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake))
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()

        with run.autocast():
            fake = discriminator(x_adv).float()
            logits = target(x_adv).float()
        gan_loss = F.mse_loss(fake, torch.ones_like(fake))
        perturbation = x_adv - x
        hinge_loss = (perturbation.flatten(1).norm(dim=1) - cfg.hinge_bound).clamp(min=0).mean()
        if cfg.advgan_loss == "complement":
            adversarial_loss = complement_loss(logits, y, targeted)
        else:
            toward = runner_up(target, x, y) if cfg.aim == "runner-up" else None
            adversarial_loss = cw_margin_loss(logits, y, cfg.margin, targeted, toward)
        g_loss = adversarial_loss + cfg.gan_weight * gan_loss + cfg.hinge_weight * hinge_loss
        row = {"epoch": round((step + 1) * cfg.batch_size / len(train_images), 2)}
        if guide is not None:
            per_image = ((perturbation / cfg.epsilon - guide) ** 2).mean((1, 2, 3))  # (B,)
            if cfg.pgd_guide_images == "unfooled":
                per_image = per_image * (logits.argmax(1) == y)
            row["guide_loss"] = per_image.mean()
            g_loss = g_loss + cfg.pgd_guide_weight * row["guide_loss"]
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()
        fooled = (logits.argmax(1) == y) if targeted else (logits.argmax(1) != y)
        return row | {"d_loss": d_loss, "g_loss": g_loss, "adversarial_loss": adversarial_loss, "gan_loss": gan_loss, "hinge_loss": hinge_loss,
                      "l2": perturbation.flatten(1).norm(dim=1).mean(), "train_success_rate": fooled.float().mean(), "lr": g_optimizer.param_groups[0]["lr"]}

    def validate(done: int) -> dict:
        return {"val_success_rate": success_rate(generator, target, val_images, val_labels, cfg.target_class)}

    steps_done = run.train(cfg.steps, step, validate=validate, log_every=cfg.log_every, eval_every=cfg.eval_every,
                           save_every=cfg.save_every, stop_before=schedule_ends)
    run.close()
    if not run.is_main:
        return None
    validation = success_rate(generator, target, val_images, val_labels, cfg.target_class)
    print(f"{name}: {steps_done} steps, validation success rate {validation:.4f} (correctly classified images)", file=sys.stderr)
    data = {
        "dataset": cfg.dataset, "split": _split_description(cfg),
        "train_images": len(train_images), "target_model": cfg.target, "generated_dry_run_data": cfg.dry_run,
    }
    return run.save_checkpoint(generator, name, data=data, half=True, finished=run.finished(cfg.steps), classes=classes,
                               role=f"AdvGAN generator against {cfg.target}, L∞ ≤ {cfg.epsilon * 255:.0f}/255, "
                                    + ("untargeted" if not targeted else f"targeted at class {cfg.target_class}"),
                               validation_success_rate=round(validation, 4), initialised_from=parent)


class Attacking(torch.nn.Module):
    """`generator.attack(images, target=...)` as a forward pass, so that DistributedDataParallel (which hooks forward)
    can wrap the generator; in a single process it is just that call."""

    def __init__(self, generator: AdvGANGenerator):
        super().__init__()
        self.generator = generator

    def forward(self, images: torch.Tensor, target: torch.nn.Module) -> torch.Tensor:
        return self.generator.attack(images, target=target)


@torch.no_grad()
def success_rate(generator, target, images: torch.Tensor, labels: torch.Tensor, target_class: int = -1, batch_size: int = 500) -> float:
    """Share of the images the target classifies correctly that G's attack flips (or sends to `target_class`)."""
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    fooled = counted = 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().div(255)
        y = labels[start : start + batch_size].to(device)
        correct = target(x).argmax(1) == y
        prediction = target(generator.attack(x, target=target)).argmax(1)
        hit = prediction == target_class if target_class >= 0 else prediction != y
        fooled += (hit & correct).sum().item()
        counted += correct.sum().item()
    generator.train(was_training)
    return fooled / max(counted, 1)


def main(cfg: TrainConfig) -> Path | None:
    if cfg.dry_run:
        cfg = _tiny_config(cfg)
    if cfg.model == "advgan":
        return train_advgan(cfg)
    return train_classifier(cfg)


if __name__ == "__main__":
    main(parse_config(TrainConfig, PRESETS))
