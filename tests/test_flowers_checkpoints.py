"""The Flowers-102 checkpoints still measure what their cards say, on real test images.

The cards hold the evaluation command's numbers: top-1 on all 5,994 test images here, and the clean accuracy on the
fixed class-stratified attack subset (102 images, one per class). The subset is recomputed exactly (same images, same
fp16 weights), so its tolerance only absorbs float differences between machines; a 3-per-class slice checks top-1
within about three binomial standard deviations. A model not trained yet is skipped with the command that trains it.
"""

import pytest
import torch

from evaluation.attacks import stratified_subset
from evaluation.flowers import CHECKPOINTS, topk_accuracy
from models import registry
from nndl_data import DatasetMissing
from nndl_data.flowers import load_flowers

pytestmark = pytest.mark.checkpoint


@pytest.fixture(scope="module")
def test_split():
    try:
        return load_flowers("test")
    except DatasetMissing as error:
        pytest.skip(str(error))


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_accuracy_matches_the_card(name, test_split):
    if not registry.available(name):
        pytest.skip(f"{name} is not trained yet: python -m training.flowers --preset {name.removeprefix('flowers-')}")
    metrics = registry.load_card(name).get("metrics", {})
    if "attack_clean_accuracy" not in metrics:
        pytest.skip(f"{name} is not evaluated yet: python -m evaluation.flowers --checkpoints {name}")
    model = registry.load(name).eval()
    subset = stratified_subset(test_split.labels, metrics["attack_images"])
    with torch.no_grad():
        accuracy = (model(test_split.images[subset].float() / 255).argmax(1) == test_split.labels[subset]).float().mean().item()
    assert abs(accuracy - metrics["attack_clean_accuracy"]) <= 0.015, (accuracy, metrics["attack_clean_accuracy"])
    slice_ = stratified_subset(test_split.labels, 306)[102:]  # 2 more per class, not the attack subset
    top1, _, _ = topk_accuracy(model, test_split.images[slice_], test_split.labels[slice_])
    assert abs(top1 - metrics["test_top1"]) <= 3 * (metrics["test_top1"] * (1 - metrics["test_top1"]) / len(slice_)) ** 0.5 + 0.01, (top1, metrics["test_top1"])
