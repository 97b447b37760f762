"""Train CycleGAN (apple ↔ orange or summer ↔ winter): two ResNet generators, two 70×70 PatchGANs.

    python -m training.cyclegan --dataset apple2orange                 # CPU preset (~1 h on 2 cores)
    python -m training.cyclegan --dataset summer2winter --preset report  # the report: 128 px, 20 epochs (GPU)
    python -m training.cyclegan --preset paper                         # the paper: 256 px, 200 epochs (GPU, long)
    python -m training.cyclegan --dry-run                              # a few steps on tiny generated data

Objective (spec §2.3; official pytorch-CycleGAN): least-squares GAN losses, cycle L1 with λ = 10, identity L1
with 0.5·λ = 5, one 50-image history pool per discriminator, Adam 2e-4 with β1 = 0.5 for G and D, batch 1;
the learning rate is constant for the first half of the epochs and decays linearly to zero over the second half
(the report trained 20 epochs with no decay; the paper 100 + 100). L1 terms are computed in the official
[-1, 1] units so that λ means what it means there. An epoch is max(|A|, |B|) steps, as in the official loader.

`--max-minutes M --fit-to-time` shrinks the schedule, after timing the first steps, to what fits in M minutes:
constant and decay phases and snapshot points keep their proportions, and the card records the epochs actually
trained. Early and middle generators are kept as int8 snapshots (default: epochs 1 and 10 of 20) for the app's
progress slider. Writes checkpoint `cyclegan-<dataset>` (both generators, fp16) with the log and snapshots;
then run `python -m evaluation.cyclegan --dataset <dataset>` to measure it.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from models import registry
from models.cyclegan import (
    CycleGAN,
    CycleGANConfig,
    CycleGANDiscriminator,
    CycleGANDiscriminatorConfig,
    CycleGANGeneratorConfig,
    FrozenFeatures,
    ProjectedDiscriminator,
    ProjectedDiscriminatorConfig,
    save_snapshot,
)
from nndl_data.cyclegan import dataset_info, load_split, random_crop_flip
from training.common import BaseTrainConfig, batch_indices, initialise_from, parse_config
from training.loop import Run

SLUG = "cyclegan"
SNAPSHOT_LABELS = ("early", "middle")


@dataclass
class TrainConfig(BaseTrainConfig):
    dataset: str = "apple2orange"  # apple2orange | summer2winter
    image_size: int = 96  # training crop
    load_size: int = 0  # images are resized to this before the random crop; 0 = image_size · 286/256 (official)
    filters: int = 32  # generator width (official 64)
    residual_blocks: int = 6
    upsampling: str = "resize_conv"  # or "transposed" (the report's ConvTranspose2d)
    discriminator_filters: int = 32
    discriminator: str = "patchgan"  # patchgan (the paper's 70×70) | projected (heads on frozen EfficientNet-Lite1 features)
    projected_stages: tuple[int, ...] = (2, 4, 6)  # --discriminator projected: the Lite1 stages judged
    projected_channels: int = 64  # width of each projected head
    backbone_size: int = 0  # --discriminator projected: resize images to this before the frozen backbone (0 = crop size)
    gan_loss: str = "lsgan"  # lsgan (official) | hinge (Projected GAN)
    domain_negatives: float = 0.0  # weight of the *other* domain's real images as negatives in each discriminator's loss (0 = official)
    init_discriminators: str = ""  # a run state (runs/<run>/last.pt) whose discriminators start this run (with --init-from)
    batch_size: int = 1
    epochs: float = 4.0  # an epoch = max(|trainA|, |trainB|) images of each domain
    decay_epochs: float = 2.0  # the last `decay_epochs` decay the learning rate linearly to 0
    learning_rate: float = 2e-4
    beta1: float = 0.5
    lambda_cycle: float = 10.0
    identity_weight: float = 0.5  # identity loss weight as a fraction of lambda_cycle (0.5 → 5)
    pool_size: int = 50
    early_snapshot: float = 0.05  # fractions of the schedule at which int8 snapshots are kept (epochs 1 and 10 of 20)
    middle_snapshot: float = 0.5
    fit_to_time: bool = False  # with --max-minutes: shrink the schedule to what fits, after timing the first steps
    calibration_steps: int = 300  # --fit-to-time: steps timed before the first fit (then re-fitted every 10×)
    train_limit: int = 0  # 0 = every training image
    log_every: int = 50
    save_every: int = 500


PRESETS = {
    # ~1 h on 2 CPU cores (≈0.6 s per step at 96 px, 32 filters): 5 epochs of apple2orange ≈ 5,100 steps.
    "cpu": TrainConfig(),
    # The report's Table 2.1: 128 px, 20 epochs, batch 1, 64-filter ResNet-6 generator (+ our LR decay).
    "report": TrainConfig(image_size=128, filters=64, discriminator_filters=64, epochs=20, decay_epochs=10, save_every=2000, log_every=100),
    # The paper: 256 px, 200 epochs (100 constant + 100 decay), ResNet-9 generator.
    "paper": TrainConfig(image_size=256, filters=64, residual_blocks=9, discriminator_filters=64, epochs=200, decay_epochs=100, save_every=5000, log_every=500),
    # Issue 25, CPU: the 32-filter ResNet-6 at 128 px against projected discriminators (frozen EfficientNet-Lite1
    # features at 1/8, 1/16, 1/32; one LSGAN score map per scale, summed), cycle and identity losses kept. No image
    # pool: the discriminators see the fakes of the current step, whose backbone features the generator step already
    # computed. One CPU core in bf16; meant to continue the committed generators (--init-from cyclegan-<dataset>).
    "projected": TrainConfig(image_size=128, load_size=143, filters=32, discriminator="projected", pool_size=0, epochs=4, decay_epochs=2,
                             save_every=250, log_every=50, calibration_steps=100),
}


class ImagePool:
    """The 50-image history buffer (Shrivastava et al. 2017): D sees a mix of current and older fakes.

    Until full, every fake is stored and returned; then, with p = 0.5, a fake is swapped with a random stored
    one and the stored one is returned, else the fake itself is returned. Its own RNG makes resume exact.
    """

    def __init__(self, size: int, seed: int):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1, generator=self.generator).item() < 0.5:
                index = int(torch.randint(0, self.size, (1,), generator=self.generator))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        images = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"images": images, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.images = [image.to(device) for image in state["images"]]
        self.generator.set_state(state["rng"])


class Schedule:
    """Total steps and the learning-rate / snapshot plan; part of the run state because --fit-to-time changes it."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int):
        self.steps_per_epoch = steps_per_epoch
        self.total = max(1, round(cfg.epochs * steps_per_epoch))
        self.decay_fraction = min(cfg.decay_epochs / cfg.epochs, 1.0) if cfg.epochs else 0.0
        self.snapshot_fractions = {"early": cfg.early_snapshot, "middle": cfg.middle_snapshot}
        self.fitted = False
        self.snapshots_taken: list[str] = []

    def learning_rate_factor(self, step: int) -> float:
        """1 for the constant phase, then linear to ~0 at the last step (official `lambda_rule`, per step)."""
        decay_steps = round(self.total * self.decay_fraction)
        constant_steps = self.total - decay_steps
        return 1.0 - max(0, step - constant_steps) / (decay_steps + 1)

    def snapshot_steps(self) -> dict[str, int]:
        return {label: max(1, round(fraction * self.total)) for label, fraction in self.snapshot_fractions.items()}

    def fit(self, done: int, steps_per_second: float, seconds_left: float) -> None:
        """Shrink (never grow) the total to the steps that fit in `seconds_left` at the measured rate."""
        fitting = done + int(steps_per_second * seconds_left)
        if fitting < self.total:
            print(f"--fit-to-time: {self.total} steps do not fit; training {fitting} ({fitting / self.steps_per_epoch:.1f} epochs)", file=sys.stderr)
            self.total, self.fitted = max(fitting, done + 1), True

    def state_dict(self) -> dict:
        return {"total": self.total, "fitted": self.fitted, "snapshots_taken": list(self.snapshots_taken)}

    def load_state_dict(self, state: dict) -> None:
        self.total, self.fitted = int(state["total"]), bool(state["fitted"])
        self.snapshots_taken = list(state["snapshots_taken"])


