"""The committed captioning checkpoints, re-measured on the real test split: the BLEU in their cards must hold."""

from __future__ import annotations

import pytest
import torch

from evaluation import captioning as evaluation
from models import registry
from models.captioning import encode_images
from models.imagenet import imagenet_classifier
from nndl_data import DatasetMissing
from nndl_data.captioning import image_path, image_tensor, load_image, read_captions, split_images, tokenised_splits

pytestmark = pytest.mark.checkpoint
TOLERANCE = 0.02  # the evaluation read cached fp16 features computed in batches of 32; here one batch of 50


@pytest.mark.parametrize("name", ["captioning-fa", "captioning-en"])
def test_beam3_bleu4_on_the_first_50_test_images_matches_the_card(name):
    if not registry.available(name):
        pytest.skip(f"{name} not trained here")
    card = registry.load_card(name)
    expected = card.get("metrics", {}).get(f"test_first{evaluation.FIRST_SLICE}", {}).get("beam3_bleu4")
    if expected is None:
        pytest.skip(f"{name} has no measured metrics; run python -m evaluation.captioning")
    model = registry.load(name).eval()
    try:
        captions = read_captions(model.config.language)
    except DatasetMissing as error:
        pytest.skip(str(error))
    test = split_images(captions.images, card["data"]["split"]["seed"])["test"][: evaluation.FIRST_SLICE]
    references = tokenised_splits(captions, {"test": test})["test"].references
    images = torch.stack([image_tensor(load_image(image_path(image))) for image in test])
    features = encode_images(imagenet_classifier(), images).half()  # stored as fp16 by the cache
    hypotheses = evaluation.decode_all(model, features, 3)
    bleu4 = evaluation.corpus_bleu(references, hypotheses)["bleu4"]
    assert bleu4 == pytest.approx(expected, abs=TOLERANCE)
    assert len(references) == evaluation.FIRST_SLICE and all(len(refs) >= 3 for refs in references)
