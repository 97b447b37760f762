"""The course report's VAE on MNIST (2-D latent), as written, and the variants of its own theory answers.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; the course report of
../shared/specs/vae-diffusion.md §1 (architecture §1.4, loss §1.5):

- encoder: Conv(1→32, 3, s2, p1) + ReLU → Conv(32→64, 3, s2, p1) + ReLU → flatten (3,136) → FC 128 + ReLU →
  μ, log σ² ∈ R²  (420,868 parameters);
- decoder: FC 2 → 128 + ReLU → FC 3,136 + ReLU → reshape 64×7×7 → ConvT(64→32, 3, s2, p1, op1) + ReLU →
  ConvT(32→1, 3, s2, p1, op1) + sigmoid  (423,681 parameters; 844,549 in all).

What differs from the report, and why (spec §1.6, §6.1):
- the decoder returns logits and `decode` applies the sigmoid, so the Bernoulli (BCE) loss is computed stably; the
  report's sigmoid-then-MSE is the same function;
- reconstructions use z = μ (the report sampled z even in eval mode, so its reconstructions were random);
- `variational=False` is the plain autoencoder of the AE-vs-VAE comparison (Q1 a): the same backbone with no
  log σ² head, z = μ always, no KL.

The loss terms live here too (training, evaluation and the tab share them), per image:
    MSE-sum  Σᵢ (x̂ᵢ − xᵢ)²               = −log N(x; x̂, ½ I) − 392·log π   (the report: a Gaussian with σ² = ½)
    BCE-sum  −Σᵢ xᵢ log x̂ᵢ + (1 − xᵢ) log(1 − x̂ᵢ)  = −log Bernoulli(x; x̂)
    KL       −½ Σⱼ (1 + log σⱼ² − μⱼ² − σⱼ²)     = KL(N(μ, σ²) ‖ N(0, I))
Images are (B, 1, 28, 28) in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import register

PIXELS = 28 * 28
GAUSSIAN_CONSTANT = 0.5 * PIXELS * math.log(math.pi)  # −log N(x; x̂, ½I) = MSE-sum + this


@dataclass(frozen=True)
class VAEConfig:
    latent_dim: int = 2  # the report's ("as you requested")
    hidden_dim: int = 128  # FC between the 64×7×7 map and the latent, both ways
    width: int = 32  # channels of the first convolution (the second has 2×)
    variational: bool = True  # False: the plain autoencoder (no log σ² head, no sampling)
    likelihood: str = "gaussian"  # gaussian (MSE-sum, the report) | bernoulli (BCE-sum): how the ELBO reads the decoder


@register("vae", VAEConfig)
class VAE(nn.Module):
    """x (B, 1, 28, 28) → (logits of x̂, μ, log σ² or None). `reconstruct` gives x̂ with z = μ."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        if config.likelihood not in ("gaussian", "bernoulli"):
            raise ValueError(f"likelihood must be 'gaussian' (MSE) or 'bernoulli' (BCE), not {config.likelihood!r}")
        self.config = config
        w, flat = config.width, 2 * config.width * 7 * 7  # 3,136 in the report
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w, 3, stride=2, padding=1), nn.ReLU(),  # (B, 32, 14, 14)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),  # (B, 64, 7, 7)
            nn.Flatten(), nn.Linear(flat, config.hidden_dim), nn.ReLU(),  # (B, 128)
        )
        self.fc_mu = nn.Linear(config.hidden_dim, config.latent_dim)
        self.fc_logvar = nn.Linear(config.hidden_dim, config.latent_dim) if config.variational else None
        self.from_latent = nn.Sequential(
            nn.Linear(config.latent_dim, config.hidden_dim), nn.ReLU(),
            nn.Linear(config.hidden_dim, flat), nn.ReLU(),
            nn.Unflatten(1, (2 * w, 7, 7)),  # (B, 64, 7, 7)
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # (B, 32, 14, 14)
            nn.ConvTranspose2d(w, 1, 3, stride=2, padding=1, output_padding=1),  # (B, 1, 28, 28) logits
        )

    def example_input(self, batch_size: int) -> torch.Tensor:
        return torch.rand(batch_size, 1, 28, 28)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(μ, log σ²), each (B, latent); log σ² is None for the plain autoencoder."""
        h = self.encoder(x)  # (B, hidden)
        return self.fc_mu(h), self.fc_logvar(h) if self.fc_logvar is not None else None

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_latent(z))  # (B, 1, 28, 28)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))  # (B, 1, 28, 28) in [0, 1]

    def forward(self, x: torch.Tensor, sample: bool | None = None):
        """`sample` draws z = μ + σ·ε (default: while training, as the report's reparameterisation); otherwise z = μ."""
        mu, logvar = self.encode(x)
        sample = self.training if sample is None else sample
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample and logvar is not None else mu
        return self.decode_logits(z), mu, logvar

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction (z = μ), (B, 1, 28, 28) in [0, 1]."""
        return torch.sigmoid(self(x, sample=False)[0])


# ---- the loss terms, per image (B,) ----


def squared_error(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Σ over the 784 pixels of (sigmoid(logits) − x)²: the report's MSE with reduction='sum', per image."""
    return (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)


def cross_entropy(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Σ over the pixels of the binary cross-entropy of x̂ = sigmoid(logits) against x ∈ [0, 1], per image."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) summed over the latent, per image; 0 for the plain autoencoder (no posterior)."""
    if logvar is None:
        return torch.zeros(mu.shape[0], dtype=mu.dtype, device=mu.device)
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor:
    """The training loss's reconstruction term, per image: 'mse' (the report) or 'bce'."""
    if loss == "mse":
        return squared_error(logits, x)
    if loss == "bce":
        return cross_entropy(logits, x)
    raise ValueError(f"loss must be 'mse' or 'bce', not {loss!r}")


def negative_log_likelihood(logits: torch.Tensor, x: torch.Tensor, likelihood: str) -> torch.Tensor:
    """−log p(x | z) in nats per image under the decoder's likelihood: Bernoulli(x̂), or N(x̂, ½I) for the MSE models
    (the Gaussian whose −log density is MSE-sum plus a constant, so that the report's loss is exactly −ELBO + const)."""
    if likelihood == "bernoulli":
        return cross_entropy(logits, x)
    return squared_error(logits, x) + GAUSSIAN_CONSTANT
