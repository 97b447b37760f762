"""Measure the PixelDA checkpoints and write the results into their cards.

    python -m evaluation.pixelda [--data-root DIR] [--limit N]

Accuracy of the source-only and the adapted classifier on the MNIST test set (10,000) and on every MNIST-M test
image (9,001 in the DANN release), plus per-class MNIST-M accuracy and the adapted classifier's accuracy on
G(MNIST test), which measures whether the generator keeps the digit (content preservation).
"""

from __future__ import annotations

import argparse

import torch

from models import registry
from nndl_data.digits import load_mnist, load_mnist_m, mnist_to_rgb32

COMMAND = "python -m evaluation.pixelda"


@torch.no_grad()
def predict(classifier: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted labels for float images in [0, 1] (or uint8, scaled here)."""
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch
        outputs.append(classifier(batch).argmax(1))
    return torch.cat(outputs)


@torch.no_grad()
def translate_all(generator: torch.nn.Module, images: torch.Tensor, seed: int = 0, batch_size: int = 1000) -> torch.Tensor:
    noise_source = torch.Generator().manual_seed(seed)
    return torch.cat([generator(batch, generator.sample_noise(len(batch), noise_source)) for batch in images.split(batch_size)])


def per_class_accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    return {str(digit): round((predictions[labels == digit] == digit).float().mean().item(), 4) for digit in range(10)}


def evaluate(data_root=None, limit: int | None = None, checkpoint_root=None) -> dict[str, dict]:
    mnist, mnist_labels = load_mnist("test", data_root)
    mnist = mnist_to_rgb32(mnist[:limit])
    mnist_labels = mnist_labels[:limit]
    mnist_m, mnist_m_labels = load_mnist_m("test", data_root, limit=limit)
    results = {}
    for name in ("pixelda-source-only", "pixelda-adapted"):
        classifier = registry.load(name, root=checkpoint_root)
        target_predictions = predict(classifier, mnist_m)
        results[name] = {
            "mnist_test_accuracy": round((predict(classifier, mnist) == mnist_labels).float().mean().item(), 4),
            "mnist_m_test_accuracy": round((target_predictions == mnist_m_labels).float().mean().item(), 4),
            "mnist_m_test_per_class_accuracy": per_class_accuracy(target_predictions, mnist_m_labels),
            "mnist_test_images": len(mnist),
            "mnist_m_test_images": len(mnist_m),
        }
    generator = registry.load("pixelda-generator", root=checkpoint_root)
    adapted = registry.load("pixelda-adapted", root=checkpoint_root)
    transferred = translate_all(generator, mnist)
    results["pixelda-generator"] = {
        "adapted_accuracy_on_generated_mnist_test": round((predict(adapted, transferred) == mnist_labels).float().mean().item(), 4),
        "mnist_test_images": len(mnist),
    }
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--checkpoint-root", default=None)
    parser.add_argument("--limit", type=int, default=None, help="evaluate on the first N test images only (no card update)")
    args = parser.parse_args(argv)
    results = evaluate(args.data_root, args.limit, args.checkpoint_root)
    for name, metrics in results.items():
        print(name, {key: value for key, value in metrics.items() if not isinstance(value, dict)})
        if args.limit is None:
            registry.update_card(name, root=args.checkpoint_root, metrics=metrics, evaluation_command=COMMAND)


if __name__ == "__main__":
    main()