def _tiny_config(cfg: TrainConfig) -> TrainConfig:
    return dataclasses.replace(
        cfg, image_size=32, load_size=36, filters=4, residual_blocks=1, discriminator_filters=4, epochs=2.0,
        decay_epochs=1.0, pool_size=3, log_every=1, save_every=2, calibration_steps=2,
    )


def _load_data(cfg: TrainConfig, load_size: int) -> dict[str, torch.Tensor]:
    """uint8 (N, 3, load_size, load_size) per domain."""
    if cfg.dry_run:
        generator = torch.Generator().manual_seed(cfg.seed)
        return {domain: torch.randint(0, 256, (count, 3, load_size, load_size), generator=generator, dtype=torch.uint8) for domain, count in (("A", 5), ("B", 4))}
    limit = cfg.train_limit or None
    return {domain: load_split(cfg.dataset, f"train{domain}", cfg.data_root, size=load_size, limit=limit) for domain in ("A", "B")}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class LossMeans:
    """Per-interval means of the logged losses (the curves are smoothed per log interval)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, values: dict[str, torch.Tensor]) -> None:
        for key, value in values.items():  # summed on the device: no GPU sync per step
            self.sums[key] = self.sums[key] + value.detach() if key in self.sums else value.detach().clone()
        self.count += 1

    def pop(self) -> dict[str, float]:
        means = {key: float(value) / max(self.count, 1) for key, value in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


def _l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 2 * F.l1_loss(prediction, target)  # [0, 1] images; ×2 = the official [-1, 1] units


def _lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(scores, torch.full_like(scores, 1.0 if real else 0.0))


def gan_loss(scores: torch.Tensor | list[torch.Tensor], real: bool, kind: str = "lsgan", generator: bool = False) -> torch.Tensor:
    """The adversarial loss of one score map, or the sum over the maps of a projected discriminator (one per scale).
    lsgan: (s − 1)² for real / the generator's fakes, s² for the discriminator's fakes. hinge: the discriminator's
    max(0, 1 − s) on real and max(0, 1 + s) on fakes; the generator's −s."""
    if isinstance(scores, (list, tuple)):
        return sum(gan_loss(score, real, kind, generator) for score in scores)
    scores = scores.float()
    if kind == "lsgan":
        return _lsgan(scores, real)
    if kind == "hinge":
        if generator:
            return -scores.mean()
        return F.relu(1 - scores).mean() if real else F.relu(1 + scores).mean()
    raise ValueError(f"gan_loss must be lsgan or hinge, not {kind!r}")


