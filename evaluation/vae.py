"""Measure the MNIST VAEs on the 10,000 test images and write the metrics into their cards.

    python -m evaluation.vae                                   # every trained vae-* checkpoint
    python -m evaluation.vae --checkpoints vae-report --limit 500 --no-write

Per checkpoint, on the test split (the report never loaded it):
- reconstruction with z = μ: squared error per pixel and summed per image, BCE per image, PSNR (data range 1) and
  SSIM (torchmetrics, Gaussian 11×11 window, σ 1.5, on the 28×28 image's valid region), mean over images;
- KL(q(z|x) ‖ N(0, I)) in nats per image, and per latent dimension;
- the ELBO in nats per image, E_q[log p(x|z)] − KL, under the model's own decoder likelihood (N(x̂, ½I) for the MSE
  models, whose −log density is the report's MSE-sum plus 392·log π; Bernoulli(x̂) for the BCE models), with 8 draws
  of z per image (seeded), β = 1 whatever β the model trained with; and the Bernoulli ELBO of every model, the one
  scale on which MSE and BCE models can be compared (−BCE-sum of their decoder means);
- the report's own objective on test (its loss with one draw of z, the model's β), per image;
- how well the 2-D latent separates the digits: 5-nearest-neighbour accuracy of test μ against the training μ.
The plain autoencoders (β = 0) have no posterior: their KL and ELBO are left out.

The test set's μ (and log σ²) with their labels are written beside the weights as `test_latents.npz`, the tab's
latent scatter. The report states no numbers at all (spec §0, §5), so there is nothing to put beside ours but that.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from models import registry
from models.endovae import psnr, ssim
from models.vae import VAE, cross_entropy, kl_divergence, negative_log_likelihood, reconstruction_loss, squared_error
from nndl_data.digits import load_mnist

CHECKPOINTS = ("vae-report", "vae-bce", "vae-bce-ae", "vae-bce-beta4", "vae-mse-ae", "vae-mse-beta4")
FIRST = 500  # the real-checkpoint tests re-measure the first 500 test images
ELBO_SAMPLES = 8
BATCH = 500
REPORT = "no numeric result in the report (spec §0, §5): it trained on the 60,000 training images and never loaded the test split"
SSIM_NOTE = ("SSIM: torchmetrics' structural_similarity_index_measure, Gaussian window 11×11 with σ 1.5, K1 0.01, K2 0.03, "
             "data range 1, on the valid 18×18 region of each 28×28 image, then averaged over images")


def as_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) → float (N, 1, 28, 28) in [0, 1], as ToTensor() gives them."""
    return images.float().div(255).unsqueeze(1)


