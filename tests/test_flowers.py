"""Flowers-102 system: the loader on a generated layout with missing ids, the ViT explanations, the evaluation's
transfer matrix, the tab's pure functions on tiny models, and dry-run training with resume."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from demos import attacks as lab
from evaluation import flowers as evaluation
from models import registry
from models.flowers import (FlowersViT, FlowersViTConfig, attention_rollout, pretrained_cnn, scratch_cnn, vit_attention_maps,
                            vit_attention_rollout, vit_cam_reshape)
from nndl_data.flowers import FLOWER_NAMES, load_flowers, write_layout
from training import flowers as training

TINY_VIT = FlowersViTConfig(embed_dim=24, depth=2, num_heads=2, drop_path=0.0)


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_layout(root / "flowers102" / "flowers-102", num_images=120, num_classes=4, missing_every=40, size=20)
    return root


def test_loader_uses_the_official_splits_and_skips_absent_ids(layout):
    splits = {name: load_flowers(name, layout, image_size=16) for name in ("train", "val", "test")}
    assert [split.expected for split in splits.values()] == [30, 30, 60]
    assert sum(len(split) for split in splits.values()) == 117  # ids 40, 80 and 120 are absent
    assert sum(split.missing for split in splits.values()) == 3
    for split in splits.values():
        assert split.images.shape[1:] == (3, 16, 16) and split.images.dtype == torch.uint8
        assert torch.equal(split.labels, (split.image_ids - 1) % 4)  # imagelabels.mat, 1-based → 0-based
        assert not (split.image_ids % 40 == 0).any()
        assert f"{len(split)} of {split.expected} images" in split.describe()
    ids = torch.cat([split.image_ids for split in splits.values()])
    assert len(set(ids.tolist())) == len(ids)  # disjoint splits
    assert len(FLOWER_NAMES) == 102 and FLOWER_NAMES[0] == "pink primrose"


def test_loader_says_what_is_missing(tmp_path):
    (tmp_path / "flowers102" / "flowers-102").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="setid.mat"):
        load_flowers("train", tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_flowers("training", tmp_path)


def test_recomputed_attention_is_the_one_timm_applies():
    torch.manual_seed(0)
    model = FlowersViT(TINY_VIT).eval()
    x = torch.rand(2, 3, 64, 64)
    maps = vit_attention_maps(model, x)
    assert len(maps) == 2 and maps[0].shape == (2, 2, 65, 65)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, 2, 65))
    network = model.network
    tokens = network.norm_pre(network._pos_embed(network.patch_embed(model.normalize(x))))
    block = network.blocks[0]
    attention = block.attn
    values = attention.qkv(block.norm1(tokens)).reshape(2, 65, 3, 2, 12).permute(2, 0, 3, 1, 4)[2]  # (B, heads, T, d)
    mixed = (maps[0] @ values).transpose(1, 2).reshape(2, 65, 24)
    torch.testing.assert_close(attention.proj(mixed), attention(block.norm1(tokens)), rtol=1e-4, atol=1e-5)


def test_vit_grad_cam_and_rollout_shapes():
    torch.manual_seed(0)
    model = FlowersViT(TINY_VIT).eval()
    x = torch.rand(1, 3, 64, 64)
    tokens = torch.randn(3, 65, 24)
    grid = vit_cam_reshape(tokens, 8)
    assert grid.shape == (3, 24, 8, 8)
    torch.testing.assert_close(grid[1, :, 2, 5], tokens[1, 1 + 2 * 8 + 5])  # row-major patch order
    rollout = vit_attention_rollout(model, x)
    assert rollout.shape == (1, 8, 8) and float(rollout.max()) == pytest.approx(1.0) and float(rollout.min()) >= 0
    assert vit_attention_rollout(model, x, discard_ratio=0.9).shape == (1, 8, 8)
    uniform = [torch.full((1, 1, 65, 65), 1 / 65)] * 3  # no token preferred: a flat map
    torch.testing.assert_close(attention_rollout(uniform), torch.ones(1, 64))
    for method in ("Grad-CAM", "attention rollout (ViT)"):
        from demos import flowers as demo

        overlay = demo.explain(model, x, method)
        assert overlay.shape == (lab.DISPLAY_SIZE, lab.DISPLAY_SIZE, 3) and overlay.dtype == np.uint8
    with pytest.raises(ValueError, match="ViT"):
        demo.explain(scratch_cnn(depth=8).eval(), x, "attention rollout (ViT)")


def _tiny_models() -> dict:
    torch.manual_seed(0)
    return {"cnn": scratch_cnn(depth=8).eval(), "vit": FlowersViT(TINY_VIT).eval(), "cnn2": scratch_cnn(depth=8).eval()}


def test_transfer_matrix_diagonal_is_each_models_own_pgd_accuracy():
    models = _tiny_models()
    torch.manual_seed(1)
    images = (torch.rand(6, 3, 64, 64) * 255).to(torch.uint8)
    labels = models["cnn"](images.float() / 255).argmax(1).detach()  # the first model right on every clean image
    own = {name: evaluation.robustness(model, images, labels, [1], batch_size=4, device=torch.device("cpu")) for name, model in models.items()}
    matrix = evaluation.transfer_matrix(models, images, labels, 1, batch_size=4, device=torch.device("cpu"))
    assert list(matrix) == list(models) and all(list(row) == list(models) for row in matrix.values())
    for name in models:
        assert matrix[name][name] == own[name]["pgd10_accuracy"]["1"]
    assert own["cnn"]["pgd10_accuracy"]["1"] <= 1.0 and set(own["cnn"]) == {"fgsm_accuracy", "pgd10_accuracy"}


def test_topk_accuracy_and_per_class():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            logits = torch.zeros(len(x), 102)
            logits[:, 3], logits[:, 7] = 2.0, 1.0
            return logits

    labels = torch.tensor([3, 7, 7, 50])
    top1, top5, per_class = evaluation.topk_accuracy(Fixed(), torch.zeros(4, 3, 8, 8, dtype=torch.uint8), labels)
    assert (top1, top5) == (0.25, 0.75)
    assert per_class[3] == 1.0 and per_class[7] == 0.0 and np.isnan(per_class[0])


@pytest.fixture
def tiny_checkpoints(checkpoint_root):
    from demos import flowers as demo

    torch.manual_seed(0)
    registry.save(pretrained_cnn(input_size=32), "flowers-cnn-pretrained", card={"metrics": {"test_top1": 0.5}})
    registry.save(FlowersViT(TINY_VIT), "flowers-vit-scratch", card={"metrics": {"transfer_pgd10_8": {"flowers-vit-scratch": 0.0}}})
    demo.load_model.cache_clear()
    demo.model_pool.cache_clear()
    yield demo
    demo.load_model.cache_clear()
    demo.model_pool.cache_clear()


def test_tab_attacks_transfers_and_names_untrained_models(tiny_checkpoints, tmp_path):
    demo = tiny_checkpoints
    path, label = demo.example_images()[0]
    outputs = demo._run(next(iter(demo.MODELS)), str(path), "FGSM", 8, 2, 10, "Grad-CAM")
    original, perturbation, adversarial, before, after, summary, transfer, cam_before, cam_after = outputs
    assert original.shape == adversarial.shape == (lab.DISPLAY_SIZE, lab.DISPLAY_SIZE, 3)
    assert len(before) == 5 and set(before) <= set(FLOWER_NAMES)
    assert FLOWER_NAMES[label] in summary and "L∞ = 8.0/255" in summary
    assert "ViT scratch" in transfer and "python -m training.flowers --preset cnn-scratch" in transfer
    outputs = demo._run("ViT from scratch", str(path), "PGD (L∞)", 4, 1, 3, "attention rollout (ViT)")
    assert outputs[7].shape == (lab.DISPLAY_SIZE, lab.DISPLAY_SIZE, 3)
    request = demo.api_examples()["/flowers"][0]  # what the load test sends: FGSM, no explanation
    outputs = demo._run(*request)
    assert outputs[7] is None and outputs[8] is None and "FGSM" in outputs[5]
    import gradio as gr

    with pytest.raises(gr.Error, match="not trained yet: python -m training.flowers --preset vit-cifar10"):
        demo._run("ViT pretrained by us on CIFAR-10", str(path), "FGSM", 8, 2, 10, "Grad-CAM")
    with pytest.raises(gr.Error):
        demo._run(next(iter(demo.MODELS)), None, "FGSM", 8, 2, 10, "Grad-CAM")
    assert "not trained yet" in demo.table_2x2() and "50.0 %" in demo.table_2x2()
    names, matrix = demo.transfer_matrix()
    assert matrix.shape == (4, 4) and matrix[2, 2] == 0.0 and np.isnan(matrix[0, 0])
    demo.accuracy_plot(), demo.transfer_plot(), demo.per_class_plot()
    assert len(demo._cards_content()) == 5


# cnn-pretrained: the preset solves the head (logistic regression) and stops; 4 unfrozen steps after it (BatchNorm
# statistics frozen) check that a solved head resumes too. vit-cifar10: 3 CIFAR-10 steps, then 4 on Flowers.
@pytest.mark.parametrize("model, extra, steps", [("cnn-pretrained", {"steps": 4, "freeze_batchnorm": True}, 4), ("vit-cifar10", {}, 7)])
def test_dry_run_then_resume_gives_the_same_weights(tmp_path, model, extra, steps):
    def train(run: str, **overrides):
        cfg = training.PRESETS[model]
        import dataclasses

        cfg = dataclasses.replace(cfg, dry_run=True, run_dir=str(tmp_path / run), checkpoint_root=str(tmp_path / f"checkpoints-{run}"), **extra, **overrides)
        return training.main(cfg)

    whole = train("whole")
    card = json.loads((whole / "card.json").read_text())
    assert card["finished"] and card["steps"] == steps and sum(card["phases"].values()) == steps
    if extra.get("freeze_batchnorm"):  # the backbone trained, but every BatchNorm kept ImageNet's running statistics
        trained = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["objects"]["model"]
        imagenet = pretrained_cnn(32).state_dict()
        statistics = [key for key in imagenet if key.endswith(("running_mean", "running_var", "num_batches_tracked"))]
        assert len(statistics) > 100
        for key in statistics:
            torch.testing.assert_close(trained[key], imagenet[key], rtol=0, atol=0, msg=key)
        assert not torch.equal(trained["network.conv_stem.weight"], imagenet["network.conv_stem.weight"])
    train("parts", max_minutes=1e-9)
    assert torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["step"] == 1
    parts = train("parts")
    first, second = registry.load(f"flowers-{model}", root=whole.parent), registry.load(f"flowers-{model}", root=parts.parent)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_logistic_regression_head_folds_the_standardisation():
    from sklearn.linear_model import LogisticRegression

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    features = torch.randn(60, 5, generator=generator) * torch.tensor([1.0, 10.0, 0.1, 3.0, 1.0]) + labels[:, None].float() * 2 + 7
    weight, bias = training.logistic_regression_head(features, labels, num_classes=5, c=0.5)
    mean, std = features.mean(0), features.std(0)
    reference = LogisticRegression(C=0.5, max_iter=300).fit(((features - mean) / std).double().numpy(), labels.numpy())
    logits = features @ weight.T + bias
    expected = torch.from_numpy(reference.decision_function(((features - mean) / std).double().numpy())).float()
    torch.testing.assert_close(logits[:, :3], expected, atol=1e-3, rtol=1e-4)
    assert (logits[:, 3:] == -20).all()  # classes absent from the labels are never predicted
    assert (logits.argmax(1) == labels).float().mean() > 0.9


def test_augment_keeps_range_and_shape():
    images = (torch.rand(6, 3, 16, 16) * 255).to(torch.uint8)
    x = training.augment(images, torch.Generator().manual_seed(0), 0.35, 0.2)
    assert x.shape == (6, 3, 16, 16) and float(x.min()) >= 0 and float(x.max()) <= 1
    again = training.augment(images, torch.Generator().manual_seed(0), 0.35, 0.2)
    assert torch.equal(x, again)
    plain = training.augment(images, torch.Generator().manual_seed(0), 1.0, 0.0)
    flipped_or_not = [torch.equal(p, i) or torch.equal(p, i.flip(2)) for p, i in zip(plain, images.float() / 255)]
    assert all(flipped_or_not)


def test_uploads_of_any_size_become_64_px(tmp_path):
    from demos import flowers as demo

    x = demo.to_input(Image.new("RGB", (300, 200), (200, 40, 90)))
    assert x.shape == (1, 3, 64, 64) and float(x.max()) <= 1