def main(cfg: TrainConfig) -> Path | None:
    started = time.monotonic()  # --max-minutes counts from the start of the command here (scripts/gpu_cyclegan.sh relies on it)
    info = dataset_info(cfg.dataset)
    if cfg.dry_run:
        cfg = _tiny_config(cfg)
    run = Run(cfg, f"{SLUG}-{cfg.dataset}")
    device = run.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    load_size = cfg.load_size or round(cfg.image_size * 286 / 256)
    data = {domain: images.to(device) for domain, images in _load_data(cfg, load_size).items()}
    num_a, num_b = len(data["A"]), len(data["B"])
    schedule = Schedule(cfg, steps_per_epoch=max(num_a, num_b) // cfg.batch_size)

    # The model's own resolution (what evaluation and the tests run it at) is the crop size of a fresh run; a continued
    # run keeps its parent's, whatever crop size it trains on.
    native_size = registry.load_config(cfg.init_from, root=cfg.checkpoint_root).generator.image_size if cfg.init_from else cfg.image_size
    generator_config = CycleGANGeneratorConfig(filters=cfg.filters, residual_blocks=cfg.residual_blocks, upsampling=cfg.upsampling, image_size=native_size)
    model = CycleGAN(CycleGANConfig(generator=generator_config, dataset=info.name, domain_a=info.domain_a, domain_b=info.domain_b)).to(device)
    projected = cfg.discriminator == "projected"
    if projected:
        projected_config = ProjectedDiscriminatorConfig(stages=tuple(cfg.projected_stages), head_channels=cfg.projected_channels,
                                                        backbone_size=cfg.backbone_size, pretrained=not cfg.dry_run)
        backbone = FrozenFeatures(projected_config).to(device)  # shared by both discriminators, never trained
        d_a, d_b = ProjectedDiscriminator(projected_config).to(device), ProjectedDiscriminator(projected_config).to(device)
    elif cfg.discriminator == "patchgan":
        discriminator_config = CycleGANDiscriminatorConfig(filters=cfg.discriminator_filters)
        d_a, d_b = CycleGANDiscriminator(discriminator_config).to(device), CycleGANDiscriminator(discriminator_config).to(device)
    else:
        raise ValueError(f"--discriminator must be patchgan or projected, not {cfg.discriminator!r}")
    # Under torchrun each trained network averages its gradients over the processes; the generators' step reads the
    # discriminators unwrapped (no gradient reaches them there).
    g_ab, g_ba, trained_d_a, trained_d_b = run.wrap(model.g_ab), run.wrap(model.g_ba), run.wrap(d_a), run.wrap(d_b)
    adam = dict(lr=cfg.learning_rate, betas=(cfg.beta1, 0.999), **({"fused": True} if device.type == "cuda" else {}))
    g_optimizer = torch.optim.Adam(model.parameters(), **adam)
    d_optimizer = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], **adam)
    # Under torchrun each process keeps a pool of its own part of the fakes; the run state holds process 0's.
    pool_a, pool_b = ImagePool(cfg.pool_size, cfg.seed + 11), ImagePool(cfg.pool_size, cfg.seed + 12)
    start = run.resume(model=model, d_a=d_a, d_b=d_b, g_optimizer=g_optimizer, d_optimizer=d_optimizer,
                       pool_a=pool_a, pool_b=pool_b, schedule=schedule)
    parent = initialise_from(cfg, model, start, run.run_dir, device)  # generators only: fresh discriminators catch up within a few hundred steps
    if cfg.init_discriminators and start == 0:  # or the discriminators of an earlier run (same kind and shape)
        objects = torch.load(cfg.init_discriminators, map_location="cpu", weights_only=True)["objects"]
        d_a.load_state_dict(objects["d_a"]), d_b.load_state_dict(objects["d_b"])
    if parent:
        _inherit_parent_files(cfg, run.run_dir, schedule, copy=run.is_main)
    for pool in (pool_a, pool_b):
        pool.images = [image.to(device) for image in pool.images]
    deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    lambda_identity = cfg.lambda_cycle * cfg.identity_weight
    negatives = cfg.domain_negatives
    means = LossMeans()
    clock = {"timer": None, "window": cfg.calibration_steps}  # --fit-to-time: (step, time) of the last timing, and the next window

    def step(step: int) -> dict:
        factor = schedule.learning_rate_factor(step)
        for optimizer in (g_optimizer, d_optimizer):
            for group in optimizer.param_groups:
                group["lr"] = cfg.learning_rate * factor
        augment = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # crops and flips: a function of the step, drawn for the whole batch
        real_a = random_crop_flip(data["A"][batch_indices(num_a, cfg.batch_size, step, cfg.seed)], cfg.image_size, augment)  # (B, 3, S, S)
        real_b = random_crop_flip(data["B"][batch_indices(num_b, cfg.batch_size, step, cfg.seed + 1)], cfg.image_size, augment)
        real_a, real_b = run.shard(real_a.to(device)), run.shard(real_b.to(device))  # this process's part
        batch = real_a.shape[0]

        # Generators. Each generator runs once on its source images and the identity images together
        # (instance norm is per image, so batching them is exact and halves the kernel launches).
        for parameter in [*d_a.parameters(), *d_b.parameters()]:
            parameter.requires_grad_(False)
        with run.autocast():
            fake_b, same_b = g_ab(torch.cat([real_a, real_b])).float().split(batch)  # G_AB(a), G_AB(b) ≈ b
            fake_a, same_a = g_ba(torch.cat([real_b, real_a])).float().split(batch)  # G_BA(b), G_BA(a) ≈ a
            rec_a, rec_b = g_ba(fake_b).float(), g_ab(fake_a).float()  # (B, 3, S, S) each
            if projected:  # one backbone pass for both domains' fakes; gradients reach the generators through it
                fake_features = [f.float() for f in backbone(torch.cat([fake_b, fake_a]))]
                fake_features_b, fake_features_a = [f[:batch] for f in fake_features], [f[batch:] for f in fake_features]
                scores_b, scores_a = d_b(fake_features_b), d_a(fake_features_a)
            else:
                scores_b, scores_a = d_b(fake_b).float(), d_a(fake_a).float()
        losses = {
            "g_ab": gan_loss(scores_b, True, cfg.gan_loss, generator=True), "g_ba": gan_loss(scores_a, True, cfg.gan_loss, generator=True),
            "cycle_a": _l1(rec_a, real_a), "cycle_b": _l1(rec_b, real_b),
            "identity_a": _l1(same_a, real_a), "identity_b": _l1(same_b, real_b),
        }
        g_loss = losses["g_ab"] + losses["g_ba"] + cfg.lambda_cycle * (losses["cycle_a"] + losses["cycle_b"]) \
            + lambda_identity * (losses["identity_a"] + losses["identity_b"])
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()

        # Discriminators, on real images and fakes from the history pools.
        for parameter in [*d_a.parameters(), *d_b.parameters()]:
            parameter.requires_grad_(True)
        with run.autocast():
            if projected:
                with torch.no_grad():
                    real_features = [f.float() for f in backbone(torch.cat([real_a, real_b]))]
                    if cfg.pool_size:  # pooled fakes are older images: their features are computed anew
                        pooled = [f.float() for f in backbone(torch.cat([pool_a.query(fake_a), pool_b.query(fake_b)]))]
                        fake_a_in, fake_b_in = [f[:batch] for f in pooled], [f[batch:] for f in pooled]
                    else:  # this step's fakes: the generator step's features, detached
                        fake_a_in, fake_b_in = [f.detach() for f in fake_features_a], [f.detach() for f in fake_features_b]
                # With --domain-negatives each discriminator also sees the other domain's real images (in the same
                # pass, features already computed), to be called fake: it must learn the domain, not only realism.
                other_a = [[r[batch:]] if negatives else [] for r in real_features]  # real B: negatives for D_A
                other_b = [[r[:batch]] if negatives else [] for r in real_features]
                scores_a = trained_d_a([torch.cat([r[:batch], f, *o]) for r, f, o in zip(real_features, fake_a_in, other_a)])
                scores_b = trained_d_b([torch.cat([r[batch:], f, *o]) for r, f, o in zip(real_features, fake_b_in, other_b)])
                real_scores_a, fake_scores_a, other_scores_a = ([s.float()[i * batch:(i + 1) * batch] for s in scores_a] for i in range(3))
                real_scores_b, fake_scores_b, other_scores_b = ([s.float()[i * batch:(i + 1) * batch] for s in scores_b] for i in range(3))
            else:
                negatives_a, negatives_b = ([real_b], [real_a]) if negatives else ([], [])
                real_scores_a, fake_scores_a, *other_scores_a = trained_d_a(torch.cat([real_a, pool_a.query(fake_a), *negatives_a])).float().split(batch)
                real_scores_b, fake_scores_b, *other_scores_b = trained_d_b(torch.cat([real_b, pool_b.query(fake_b), *negatives_b])).float().split(batch)
                other_scores_a, other_scores_b = (other_scores_a or [None])[0], (other_scores_b or [None])[0]
        losses["d_a"] = 0.5 * (gan_loss(real_scores_a, True, cfg.gan_loss) + gan_loss(fake_scores_a, False, cfg.gan_loss))
        losses["d_b"] = 0.5 * (gan_loss(real_scores_b, True, cfg.gan_loss) + gan_loss(fake_scores_b, False, cfg.gan_loss))
        d_loss = losses["d_a"] + losses["d_b"]
        if negatives:
            losses["d_a_other"] = gan_loss(other_scores_a, False, cfg.gan_loss)  # logged unweighted: how well D_A rejects real B
            losses["d_b_other"] = gan_loss(other_scores_b, False, cfg.gan_loss)
            d_loss = d_loss + 0.5 * negatives * (losses["d_a_other"] + losses["d_b_other"])
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        losses["g_total"] = g_loss
        means.add(losses)

        done = step + 1
        if cfg.fit_to_time and cfg.max_minutes:
            _fit_to_time(cfg, run, schedule, clock, done, deadline)
        for label, snapshot_step in schedule.snapshot_steps().items():
            if done >= snapshot_step and label not in schedule.snapshots_taken:
                if run.is_main:
                    save_snapshot(model, run.run_dir / f"snapshot-{label}.safetensors", step=done, epoch=round(done / schedule.steps_per_epoch, 2))
                schedule.snapshots_taken.append(label)
        if done % cfg.log_every == 0 or done == schedule.total:  # the means over the interval since the last row
            return {"epoch": done / schedule.steps_per_epoch, "lr": cfg.learning_rate * factor, **means.pop()}
        return {}

    def out_of_time(step: int) -> bool:  # checked after each step, as before the next one
        if step == start or time.monotonic() <= deadline:
            return False
        if run.is_main:
            print(f"stopped at step {step}/{schedule.total}: --max-minutes {cfg.max_minutes} reached; rerun to continue", file=sys.stderr)
        return True

    run.train(schedule.total, step, log_every=cfg.log_every, save_every=cfg.save_every, stop_before=out_of_time)
    run.close()
    return _write_checkpoint(cfg, run, schedule, model, num_a, num_b, parent)


