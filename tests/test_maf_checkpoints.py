"""The committed maf checkpoints, re-measured on the real MVTec AD test split: the metrics in their cards must hold."""

from __future__ import annotations

import pytest
from sklearn.metrics import roc_auc_score

from evaluation import maf as evaluation
from models import registry
from nndl_data import DatasetMissing
from nndl_data.maf import list_samples

pytestmark = pytest.mark.checkpoint
TOLERANCE = 0.01  # fp16 weights, CPU arithmetic: scores move in the last bits, ranks almost never


def _evaluated(name: str) -> dict:
    if not registry.available(name):
        pytest.skip(f"{name} not trained here (python -m training.maf)")
    card = registry.load_card(name)
    if "image_auroc_every_third" not in card.get("metrics", {}):
        pytest.skip(f"{name} has no measured metrics; run python -m evaluation.maf")
    return card


@pytest.mark.parametrize("name", evaluation.DEFAULT_CHECKPOINTS)
def test_image_auroc_holds_on_every_third_test_image(name):
    card = _evaluated(name)
    category = evaluation.category_of(name, card)
    try:
        samples = list_samples(category, "test")[::3]
    except DatasetMissing as error:
        pytest.skip(str(error))
    model = registry.load(name)
    scores, _ = evaluation.score_samples(model, samples, with_maps=False)
    measured = roc_auc_score([s.is_anomalous for s in samples], scores)
    assert measured == pytest.approx(card["metrics"]["image_auroc_every_third"], abs=TOLERANCE)
    assert float(model.threshold) == pytest.approx(card["threshold"]["value"], rel=1e-3)  # the validation choice travels


def test_capsule_targets_from_the_cards():
    """The issue's targets, as measured on the whole capsule test split by the evaluation command."""
    pixel = _evaluated("maf-pixel-capsule")["metrics"]
    assert pixel["image_auroc"] >= 0.78
    features = _evaluated("maf-features-capsule")["metrics"]
    assert features["image_auroc"] >= 0.85 and features["pixel_auroc"] >= 0.9
