"""Real CycleGAN checkpoints: measured quality on a slice of the real test split must match the cards.

Skipped when the checkpoints (or their measured metrics, from `python -m evaluation.cyclegan`) are absent.
"""

import pytest
import torch

from evaluation import cyclegan as evaluation
from models import registry
from nndl_data import DatasetMissing
from nndl_data.cyclegan import load_split

SLICE = evaluation.SLICE


def _card_metrics(dataset: str) -> dict:
    name = f"cyclegan-{dataset}"
    if not registry.available(name):
        pytest.skip(f"{name} is not trained here (python -m training.cyclegan --dataset {dataset})")
    metrics = registry.load_card(name).get("metrics", {})
    if f"cycle_l1_a_first{SLICE}" not in metrics:
        pytest.skip(f"{name} has no measured metrics yet (python -m evaluation.cyclegan)")
    return metrics


def _test_images(dataset: str, split: str, size: int) -> torch.Tensor:
    try:
        return load_split(dataset, split, size=size, limit=SLICE)
    except DatasetMissing as error:
        pytest.skip(str(error))


@pytest.fixture(autouse=True)
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield
    torch.set_num_threads(threads)


@pytest.mark.checkpoint
def test_translated_apples_stay_judged_orange():
    """The first 64 translated test apples are judged "orange" at the card's rate (top-1 of all 1000 classes and
    top-1 among the 10 fruit classes), translation raises the fruit-restricted share well above the inputs', and
    their cycle error matches the card."""
    metrics = _card_metrics("apple2orange")
    if f"orange_share_a2b_first{SLICE}" not in metrics:
        pytest.skip("the card has no judge metrics (evaluation ran with --no-judge)")
    from models.imagenet import imagenet_classifier

    model = registry.load("cyclegan-apple2orange")
    apples = _test_images("apple2orange", "testA", model.config.generator.image_size)
    translated = evaluation.translate_all(model.g_ab, apples)
    assert evaluation.mean_l1(evaluation.translate_all(model.g_ba, translated), apples) == pytest.approx(metrics[f"cycle_l1_a_first{SLICE}"], abs=0.005)
    classes, fruit_classes, _ = evaluation.judge_outputs(imagenet_classifier(), translated)
    assert evaluation.share_in(classes, evaluation.ORANGE_CLASSES) == pytest.approx(metrics[f"orange_share_a2b_first{SLICE}"], abs=0.04)
    fruit_share = evaluation.share_in(fruit_classes, evaluation.ORANGE_CLASSES)
    assert fruit_share == pytest.approx(metrics[f"orange_fruit_share_a2b_first{SLICE}"], abs=0.04)
    _, untranslated, _ = evaluation.judge_outputs(imagenet_classifier(), apples)
    assert fruit_share > evaluation.share_in(untranslated, evaluation.ORANGE_CLASSES) + 0.1


@pytest.mark.checkpoint
@pytest.mark.parametrize("dataset", ["summer2winter"])  # apple2orange's cycle error is checked with the judge above
def test_cycle_error_matches_the_card(dataset):
    metrics = _card_metrics(dataset)
    model = registry.load(f"cyclegan-{dataset}")
    images = _test_images(dataset, "testA", model.config.generator.image_size)
    reconstruction = evaluation.translate_all(model.g_ba, evaluation.translate_all(model.g_ab, images))
    error = evaluation.mean_l1(reconstruction, images)
    assert error == pytest.approx(metrics[f"cycle_l1_a_first{SLICE}"], abs=0.005)
    assert error < 0.15  # a trained cycle: the reconstruction is close to the input
