"""Attacks tab: pure functions on tiny models, the ImageNet model on real photos, bad uploads, card panels."""

from __future__ import annotations

import json

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from demos import attacks as demo
from models import registry
from models.attacks import CIFAR10_CLASSES, AdvGANGenerator, AdvGANGeneratorConfig, CifarResNet, ResNetConfig
from tests.bad_uploads import MUST_ACCEPT, MUST_REFUSE, bad_image_files

CIFAR = "attacks-resnet20-standard"


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return {CIFAR: CifarResNet(ResNetConfig(depth=8)).eval(), demo.ADVGAN: AdvGANGenerator(AdvGANGeneratorConfig(residual_blocks=1)).eval()}


def test_a_generator_told_its_targets_features_reads_them_from_the_standard_model(tiny_models, picture, monkeypatch):
    told = AdvGANGenerator(AdvGANGeneratorConfig(residual_blocks=1, target_features=64)).eval()
    with torch.no_grad():
        torch.nn.init.normal_(told.target_film.weight, std=0.1)
    asked = []
    monkeypatch.setattr(demo, "load_model", lambda name: asked.append(name) or tiny_models[name])
    noise_model = CifarResNet(ResNetConfig(depth=8)).eval()  # attacked by transfer: its own features are not used
    result = demo.attack_image("attacks-resnet20-noise", noise_model, picture, demo.AttackSettings(attack="AdvGAN"), told)
    assert asked == [CIFAR]
    assert 0 < result.metrics["linf_255"] <= 8 + 1e-3


@pytest.fixture
def picture():
    """Any 32×32 picture will do for the tiny untrained models."""
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))


@pytest.mark.parametrize("attack", demo.ATTACKS)
def test_every_attack_runs_and_reports(tiny_models, picture, attack):
    settings = demo.AttackSettings(attack=attack, steps=3)
    fractions = []
    result = demo.attack_image(CIFAR, tiny_models[CIFAR], picture, settings, tiny_models[demo.ADVGAN], progress=fractions.append)
    assert result.original.shape == result.adversarial.shape == (32, 32, 3)
    assert 0 <= result.adversarial.min() and result.adversarial.max() <= 1
    assert len(result.top5_before) == 5 and abs(sum(result.top5_before.values())) <= 1 + 1e-5
    assert set(result.metrics) == {"linf_255", "l2", "psnr_db", "ssim"}
    assert result.verdict.startswith(("Success", "Failed"))
    if attack in ("FGSM", "PGD (L∞)", "AdvGAN"):
        assert result.metrics["linf_255"] <= 8 + 1e-3
    if attack not in ("AdvGAN",):
        assert fractions and fractions[-1] <= 1.0


def test_fgsm_at_zero_epsilon_changes_nothing(tiny_models, picture):
    result = demo.attack_image(CIFAR, tiny_models[CIFAR], picture, demo.AttackSettings(attack="FGSM", epsilon=0))
    np.testing.assert_array_equal(result.adversarial, result.original)
    assert result.prediction_after == result.prediction_before and not result.success
    assert result.metrics["linf_255"] == 0 and result.metrics["psnr_db"] == float("inf")


def test_targeted_attack_and_untargeted_only_attacks(tiny_models, picture):
    settings = demo.AttackSettings(attack="PGD (L∞)", epsilon=32, alpha=4, steps=20, target_class=3)
    result = demo.attack_image(CIFAR, tiny_models[CIFAR], picture, settings)
    assert "targeted at cat" in result.verdict
    with pytest.raises(ValueError, match="untargeted only"):
        demo.attack_image(CIFAR, tiny_models[CIFAR], picture, demo.AttackSettings(attack="DeepFool", target_class=3))


@pytest.mark.parametrize("method", list(demo.CAM_METHODS))
def test_cam_methods(tiny_models, method):
    overlay = demo.grad_cam(CIFAR, tiny_models[CIFAR], torch.rand(1, 3, 32, 32), method)
    assert overlay.shape == (demo.DISPLAY_SIZE, demo.DISPLAY_SIZE, 3) and overlay.dtype == np.uint8


def test_imagenet_model_classifies_real_photos():
    """The package's weights mapped onto timm's efficientnet_lite0 must recognise scikit-image's sample photos."""
    from models.imagenet import IMAGENET_CLASSES, imagenet_classifier

    model = imagenet_classifier()
    photos = {path.stem: path for path in demo.example_images()}
    expected = {"photo-chelsea": {"tabby", "tiger cat", "Egyptian cat", "Persian cat"}, "photo-coffee": {"espresso", "cup", "coffee mug"}}
    for file_name, classes in expected.items():
        x = demo.to_tensor(Image.open(photos[file_name]).convert("RGB"), demo.IMAGENET_SIZE)
        with torch.no_grad():
            top = IMAGENET_CLASSES[int(model(x).argmax())]
        assert top in classes, f"{file_name}: {top}"


