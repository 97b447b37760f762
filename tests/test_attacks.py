"""Attacks lab: model contract, attack budgets, data layouts, training dry-run + resume, evaluation, demo functions."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle

import numpy as np
import pytest
import torch
import torchattacks
from PIL import Image

from models import registry
from models.attacks import AdvGANDiscriminator, AdvGANDiscriminatorConfig, AdvGANGenerator, AdvGANGeneratorConfig, CifarResNet, ResNetConfig
from training import attacks as train_attacks
from nndl_data.attacks import load_cifar

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="module")
def tiny_classifier():
    torch.manual_seed(0)
    return CifarResNet(ResNetConfig(depth=8)).eval()


@pytest.fixture(scope="module")
def tiny_generator():
    torch.manual_seed(0)
    return AdvGANGenerator(AdvGANGeneratorConfig(residual_blocks=1)).eval()


def _cifar_image_folder(root, per_class: int = 3):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for index, name in enumerate(CLASSES):
            folder = root / "cifar10" / split / name
            folder.mkdir(parents=True)
            for item in range(per_class):
                pixels = np.clip(rng.normal(25 * index, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{item:04d}.png")
    return root


# ----- models ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("architecture", ["attacks-resnet", "attacks-resnet18", "attacks-efficientnet-lite0"])
def test_classifiers_refuse_inputs_outside_unit_range(architecture):
    model = registry.create(architecture).eval()
    assert model(torch.rand(2, 3, 32, 32)).shape[0] == 2
    normalised = (torch.rand(2, 3, 32, 32) - 0.5) / 0.25  # what the report fed its attacks
    with pytest.raises(ValueError, match=r"\[0, 1\].*normalises them itself"):
        model(normalised)


def test_distillation_teacher_starts_from_the_imagenet_backbone():
    from models.attacks import CifarEfficientNet, EfficientNetConfig
    from models.imagenet import imagenet_classifier

    teacher = CifarEfficientNet.from_imagenet(EfficientNetConfig(num_classes=10))
    torch.testing.assert_close(teacher.network.conv_head.weight, imagenet_classifier().network.conv_head.weight)
    assert teacher.network.classifier.out_features == 10
    assert teacher.network.classifier.weight.abs().max() <= 1 / 1280**0.5  # a small new head leaves the features intact


@pytest.mark.parametrize("module", [
    lambda: CifarResNet(ResNetConfig(depth=8)),
    lambda: AdvGANGenerator(AdvGANGeneratorConfig(residual_blocks=1)),
    lambda: AdvGANDiscriminator(AdvGANDiscriminatorConfig()),
])
def test_gradients_reach_every_parameter(module):
    torch.manual_seed(0)
    model = module().train()
    output = model(torch.rand(4, 3, 32, 32))
    assert torch.isfinite(output).all()
    output.square().mean().backward()
    missing = [name for name, parameter in model.named_parameters() if parameter.grad is None or not parameter.grad.abs().sum() > 0]
    assert not missing


def test_resnet20_and_resnet18_sizes():
    count = lambda model: sum(parameter.numel() for parameter in model.parameters())  # noqa: E731
    assert 0.26e6 < count(registry.create("attacks-resnet")) < 0.28e6  # He et al.: 0.27 M
    assert count(registry.create("attacks-resnet18")) == 11_220_132  # the report's CIFAR ResNet-18, spec §1.2


def test_generator_perturbation_is_bounded(tiny_generator):
    x = torch.rand(8, 3, 32, 32)
    with torch.no_grad():
        for epsilon in (1 / 255, 4 / 255, 8 / 255):
            adversarial = tiny_generator.attack(x, epsilon)
            assert (adversarial - x).abs().max() <= epsilon + 1e-6
            assert adversarial.min() >= 0 and adversarial.max() <= 1


@pytest.mark.parametrize("growth, trained_layer", [
    ({"context_size": 16}, lambda g: g.context.film.weight),
    ({"target_features": 8}, lambda g: g.target_film.weight),  # told the target's features (AdvGAN++)
    ({"refine_blocks": 1}, lambda g: g.refine[0].gate),  # deeper
])
def test_a_grown_generator_starts_as_its_parent(tmp_path, growth, trained_layer):
    from training.common import BaseTrainConfig, initialise_from

    torch.manual_seed(0)
    small = dict(channels=(4, 8, 8), residual_blocks=2, full_resolution=True)
    parent = AdvGANGenerator(AdvGANGeneratorConfig(**small)).eval()
    registry.save(parent, "attacks-advgan", root=tmp_path / "checkpoints", card={})
    cfg = BaseTrainConfig(checkpoint_root=str(tmp_path / "checkpoints"), init_from="attacks-advgan")
    grown = AdvGANGenerator(AdvGANGeneratorConfig(**small, **growth)).eval()
    initialise_from(cfg, grown, start=0, run_dir=tmp_path / "run")
    target = CifarResNet(ResNetConfig(depth=8, widths=(4, 8, 8))).eval()  # 8 features
    x = torch.rand(4, 3, 32, 32)
    parent_output = registry.load("attacks-advgan", root=tmp_path / "checkpoints").float().attack(x)  # fp16 weights, as saved
    assert torch.equal(grown.attack(x, target=target), parent_output)
    with torch.no_grad():
        torch.nn.init.normal_(trained_layer(grown), std=0.1)  # once trained, the new pathway changes the perturbation
    assert not torch.allclose(grown.attack(x, target=target), parent_output)

    deeper = AdvGANGenerator(AdvGANGeneratorConfig(**{**small, "residual_blocks": 3}))  # a new modulated block is not a grown key
    with pytest.raises(ValueError, match="does not fit"):
        initialise_from(cfg, deeper, start=0, run_dir=tmp_path / "run-deeper")


def test_a_generator_told_the_targets_features_needs_the_target():
    generator = AdvGANGenerator(AdvGANGeneratorConfig(residual_blocks=1, target_features=64)).eval()
    with pytest.raises(ValueError, match="pass the target"):
        generator.attack(torch.rand(1, 3, 32, 32))


# ----- attacks --------------------------------------------------------------------------------------------------------

def test_fgsm_at_zero_epsilon_is_the_identity(tiny_classifier):
    x, y = torch.rand(4, 3, 32, 32), torch.arange(4)
    adversarial = torchattacks.FGSM(tiny_classifier, eps=0)(x, y)
    torch.testing.assert_close(adversarial, x, rtol=0, atol=0)
    assert torch.equal(tiny_classifier(adversarial).argmax(1), tiny_classifier(x).argmax(1))


@pytest.mark.parametrize("epsilon", [1, 4, 8])
def test_attacks_respect_their_budget(tiny_classifier, epsilon):
    x, y = torch.rand(4, 3, 32, 32), torch.arange(4)
    for attack in (torchattacks.FGSM(tiny_classifier, eps=epsilon / 255),
                   torchattacks.PGD(tiny_classifier, eps=epsilon / 255, alpha=epsilon / 255 / 4, steps=3)):
        delta = attack(x, y) - x
        assert delta.abs().max() <= epsilon / 255 + 1e-6
    delta = train_attacks.pgd_perturb(tiny_classifier, x, y, epsilon / 255, epsilon / 255 / 2, 3) - x
    assert delta.abs().max() <= epsilon / 255 + 1e-6
    l2 = torchattacks.PGDL2(tiny_classifier, eps=0.3, alpha=0.1, steps=3)(x, y) - x
    assert l2.flatten(1).norm(dim=1).max() <= 0.3 + 1e-4


def test_cw_margin_loss_signs():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    labels = torch.tensor([0, 0])
    # untargeted: image 0 still classified (gap 2), image 1 already fooled (gap −2, clipped at −κ = −1)
    assert train_attacks.cw_margin_loss(logits, labels, margin=1.0, targeted=False).item() == pytest.approx((2 - 1) / 2)


def test_runner_up_aim_pushes_past_the_clean_second_class():
    clean = torch.tensor([[3.0, 2.0, 0.0], [0.0, 1.0, 4.0]])  # labels 0 and 1: runner-ups 1 and 2 (the second errs)
    labels = torch.tensor([0, 1])
    toward = train_attacks.runner_up(lambda images: images, clean, labels)
    assert toward.tolist() == [1, 2]
    adversarial = torch.tensor([[1.0, 0.5, 2.0], [0.0, 1.0, 0.5]])
    # image 0: class 2 now leads, but the aim is class 1, still 0.5 behind; image 1: 0.5 ahead of class 2
    loss = train_attacks.cw_margin_loss(adversarial, labels, margin=10.0, targeted=False, toward=toward)
    assert loss.item() == pytest.approx((0.5 + 0.5) / 2)


def test_complement_loss_is_minus_log_of_the_wrong_classes_share_and_ignores_fooled_images():
    logits = torch.tensor([[2.0, 0.0, -1.0], [-3.0, 4.0, 0.0]], requires_grad=True)  # image 0 classified, image 1 fooled
    labels = torch.tensor([0, 0])
    loss = train_attacks.complement_loss(logits, labels, targeted=False)
    expected = -torch.log(1 - logits.detach().softmax(1)[:, 0]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    # ∂/∂z_y = p_y / 2 (batch mean): the classified image pulls G ~1000× harder than the fooled one
    assert logits.grad[0, 0] > 500 * logits.grad[1, 0] > 0
    # a confidently classified image gives a finite loss (the logsumexp form, not log(1 − p_y))
    assert torch.isfinite(train_attacks.complement_loss(torch.tensor([[200.0, 0.0]]), torch.tensor([0]), targeted=False))

# ----- data -----------------------------------------------------------------------------------------------------------

def test_image_folder_layout_loads_in_class_order(tmp_path):
    root = _cifar_image_folder(tmp_path)
    images, labels, classes = load_cifar("cifar10", "test", root)
    assert images.shape == (30, 3, 32, 32) and images.dtype == torch.uint8
    assert classes == list(CLASSES)
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]
    limited, limited_labels, _ = load_cifar("cifar10", "train", root, limit_per_class=1)
    assert len(limited) == 10 and limited_labels.tolist() == list(range(10))


def _cifar100_pickles(root, per_split: int = 20) -> dict[str, str]:
    """A tiny CIFAR-100 in the official python-pickle layout; returns the md5 of each file."""
    folder = root / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    md5 = {}
    for split in ("train", "test"):
        fine = rng.integers(0, 100, per_split).tolist()
        entry = {"data": rng.integers(0, 256, (per_split, 3072), dtype=np.uint8), "fine_labels": fine,
                 "coarse_labels": [label // 5 for label in fine], "filenames": [f"{i}.png" for i in range(per_split)]}
        (folder / split).write_bytes(pickle.dumps(entry))
        md5[split] = hashlib.md5((folder / split).read_bytes()).hexdigest()
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"class{i}" for i in range(100)], "coarse_label_names": [f"super{i}" for i in range(20)]}))
    md5["meta"] = hashlib.md5((folder / "meta").read_bytes()).hexdigest()
    return md5


def test_cifar100_through_torchvision_pickle_layout(tmp_path, monkeypatch):
    import torchvision

    from nndl_data.attacks import cifar100_coarse_labels

    md5 = _cifar100_pickles(tmp_path)
    # torchvision checks the official release's md5 sums; point it at the fixture's instead
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "train_list", [["train", md5["train"]]])
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "test_list", [["test", md5["test"]]])
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "meta", {"filename": "meta", "key": "fine_label_names", "md5": md5["meta"]})
    images, labels, classes = load_cifar("cifar100", "train", tmp_path)
    assert images.shape == (20, 3, 32, 32) and len(classes) == 100
    coarse = cifar100_coarse_labels("train", tmp_path)
    assert torch.equal(coarse, labels // 5)


def test_missing_dataset_says_where_to_put_it(tmp_path):
    from nndl_data import DatasetMissing

    (tmp_path / "cifar100").mkdir()
    with pytest.raises(DatasetMissing, match="CIFAR100"):
        load_cifar("cifar100", "train", tmp_path)


# ----- training and evaluation ----------------------------------------------------------------------------------------

def _config(tmp_path, **overrides):
    settings = {"dry_run": True, "checkpoint_root": str(tmp_path / "checkpoints"), "run_dir": str(tmp_path / "run"), "device": "cpu", **overrides}
    return dataclasses.replace(train_attacks.TrainConfig(), **settings)


class Killed(Exception):
    pass


@pytest.mark.parametrize("model", ["standard", "adversarial"])
def test_dry_run_resumes_exactly(tmp_path, model, monkeypatch):
    straight = train_attacks.main(_config(tmp_path / "straight", model=model))
    augment, calls = train_attacks.augment, []

    def dies_at_step_three(*args):
        calls.append(1)
        if len(calls) == 3:  # the state was saved after step 2 (save_every = 2 in a dry run)
            raise Killed
        return augment(*args)

    monkeypatch.setattr(train_attacks, "augment", dies_at_step_three)
    with pytest.raises(Killed):
        train_attacks.main(_config(tmp_path / "resumed", model=model))
    monkeypatch.setattr(train_attacks, "augment", augment)
    resumed = train_attacks.main(_config(tmp_path / "resumed", model=model))  # restores step 2, trains 2 more
    assert registry.load_card(resumed.name, root=resumed.parent)["steps"] == 4
    a = registry.load(straight.name, root=straight.parent).state_dict()
    b = registry.load(resumed.name, root=resumed.parent).state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_dry_run_noise_and_advgan_then_evaluation(tmp_path):
    from evaluation import attacks as evaluate

    root = _cifar_image_folder(tmp_path / "data", per_class=2)
    standard = train_attacks.main(_config(tmp_path, model="standard"))
    train_attacks.main(_config(tmp_path, model="noise", run_dir=str(tmp_path / "run-noise")))
    advgan = train_attacks.main(_config(tmp_path, model="advgan", run_dir=str(tmp_path / "run-advgan")))
    assert registry.load_card("attacks-advgan", root=advgan.parent)["data"]["target_model"] == "attacks-resnet20-standard"
    results = evaluate.main(["--checkpoint-root", str(standard.parent), "--data-root", str(root), "--device", "cpu",
                             "--epsilons", "2", "8", "--autoattack-images", "0", "--timing-images", "4",
                             "--checkpoints", "attacks-resnet20-standard", "attacks-advgan"])
    card = registry.load_card("attacks-resnet20-standard", root=standard.parent)
    assert set(card["metrics"]["pgd10_accuracy"]) == {"2", "8"} and card["metrics"]["test_images"] == 20
    assert card["evaluation_command"].startswith("python -m evaluation.attacks")
    advgan_metrics = results["attacks-advgan"]
    assert set(advgan_metrics["success_rate_per_class"]) == set(CLASSES)
    counts = torch.tensor(advgan_metrics["adversarial_predictions"]["counts"])  # rows: the correct images by true class
    correct = round(advgan_metrics["target_clean_accuracy"] * 20)
    assert counts.shape == (10, 10) and counts.sum() == correct
    assert counts.sum() - counts.trace() == round(advgan_metrics["success_rate"] * correct)
    assert advgan_metrics["mean_linf"] <= 8 / 255 + 1e-3  # fp16 weights, float32 maths
    other_split = _config(tmp_path, model="advgan", seed=1, run_dir=str(tmp_path / "run-advgan-other-split"))
    with pytest.raises(ValueError, match="images the target was trained on"):  # seed 1 holds out other images
        train_attacks.main(other_split)


def test_crop_flip_moves_a_stacked_per_pixel_target_with_its_image():
    images = torch.rand(16, 3, 32, 32)
    out = train_attacks.crop_flip(torch.cat([images, -images], 1))
    assert out.shape == (16, 6, 32, 32)
    torch.testing.assert_close(out[:, 3:], -out[:, :3], rtol=0, atol=0)
    assert not torch.equal(out[:, :3], images)  # 16 images: some were shifted or flipped


@pytest.mark.parametrize("guided", ["unfooled", "all"])
def test_dry_run_advgan_with_the_pgd_guide_and_the_complement_loss(tmp_path, guided):
    saved = train_attacks.main(_config(tmp_path, model="advgan", pgd_guide_weight=1.0, pgd_guide_images=guided, advgan_loss="complement"))
    bank = torch.load(tmp_path / "run" / "pgd_guide.pt", weights_only=True)
    assert bank.shape[1:] == (3, 32, 32) and bank.abs().max() <= 8 / 255 + 1e-3 and bank.abs().max() > 0
    assert "guide_loss" in (tmp_path / "run" / "log.csv").read_text().splitlines()[0]
    train_config = registry.load_card("attacks-advgan", root=saved.parent)["train_config"]
    assert train_config["advgan_loss"] == "complement" and train_config["pgd_guide_images"] == guided
    with pytest.raises(SystemExit, match="untargeted"):
        train_attacks.main(_config(tmp_path / "targeted", model="advgan", pgd_guide_weight=1.0, target_class=3))
    with pytest.raises(SystemExit, match="pgd-guide-images"):
        train_attacks.main(_config(tmp_path / "typo", model="advgan", pgd_guide_weight=1.0, pgd_guide_images="some"))


def test_dry_run_at_the_default_root_leaves_trained_checkpoints_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `checkpoints/` is the default root, relative to the working directory
    saved = train_attacks.main(_config(tmp_path, checkpoint_root="checkpoints"))
    assert saved.parent == tmp_path / "run" / "checkpoints" and not (tmp_path / "checkpoints").exists()


def test_dry_run_advgan_runs_against_a_real_target(tmp_path):
    root = tmp_path / "checkpoints"
    target = CifarResNet(ResNetConfig(depth=8))  # stands in for the committed model: a real-data card, 500 held out
    registry.save(target, "attacks-resnet20-standard", root=root,
                  card={"data": {"split": "train minus 500 held-out images (seed 0)", "generated_dry_run_data": False}})
    saved = train_attacks.main(_config(tmp_path, model="advgan"))  # holds out 8 generated images: nothing to compare
    assert registry.load_card("attacks-advgan", root=saved.parent)["data"]["target_model"] == "attacks-resnet20-standard"


@pytest.mark.parametrize("mixup", [0.0, 1.0])
def test_distillation_trains_on_the_views_the_teacher_labelled(tmp_path, mixup):
    teacher = train_attacks.main(_config(tmp_path, run_dir=str(tmp_path / "run-teacher")))
    cfg = _config(tmp_path, name="student", distill_from=teacher.name, distill_views=3, autoaugment_groups=2,
                  distill_mixup=mixup)
    student = train_attacks.main(cfg)
    assert registry.load_card("student", root=student.parent)["role"].endswith(f"distilled from {teacher.name}")
    bank = torch.load(tmp_path / "run" / "teacher-views.pt", weights_only=True)
    tiny = train_attacks._tiny_config(cfg)  # what main() trains in a dry run
    train_images = train_attacks._split(tiny, *train_attacks._load_data(tiny)[:2])[0]
    assert bank["views"].dtype == torch.uint8 and bank["views"].shape == (3 * len(train_images), 3, 32, 32)
    model = registry.load(teacher.name, root=teacher.parent)  # the bank holds the teacher's logits on exactly those views
    with torch.no_grad():
        torch.testing.assert_close(model(bank["views"][:8].float() / 255), bank["logits"][:8].float(), atol=2e-2, rtol=1e-2)
    other_split = dataclasses.replace(cfg, seed=1, run_dir=str(tmp_path / "run-other-split"))
    with pytest.raises(ValueError, match="leak"):  # the teacher has seen this split's held-out images
        train_attacks.main(other_split)


@pytest.mark.parametrize("mixup", [0.0, 1.0])
def test_mixup_views_blend_two_images_and_the_view_s_own_image_dominates(tmp_path, mixup):
    teacher = train_attacks.main(_config(tmp_path, run_dir=str(tmp_path / "run-teacher")))
    cfg = _config(tmp_path, distill_from=teacher.name, distill_views=2, distill_mixup=mixup, validation_size=8)  # as main() trained it
    white = torch.arange(8) % 2 == 0  # black and white images alternate, so every mixup partner has the other colour
    images = white.view(8, 1, 1, 1).expand(8, 3, 32, 32).to(torch.uint8) * 255
    bank = train_attacks.teacher_views(cfg, images, None, torch.device("cpu"))
    centre = bank["views"][:, 0, 16, 16].int()  # inside any 4-pixel crop shift: no zero padding reaches it
    assert ((centre >= 128) == white.repeat(2)).all()
    assert ((centre > 0) & (centre < 255)).any() == bool(mixup)


def test_distillation_loss_is_zero_only_when_the_student_matches_the_teacher():
    teacher = torch.randn(4, 10)
    assert train_attacks.distillation_loss(teacher.clone(), teacher, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert train_attacks.distillation_loss(torch.randn(4, 10), teacher, 4.0).item() > 0.01


def test_schedule_follows_the_time_budget():
    cfg = train_attacks.TrainConfig(steps=1000, max_minutes=1.0)
    assert train_attacks.schedule_progress(100, cfg, elapsed_s=30) == pytest.approx(0.5)
    assert train_attacks.learning_rate_at(1.0, 0.1, 0.15) == pytest.approx(0.0)
    assert train_attacks.learning_rate_at(0.15, 0.1, 0.15) == pytest.approx(0.1)
