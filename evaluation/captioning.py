"""Measure the caption models on the test images and write the metrics into their cards.

    python -m evaluation.captioning                                   # every trained captioning-* checkpoint
    python -m evaluation.captioning --checkpoints captioning-fa --limit 50 --no-write

Test set: the test images of the seeded 80/10/10 split by image recorded in the card (355 images, ~5 references
each). For greedy decoding and beam search (width 3, plain log-probability sum like the report; no length
normalisation, no n-gram blocking): corpus BLEU-1..4 (nltk `corpus_bleu`, smoothing method1) of the generated
tokens against all references of each image, tokenised the same way as for training (hazm for Persian), and
corpus chrF (character 6-grams, β = 2). Also the teacher-forced test cross-entropy (the report's "test loss") and
`test_first50`: beam-3 BLEU-4 on the first 50 test images, which the checkpoint tests re-measure.
"""

from __future__ import annotations

import argparse
import sys

import torch

from models import registry
from models.captioning import Captioner, beam_search, caption_loss, greedy
from nndl_data.captioning import (SMOOTHING, corpus_bleu, corpus_chrf, encode, image_features, pad_batch, read_captions,
                                  split_images, tokenised_splits)

# The report (spec §2.8): COCO-fa, one reference per image, EfficientNet-B7; greedy/beam not stated for these.
REPORT = {
    "additive attention (baseline)": {"test_loss": 3.1399, "bleu1": 0.2311, "bleu4": 0.0385},
    "+ scheduled sampling": {"test_loss": 3.1685, "bleu1": 0.2041, "bleu4": 0.0322},
    "scaled dot-product attention": {"test_loss": 3.1201, "bleu1": 0.2092, "bleu4": 0.0313},
}
SHOW_ATTEND_TELL_FLICKR8K = {"bleu1": 0.67, "bleu2": 0.448, "bleu3": 0.299, "bleu4": 0.195}  # Xu et al. 2015, soft attention
TARGETS = {"fa": 0.10, "en": 0.12}  # beam-3 BLEU-4 (issue 23)
DEFAULT_CHECKPOINTS = ("captioning-fa", "captioning-en", "captioning-fa-dot", "captioning-fa-ss")
FIRST_SLICE = 50


def decode_all(model: Captioner, features: torch.Tensor, beam_width: int, batch_size: int = 64) -> list[list[str]]:
    """Token lists of the best caption of each image (greedy for width 1)."""
    words = []
    for start in range(0, len(features), batch_size):
        batch = features[start : start + batch_size].float()
        if beam_width == 1:
            words += [caption.words(model.vocabulary) for caption in greedy(model, batch)]
        else:
            words += [beams[0].words(model.vocabulary) for beams in beam_search(model, batch, beam_width=beam_width)]
    return words


def scores(references: list[list[list[str]]], hypotheses: list[list[str]]) -> dict[str, float]:
    result = corpus_bleu(references, hypotheses)
    result["chrf"] = corpus_chrf([[" ".join(r) for r in refs] for refs in references], [" ".join(h) for h in hypotheses])
    result["mean_length"] = sum(map(len, hypotheses)) / max(len(hypotheses), 1)
    return {key: round(value, 5) for key, value in result.items()}


@torch.no_grad()
def test_loss(model: Captioner, features: torch.Tensor, references: list[list[list[str]]], batch_size: int = 256) -> float:
    """Teacher-forced cross-entropy per word (and `<end>`) over every reference caption."""
    index = {word: i for i, word in enumerate(model.vocabulary)}
    pairs = [(image, encode(tokens[: model.config.max_length], index)) for image, refs in enumerate(references) for tokens in refs]
    total, count = 0.0, 0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        captions = pad_batch([sequence for _, sequence in chunk])
        logits = model(features[[image for image, _ in chunk]].float(), captions)[0]
        words = int((captions[:, 1:] != 0).sum())
        total += float(caption_loss(logits, captions)) * words
        count += words
    return total / max(count, 1)


def evaluate_split(model: Captioner, features: torch.Tensor, references, beam_widths=(1, 3)) -> dict:
    metrics = {}
    for width in beam_widths:
        metrics["greedy" if width == 1 else f"beam{width}"] = scores(references, decode_all(model, features, width))
    metrics["test_loss"] = round(test_loss(model, features, references), 5)
    return metrics


def test_split(model: Captioner, card: dict, data_root: str | None = None):
    """(image names, features, references) of the checkpoint's test split."""
    captions = read_captions(model.config.language, data_root)
    split = split_images(captions.images, card.get("data", {}).get("split", {}).get("seed", 0))
    test = tokenised_splits(captions, {"test": split["test"]})["test"]
    return test.images, torch.from_numpy(image_features(test.images, data_root)), test.references


def evaluate(name: str, data_root: str | None = None, checkpoint_root: str | None = None, limit: int = 0) -> dict:
    model = registry.load(name, root=checkpoint_root).eval()
    card = registry.load_card(name, root=checkpoint_root)
    images, features, references = test_split(model, card, data_root)
    if limit:
        images, features, references = images[:limit], features[:limit], references[:limit]
    metrics = {"test": evaluate_split(model, features, references)}
    first = decode_all(model, features[:FIRST_SLICE], 3)
    metrics[f"test_first{FIRST_SLICE}"] = {"beam3_bleu4": round(corpus_bleu(references[:FIRST_SLICE], first)["bleu4"], 5)}
    metrics.update({
        "test_images": len(images), "references_per_image": round(sum(map(len, references)) / len(references), 3),
        "tokenisation": "hazm (as in training)" if model.config.language == "fa" else "lower-case words",
        "bleu": f"corpus BLEU, nltk, all references of each image; {SMOOTHING}",
        "chrf": "corpus chrF, character 6-grams, β = 2 (torchmetrics)",
        "beam": "width 3, sum of log-probabilities (no length normalisation, no n-gram blocking), max 30 words",
        "target_beam3_bleu4": TARGETS.get(model.config.language),
    })
    return metrics


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", default=None, help="default: every trained captioning-* checkpoint")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--checkpoint-root", default=None)
    parser.add_argument("--limit", type=int, default=0, help="only the first N test images (a quick look; not written)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True, help="write the metrics into the cards")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = args.checkpoints or [name for name in DEFAULT_CHECKPOINTS if registry.available(name, root=args.checkpoint_root)]
    results = {}
    for name in names:
        metrics = evaluate(name, args.data_root, args.checkpoint_root, args.limit)
        results[name] = metrics
        test = metrics["test"]
        print(f"{name}: greedy BLEU-1/4 {test['greedy']['bleu1']:.4f}/{test['greedy']['bleu4']:.4f}, beam-3 "
              f"{test['beam3']['bleu1']:.4f}/{test['beam3']['bleu4']:.4f}, chrF {test['beam3']['chrf']:.4f}, "
              f"test loss {test['test_loss']:.4f}", file=sys.stderr)
        if args.write and not args.limit:
            command = "python -m evaluation.captioning " + " ".join(argv if argv is not None else sys.argv[1:])
            registry.update_card(name, root=args.checkpoint_root, metrics=metrics, evaluation_command=command.strip())
    return results


if __name__ == "__main__":
    main()