def test_imagenet_attack_through_the_channels_last_copy():
    model = demo.load_model("imagenet")
    photo = Image.open(demo.example_images()[-1]).convert("RGB")  # scikit-image's "coffee"
    result = demo.attack_image("imagenet", model, photo, demo.AttackSettings(attack="PGD (L2)", l2_epsilon=0.5, steps=2))
    assert result.adversarial.shape == (224, 224, 3) and result.metrics["l2"] <= 0.5 + 1e-3
    with pytest.raises(ValueError, match="DeepFool"):
        demo.attack_image("imagenet", model, photo, demo.AttackSettings(attack="DeepFool"))


def _inputs(path, attack="FGSM"):
    return (next(iter(demo.CLASSIFIERS)), path, attack, 8, 2, 2, 0.5, 1.0, demo.UNTARGETED, "Grad-CAM")


def test_bad_uploads_get_clear_messages(tmp_path, tiny_models, monkeypatch):
    monkeypatch.setattr(demo, "load_model", lambda name: tiny_models.get(name, tiny_models[CIFAR]))
    files = bad_image_files(tmp_path)
    for case in MUST_REFUSE:
        with pytest.raises(gr.Error) as error:
            demo._attack(*_inputs(str(files[case])))
        assert len(str(error.value)) > 10 and "Traceback" not in str(error.value), case
    for case in MUST_ACCEPT:
        outputs = demo._attack(*_inputs(str(files[case])))
        assert outputs[0].shape[2] == 3, case
    with pytest.raises(gr.Error, match="No image"):
        demo._attack(*_inputs(None))
    with pytest.raises(gr.Error, match="ImageNet|CIFAR"):
        demo._attack("EfficientNet-Lite0 (ImageNet, any photo)", str(files["rgba"]), "AdvGAN", 8, 2, 2, 0.5, 1.0, demo.UNTARGETED, "Grad-CAM")


def test_target_choices_follow_the_model():
    assert len(demo._target_choices("EfficientNet-Lite0 (ImageNet, any photo)").choices) == 1001
    assert len(demo._target_choices(next(iter(demo.CLASSIFIERS))).choices) == 11


def test_card_panels_show_measured_metrics(checkpoint_root):
    for name in ("attacks-resnet20-standard", "attacks-resnet20-adversarial"):
        registry.save(CifarResNet(ResNetConfig(depth=8)), name, card={"steps": 1})
        registry.update_card(name, metrics={"clean_accuracy": 0.9, "fgsm_accuracy": {"1": 0.5, "8": 0.2}, "pgd10_accuracy": {"1": 0.4, "8": 0.01}})
    registry.save(AdvGANGenerator(AdvGANGeneratorConfig(residual_blocks=1)), demo.ADVGAN, card={"steps": 1})
    registry.update_card(demo.ADVGAN, metrics={"success_rate": 0.95, "success_rate_per_class": {"cat": 0.9}, "seconds_per_image_advgan": 1e-4})
    tables = demo.results_tables()
    assert "90.0 %" in tables and "95.0 %" in tables and "67.1 %" in tables  # ours beside the report's
    figure = demo.accuracy_plot()
    assert len(figure.axes[1].lines) == 2
    assert demo.advgan_destination_plot() is None  # this card has no adversarial_predictions
    counts = [[0] * 10 for _ in range(10)]
    counts[3][9], counts[3][3], counts[9][1] = 3, 1, 2  # 3 of 4 cats sent to truck, 1 not fooled; 2 trucks to automobile
    registry.update_card(demo.ADVGAN, metrics={"adversarial_predictions": {"classes": list(CIFAR10_CLASSES), "counts": counts}})
    shares = demo.advgan_destination_plot().axes[0].images[0].get_array()
    assert shares[3, 9] == 0.75 and shares[3, 3] == 0.25 and shares[9, 1] == 1.0 and shares[0].sum() == 0
    assert json.loads((checkpoint_root / demo.ADVGAN / "card.json").read_text())["metrics"]["success_rate"] == 0.95


def test_without_the_data_root_the_shipped_cifar_images_are_offered(tmp_path, monkeypatch):
    """A Space has no data root: the first CIFAR-10 test image of each class comes from demos/assets/attacks, the same
    pixels as from the data root (when there is one here), and api_examples still has its three requests."""
    from_root = {path.stem: np.asarray(Image.open(path)) for path in demo.example_images() if path.stem.startswith("cifar10")}
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("NNDL_DATA_ROOT", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    demo.example_images.cache_clear()
    try:
        shipped = {path.stem: np.asarray(Image.open(path)) for path in demo.example_images() if path.stem.startswith("cifar10")}
        assert len(demo.api_examples()["/attacks"]) == 3
    finally:
        demo.example_images.cache_clear()
    assert sorted(shipped) == [f"cifar10-{name}" for name in sorted(demo.CIFAR10_CLASSES)]
    for stem, pixels in from_root.items():
        np.testing.assert_array_equal(shipped[stem], pixels)