def _fit_to_time(cfg: TrainConfig, run: Run, schedule: Schedule, clock: dict, done: int, deadline: float) -> None:
    """--fit-to-time: time the steps after the first few, then shrink the schedule to what fits before the deadline
    (the slowest process's rate under torchrun, so that every process plans the same total)."""
    now = time.monotonic()
    if clock["timer"] is None and done - run.start_step == max(cfg.calibration_steps // 10, 1):
        clock["timer"] = (done, now)  # the first steps (cuDNN autotuning, warm-up) are not timed
    elif clock["timer"] is not None and done - clock["timer"][0] >= clock["window"]:
        rate = run.agree(0.95 * (done - clock["timer"][0]) / (now - clock["timer"][1]), smallest=True)
        schedule.fit(done, rate, run.agree(deadline - now - 15, smallest=True))  # 15 s to save
        clock["timer"], clock["window"] = (done, now), 10 * cfg.calibration_steps  # re-check later over a longer window
        run.total_steps = schedule.total


def _inherit_parent_files(cfg: TrainConfig, run_dir: Path, schedule: Schedule, copy: bool = True) -> None:
    """A continued run extends its parent's training: the parent's early/middle snapshots stay the early/middle ones,
    and its log is kept to be continued. Copied at the first start, before this run saves under the parent's name
    (by process 0 only: `copy`)."""
    parent_dir = registry.checkpoint_dir(cfg.init_from, cfg.checkpoint_root)
    copies = {f"snapshot-{label}.safetensors": f"snapshot-{label}.safetensors" for label in SNAPSHOT_LABELS} | {"log.csv": "parent-log.csv"}
    inherited = {target_name for source_name, target_name in copies.items() if (parent_dir / source_name).exists() or (run_dir / target_name).exists()}
    if copy:
        run_dir.mkdir(parents=True, exist_ok=True)
        for source_name, target_name in copies.items():
            if (parent_dir / source_name).exists() and not (run_dir / target_name).exists():
                shutil.copyfile(parent_dir / source_name, run_dir / target_name)
    for label in SNAPSHOT_LABELS:
        if f"snapshot-{label}.safetensors" in inherited and label not in schedule.snapshots_taken:
            schedule.snapshots_taken.append(label)


def _log_with_parent(run_dir: Path, parent: dict) -> Path:
    """The parent's log followed by this run's, steps and epochs counted from the parent's start (one curve). A parent
    without a log or a card (weights from elsewhere) gives this run's log alone, offset by whatever the card says."""
    rows = []
    if (run_dir / "parent-log.csv").exists():
        with open(run_dir / "parent-log.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
    with open(run_dir / "log.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            row["step"] = int(row["step"]) + int(parent.get("steps") or 0)
            row["epoch"] = float(row["epoch"]) + float(parent.get("epochs_trained") or 0)
            rows.append(row)
    path = run_dir / "log-with-parent.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_checkpoint(cfg: TrainConfig, run: Run, schedule: Schedule, model: CycleGAN, num_a: int, num_b: int, parent: dict | None) -> Path | None:
    if not run.is_main:
        return None
    info, run_dir, steps_done = dataset_info(cfg.dataset), run.run_dir, run.steps_done
    extra = {"log.csv": _log_with_parent(run_dir, parent) if parent else run_dir / "log.csv"}
    snapshots = {}
    for label in SNAPSHOT_LABELS:
        path = run_dir / f"snapshot-{label}.safetensors"
        if path.exists():
            from safetensors import safe_open

            with safe_open(str(path), "pt") as handle:
                metadata = handle.metadata()
            extra[path.name] = path
            snapshots[label] = {"file": path.name, "step": int(metadata["step"]), "epoch": float(metadata["epoch"]), "sha256": _sha256(path), "dtype": "int8 + fp16 scales"}
    data = {
        "dataset": f"{info.folder} (CycleGAN release layout)",
        "train": f"trainA: {num_a} {info.domain_a} images, trainB: {num_b} {info.domain_b} images",
        "data_root": str(cfg.data_root or "$NNDL_DATA_ROOT or ../shared/data"),
        "preprocessing": f"resize to {cfg.load_size or round(cfg.image_size * 286 / 256)} px, random {cfg.image_size} px crop, horizontal flip",
        "generated_dry_run_data": cfg.dry_run,
    }
    return run.save_checkpoint(
        model, f"{SLUG}-{cfg.dataset}", data=data, half=True, extra_files=extra,
        epochs_trained=round(steps_done / schedule.steps_per_epoch + ((parent or {}).get("epochs_trained") or 0), 2),  # a continued run counts its parent's
        schedule={"planned_epochs": cfg.epochs, "planned_steps": round(cfg.epochs * schedule.steps_per_epoch), "total_steps": schedule.total,
                  "fitted_to_time": schedule.fitted, "decay_fraction": schedule.decay_fraction},
        finished=steps_done >= schedule.total,
        snapshots=snapshots,
        initialised_from=parent,
        role=f"both generators: G_AB {info.domain_a} → {info.domain_b}, G_BA {info.domain_b} → {info.domain_a}",
    )


if __name__ == "__main__":
    main(parse_config(TrainConfig, PRESETS))