@torch.no_grad()
def encode_all(model: VAE, images: torch.Tensor, batch_size: int = BATCH) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(μ, log σ² or None) of uint8 images (N, 28, 28)."""
    moments = [model.encode(as_images(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    mu = torch.cat([m for m, _ in moments])
    return mu, None if moments[0][1] is None else torch.cat([v for _, v in moments])


@torch.no_grad()
def measure(model: VAE, images: torch.Tensor, kl_weight: float, samples: int = ELBO_SAMPLES, seed: int = 0, batch_size: int = BATCH) -> dict:
    """The metrics of the module docstring on uint8 images (N, 28, 28), means over images."""
    generator = torch.Generator().manual_seed(seed)
    variational = model.config.variational
    sums: dict[str, float] = {}
    kl_per_dimension = torch.zeros(model.config.latent_dim, dtype=torch.float64)

    def add(key: str, values: torch.Tensor) -> None:
        sums[key] = sums.get(key, 0.0) + float(values.double().sum())

    for start in range(0, len(images), batch_size):
        x = as_images(images[start : start + batch_size])
        mu, logvar = model.encode(x)
        logits = model.decode_logits(mu)  # z = μ
        x_hat = torch.sigmoid(logits)
        add("squared_error_per_image", squared_error(logits, x))
        add("bce_per_image", cross_entropy(logits, x))
        add("psnr", psnr(x_hat, x))
        add("ssim", ssim(x_hat, x))
        if not variational:
            add("report_objective", reconstruction_loss(logits, x, "mse" if model.config.likelihood == "gaussian" else "bce"))
            continue
        kl = kl_divergence(mu, logvar)
        add("kl", kl)
        kl_per_dimension += (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).double().sum(0)
        std = torch.exp(0.5 * logvar)
        nll = torch.zeros(len(x), dtype=torch.float64)
        bernoulli = torch.zeros(len(x), dtype=torch.float64)
        for draw in range(samples):
            z = mu + std * torch.randn(mu.shape, generator=generator)
            sampled = model.decode_logits(z)
            nll += negative_log_likelihood(sampled, x, model.config.likelihood).double()
            bernoulli += cross_entropy(sampled, x).double()
            if draw == 0:  # the report's loss: one draw of z, its reconstruction term + β·KL
                loss = "mse" if model.config.likelihood == "gaussian" else "bce"
                add("report_objective", reconstruction_loss(sampled, x, loss) + kl_weight * kl)
        add("elbo", -(nll / samples) - kl.double())
        add("bernoulli_elbo", -(bernoulli / samples) - kl.double())
    count = len(images)
    result = {key: value / count for key, value in sums.items()}
    result["squared_error_per_pixel"] = result["squared_error_per_image"] / 784
    if variational:
        result["kl_per_dimension"] = (kl_per_dimension / count).tolist()
        result["elbo_bits_per_dim"] = -result["elbo"] / (784 * np.log(2))
    result["images"] = count
    return result


def knn_accuracy(train_mu: torch.Tensor, train_labels: torch.Tensor, test_mu: torch.Tensor, test_labels: torch.Tensor, k: int = 5) -> float:
    """Share of test digits whose k nearest training μ (Euclidean, in the latent) vote for the right digit."""
    from sklearn.neighbors import KNeighborsClassifier

    classifier = KNeighborsClassifier(n_neighbors=k).fit(train_mu.numpy(), train_labels.numpy())
    return float((classifier.predict(test_mu.numpy()) == test_labels.numpy()).mean())


def evaluate(model: VAE, kl_weight: float, test: tuple[torch.Tensor, torch.Tensor], train: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[dict, dict]:
    """(metrics for the card, the test latents for `test_latents.npz`)."""
    images, labels = test
    metrics = {"test": measure(model, images, kl_weight), f"test_first{FIRST}": measure(model, images[:FIRST], kl_weight)}
    mu, logvar = encode_all(model, images)
    if train is not None:
        train_mu, _ = encode_all(model, train[0])
        metrics["test"]["knn5_digit_accuracy"] = knn_accuracy(train_mu, train[1], mu, labels)
    metrics["test"]["mu_mean"] = mu.mean(0).tolist()
    metrics["test"]["mu_std"] = mu.std(0).tolist()
    metrics["ssim_settings"] = SSIM_NOTE
    metrics["psnr_settings"] = "10·log10(1 / MSE) per image, data range 1, z = μ, then averaged over images"
    metrics["elbo_settings"] = (f"nats per image, {ELBO_SAMPLES} draws of z per image (seed 0), β = 1; "
                                f"decoder likelihood {'N(x̂, ½I)' if model.config.likelihood == 'gaussian' else 'Bernoulli(x̂)'}")
    metrics["report"] = REPORT
    latents = {"mu": mu.numpy().astype(np.float16), "labels": labels.numpy().astype(np.uint8)}
    if logvar is not None:
        latents["logvar"] = logvar.numpy().astype(np.float16)
    return metrics, latents


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", default=None, help="default: every trained one of " + ", ".join(CHECKPOINTS))
    parser.add_argument("--checkpoint-root", default=None)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--limit", type=int, default=0, help="only the first N test images (0 = all; nothing is written)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True, help="write the metrics into the cards")
    args = parser.parse_args(argv)
    names = args.checkpoints or [name for name in CHECKPOINTS if registry.available(name, args.checkpoint_root)]
    if not names:
        sys.exit("No vae checkpoints found; train one with `python -m training.vae --preset report`.")
    images, labels = load_mnist("test", args.data_root)
    train = load_mnist("train", args.data_root)
    if args.limit:
        images, labels, train = images[: args.limit], labels[: args.limit], (train[0][: 6 * args.limit], train[1][: 6 * args.limit])
    command = ("python -m evaluation.vae " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    results = {}
    for name in names:
        model = registry.load(name, root=args.checkpoint_root)
        kl_weight = float(registry.load_card(name, root=args.checkpoint_root).get("train_config", {}).get("kl_weight", 1.0))
        metrics, latents = evaluate(model, kl_weight, (images, labels), train)
        test = metrics["test"]
        elbo = f"ELBO {test['elbo']:8.2f} nats (Bernoulli {test['bernoulli_elbo']:7.2f}), KL {test['kl']:5.2f}" if "elbo" in test else "no posterior (plain AE)" + " " * 28
        print(f"{name:14s} {elbo}; squared error {test['squared_error_per_image']:6.2f}/image, BCE {test['bce_per_image']:6.2f}, "
              f"PSNR {test['psnr']:5.2f} dB, SSIM {test['ssim']:.3f}, 5-NN digit accuracy {test.get('knn5_digit_accuracy', float('nan')):.3f}")
        results[name] = metrics
        if args.write and not args.limit:
            registry.update_card(name, root=args.checkpoint_root, metrics=metrics, evaluation_command=command)
            np.savez_compressed(registry.checkpoint_dir(name, args.checkpoint_root) / "test_latents.npz", **latents)
    return results


if __name__ == "__main__":
    main()
