"""Masked Autoregressive Flows: the course report's pixel-space MAF and a flow on pretrained features.

Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density Estimation", NeurIPS 2017, built from
MADE blocks (Germain, Gregor, Murray & Larochelle, "MADE: Masked Autoencoder for Distribution Estimation", ICML
2015). Spec: ../shared/specs/maf-cyclegan.md part 1.

- `MADE`: masked linear layers; input degrees 1…D, hidden degrees evenly spaced over [1, D − 1] (with the MADE
  paper's `k mod (D − 1) + 1` and H ≪ D every output would see only the first H inputs, spec §1.8.5); the output
  layer is zero-initialised (each block starts as the identity) and the log-scale is soft-clamped,
  α = c·tanh(α_raw / c). An optional condition (a positional encoding) enters the first hidden layer unmasked.
- `MAFStack`: blocks with the order reversed between consecutive blocks, N(0, I) base;
  `forward(x) → (z, per-dimension log-density in data order)`, `inverse(z)`. Two exact inverses: `inverse_naive`
  (the report's D sequential MADE passes per block) and `inverse` (degree-ordered incremental evaluation: a hidden
  unit of degree m is final once x_1…x_m are known, so the first layer's pre-activation is updated by a rank-n
  term per segment of new dimensions, every hidden unit is computed once, and all dimensions between two
  consecutive degrees of the last hidden layer are set in one step: at most H + 1 steps per block, about one
  dense forward pass of arithmetic). Both give the same x.
- `PixelMAF` (`maf-pixel`): images on the 8-bit lattice, uniform dequantisation + logit transform
  (λ = 0.05, RealNVP), NLL in bits/dim; per-pixel contribution maps; temperature sampling.
- `FeatureFlow` (`maf-features`): per-position conditional MAFs on frozen ImageNet EfficientNet-Lite0 feature
  maps (strides 8 and 16) with a sinusoidal positional condition (the DifferNet / CFlow-AD / FastFlow idea); the
  per-position NLL is the anomaly map, its maximum after a Gaussian blur the image score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import register

LOG_TWO_PI = math.log(2 * math.pi)


def hidden_degrees(dim: int, width: int, strategy: str = "even") -> torch.Tensor:
    """Degrees of one hidden layer's units, nondecreasing in [1, D − 1]. `even`: 1 + ⌊k(D − 1)/H⌋ (spec §1.8.5);
    `made`: the MADE paper's k mod (D − 1) + 1, which with H ≪ D only ever reaches degree H."""
    units = torch.arange(width)
    if strategy == "even":
        return 1 + units * max(dim - 1, 1) // width
    if strategy == "made":
        return units % max(dim - 1, 1) + 1
    raise ValueError(f"degree strategy must be 'even' or 'made', not {strategy!r}")


class MaskedLinear(nn.Linear):
    """y = (W ⊙ M) x + b. The mask is a function of the config, rebuilt on construction, not saved."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.float(), persistent=False)  # (out, in)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


class MADE(nn.Module):
    """x (N, D) [+ condition (N, K)] → μ, α (N, D), where μ_i and α_i depend only on x_{<i}."""

    def __init__(self, dim: int, hidden: tuple[int, ...], condition_dim: int = 0, clamp: float = 3.0, degrees: str = "even"):
        super().__init__()
        self.dim, self.clamp = dim, clamp
        input_degrees = torch.arange(1, dim + 1)
        layer_degrees = [hidden_degrees(dim, width, degrees) for width in hidden]
        self.layers = nn.ModuleList()
        previous = input_degrees
        for degrees_here in layer_degrees:
            self.layers.append(MaskedLinear(len(previous), len(degrees_here), degrees_here[:, None] >= previous[None, :]))
            previous = degrees_here
        output_mask = input_degrees[:, None] > previous[None, :]  # strict: x_i never sees x_i
        self.output = MaskedLinear(len(previous), 2 * dim, torch.cat([output_mask, output_mask]))
        nn.init.zeros_(self.output.weight)  # every block starts as the identity
        nn.init.zeros_(self.output.bias)
        self.condition = nn.Linear(condition_dim, hidden[0], bias=False) if condition_dim else None
        for index, degrees_here in enumerate(layer_degrees):
            self.register_buffer(f"degrees_{index}", degrees_here, persistent=False)

    def hidden_layer_degrees(self) -> list[torch.Tensor]:
        return [getattr(self, f"degrees_{index}") for index in range(len(self.layers))]

    def soft_clamp(self, raw: torch.Tensor) -> torch.Tensor:
        return self.clamp * torch.tanh(raw / self.clamp)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.layers[0](x)  # (N, H1)
        if self.condition is not None:
            h = h + self.condition(condition)
        h = F.relu(h)
        for layer in self.layers[1:]:
            h = F.relu(layer(h))
        mu, raw = self.output(h).chunk(2, dim=-1)  # (N, D) each
        return mu, self.soft_clamp(raw)

    @torch.no_grad()
    def invert_naive(self, u: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """x from u = (x − μ(x))·e^{−α(x)}: D full passes, one dimension each (the report's sampler)."""
        x = torch.zeros_like(u)
        for i in range(self.dim):
            mu, alpha = self(x, condition)
            x[:, i] = u[:, i] * alpha[:, i].exp() + mu[:, i]
        return x

    @torch.no_grad()
    def invert(self, u: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """The same x as `invert_naive`, by degree-ordered incremental evaluation (module docstring)."""
        dim, batch = self.dim, u.shape[0]
        weights = [layer.masked_weight() for layer in self.layers]
        biases = [layer.bias for layer in self.layers]
        output_weight, output_bias = self.output.masked_weight(), self.output.bias
        degrees = self.hidden_layer_degrees()
        condition_weight = self.condition.weight if self.condition is not None else None
        for index, order in enumerate([torch.argsort(d, stable=True) for d in degrees]):  # units sorted by degree
            degrees[index] = degrees[index][order]
            weights[index], biases[index] = weights[index][order], biases[index][order]
            if index + 1 < len(weights):
                weights[index + 1] = weights[index + 1][:, order]
            else:
                output_weight = output_weight[:, order]
            if index == 0 and condition_weight is not None:
                condition_weight = condition_weight[order]
        mu_weight, alpha_weight = output_weight[:dim], output_weight[dim:]  # (D, H_L)
        mu_bias, alpha_bias = output_bias[:dim], output_bias[dim:]
        stops = torch.unique(degrees[-1].clamp(max=dim)).tolist()
        stops = [stop for stop in stops if stop < dim] + [dim]
        cuts = [torch.searchsorted(d, torch.tensor(stops), right=True).tolist() for d in degrees]  # units with degree ≤ stop

        x = torch.zeros_like(u)
        first = biases[0].expand(batch, -1).clone()  # (N, H1) running pre-activation of the first layer
        if condition_weight is not None:
            first = first + condition @ condition_weight.T
        hidden = [u.new_zeros(batch, len(d)) for d in degrees]  # final values, filled as units become final
        done = 0
        finished = [0] * len(degrees)
        for segment, stop in enumerate(stops):
            last = hidden[-1]  # units of degree ≤ done are final; the others are masked out for these outputs
            mu = last @ mu_weight[done:stop].T + mu_bias[done:stop]  # (N, n)
            alpha = self.soft_clamp(last @ alpha_weight[done:stop].T + alpha_bias[done:stop])
            x[:, done:stop] = u[:, done:stop] * alpha.exp() + mu
            first = first + x[:, done:stop] @ weights[0][:, done:stop].T  # rank-n update
            for index in range(len(degrees)):
                start, end = finished[index], cuts[index][segment]
                if end > start:
                    if index == 0:
                        hidden[0][:, start:end] = F.relu(first[:, start:end])
                    else:
                        hidden[index][:, start:end] = F.relu(hidden[index - 1] @ weights[index][start:end].T + biases[index][start:end])
                finished[index] = end
            done = stop
        return x


class MAFStack(nn.Module):
    """MADE blocks, order reversed between consecutive blocks, standard normal base."""

    def __init__(self, dim: int, hidden: tuple[int, ...], blocks: int, condition_dim: int = 0, clamp: float = 3.0, degrees: str = "even"):
        super().__init__()
        self.dim = dim
        self.blocks = nn.ModuleList(MADE(dim, hidden, condition_dim, clamp, degrees) for _ in range(blocks))

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, D) → z (N, D) in the last block's order, log p(x) per dimension (N, D) in x's order:
        log N(z_i) mapped back through the flips plus Σ_k −α_i^k (spec §1.8.9; sums to log p(x))."""
        log_density = torch.zeros_like(x)
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            mu, alpha = block(x, condition)
            x = (x - mu) * torch.exp(-alpha)
            log_density = log_density - alpha
            if index < last:
                x, log_density = x.flip(-1), log_density.flip(-1)
        log_density = log_density - 0.5 * (x.pow(2) + LOG_TWO_PI)
        if last % 2:  # an odd number of flips: back to x's order
            log_density = log_density.flip(-1)
        return x, log_density

    def log_prob(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self(x, condition)[1].sum(-1)  # (N,)

    @torch.no_grad()
    def inverse(self, z: torch.Tensor, condition: torch.Tensor | None = None, naive: bool = False) -> torch.Tensor:
        x = z
        for index in reversed(range(len(self.blocks))):
            if index < len(self.blocks) - 1:
                x = x.flip(-1)
            block = self.blocks[index]
            x = block.invert_naive(x, condition) if naive else block.invert(x, condition)
        return x

    def inverse_naive(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.inverse(z, condition, naive=True)


# ------------------------------------------------------------------------------------------------- pixel MAF
@dataclass(frozen=True)
class PixelMAFConfig:
    image_size: int = 32  # the report: 128
    channels: int = 1  # 1 = luma (RGB inputs are converted inside), 3 = RGB (the report)
    hidden: tuple[int, ...] = (256, 256)  # the report's text: (512, 512); its table: (512, 512, 512)
    blocks: int = 5  # the report: 7
    clamp: float = 3.0
    degrees: str = "even"  # even | made (the MADE paper's rule, the H ≪ D pitfall)
    logit_lambda: float = 0.05


@register("maf-pixel", PixelMAFConfig)
class PixelMAF(nn.Module):
    """Images (B, 3 or C, S, S) in [0, 1] on the 8-bit lattice → per-image NLL in bits/dim (the anomaly score)."""

    def __init__(self, config: PixelMAFConfig):
        super().__init__()
        self.config = config
        self.dim = config.channels * config.image_size**2
        self.flow = MAFStack(self.dim, config.hidden, config.blocks, clamp=config.clamp, degrees=config.degrees)
        self.register_buffer("threshold", torch.tensor(float("nan")))  # bits/dim, chosen on validation images

    def example_input(self, batch: int) -> torch.Tensor:
        return torch.randint(0, 256, (batch, self.config.channels, self.config.image_size, self.config.image_size)).float() / 255

    def to_lattice(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3 or C, S, S) in [0, 1] → integer levels 0…255 (B, C, S, S); RGB → luma (ITU-R 601) when C = 1."""
        if images.shape[-1] != self.config.image_size or images.shape[-2] != self.config.image_size:
            raise ValueError(f"expected {self.config.image_size} px images, got {tuple(images.shape[-2:])}; resize with nndl_data.maf")
        if self.config.channels == 1 and images.shape[1] == 3:
            images = (images * torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        return (images * 255).round().clamp(0, 255)

    def dequantize_and_logit(self, levels: torch.Tensor, noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """y = (level + u)/256 (u = ½ at evaluation), s = logit(λ + (1 − 2λ)y); returns s (B, D) and log|ds/dy| (B, D)."""
        lam = self.config.logit_lambda
        y = (levels.flatten(1) + (0.5 if noise is None else noise.flatten(1))) / 256
        p = lam + (1 - 2 * lam) * y
        s = torch.log(p) - torch.log1p(-p)
        return s, math.log(1 - 2 * lam) - torch.log(p) - torch.log1p(-p)

    def log_density_per_dimension(self, images: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """log p(y) per dimension (B, D) of the dequantised image, including the logit transform's log-det."""
        s, log_det = self.dequantize_and_logit(self.to_lattice(images), noise)
        return self.flow(s)[1] + log_det

    def bits_per_dim(self, log_density: torch.Tensor) -> torch.Tensor:
        """(NLL_y + D ln 256) / (D ln 2) from per-dimension log-densities (B, D) (spec §1.8.4)."""
        return (-log_density.sum(-1) + self.dim * math.log(256)) / (self.dim * math.log(2))

    def forward(self, images: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.bits_per_dim(self.log_density_per_dimension(images, noise))  # (B,)

    def pixel_map(self, images: torch.Tensor) -> torch.Tensor:
        """Per-pixel NLL contributions in bits, summed over channels (B, S, S): −log p terms mapped to their pixels."""
        size, channels = self.config.image_size, self.config.channels
        nll = -(self.log_density_per_dimension(images) - math.log(256)) / math.log(2)
        return nll.view(-1, channels, size, size).sum(1)

    @torch.no_grad()
    def sample(self, count: int, temperature: float = 1.0, generator: torch.Generator | None = None, naive: bool = False) -> torch.Tensor:
        """Exact samples x = f⁻¹(z), z ~ N(0, T²I) → images (count, C, S, S) in [0, 1]."""
        device = self.threshold.device
        z = torch.randn(count, self.dim, generator=generator).to(device) * temperature
        s = self.flow.inverse(z, naive=naive)
        lam = self.config.logit_lambda
        y = ((torch.sigmoid(s) - lam) / (1 - 2 * lam)).clamp(0, 1)
        return y.view(count, self.config.channels, self.config.image_size, self.config.image_size)


# ------------------------------------------------------------------------------------------------ feature flow
BACKBONE_CHANNELS = {1: 24, 2: 40, 3: 80, 4: 112, 5: 192}  # EfficientNet-Lite0 stage → channels (strides 4, 8, 16, 16, 32)


@dataclass(frozen=True)
class FeatureFlowConfig:
    image_size: int = 256  # the backbone's input
    stages: tuple[int, ...] = (2, 4)  # EfficientNet-Lite0 stages: 40 channels at stride 8, 112 at stride 16
    pool: int = 3  # 3×3 average of neighbouring features (local context, as PatchCore)
    hidden: tuple[int, ...] = (256, 256)
    blocks: int = 4
    position_frequencies: int = 8  # sin/cos of 2^k·π·row and ·column, k < F: a 4F-dimensional condition
    clamp: float = 3.0
    blur_sigma: float = 4.0  # Gaussian blur of the image-size map, in pixels
    top_fraction: float = 0.0  # image score: 0 = the map's maximum, else the mean of its top fraction


def positional_encoding(height: int, width: int, frequencies: int, device=None) -> torch.Tensor:
    """(height·width, 4F): sin and cos of 2^k·π·r and 2^k·π·c, r and c in [0, 1] (raster order)."""
    rows = torch.linspace(0, 1, height, device=device).view(-1, 1).expand(height, width).reshape(-1)
    cols = torch.linspace(0, 1, width, device=device).view(1, -1).expand(height, width).reshape(-1)
    scales = (2.0 ** torch.arange(frequencies, device=device)) * math.pi
    angles = torch.cat([rows[:, None] * scales, cols[:, None] * scales], dim=1)  # (P, 2F)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


@torch.no_grad()
def backbone_features(images: torch.Tensor, stages: tuple[int, ...] = (2, 4), pool: int = 3) -> list[torch.Tensor]:
    """Frozen ImageNet EfficientNet-Lite0 feature maps of [0, 1] RGB images (B, 3, S, S), one per stage."""
    from models.imagenet import imagenet_classifier

    classifier = imagenet_classifier()
    network = classifier.network
    x = network.bn1(network.conv_stem((images - classifier.mean.to(images.device)) / classifier.std.to(images.device)))
    features = []
    for index, stage in enumerate(network.blocks):
        x = stage(x)
        if index in stages:
            features.append(F.avg_pool2d(x, pool, 1, pool // 2, count_include_pad=False) if pool > 1 else x)
        if index >= max(stages):
            break
    return features


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, H, W) maps, reflect-padded."""
    if sigma <= 0:
        return maps
    radius = int(math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = F.pad(maps[:, None], (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return F.conv2d(x, kernel.view(1, 1, -1, 1))[:, 0]


@register("maf-features", FeatureFlowConfig)
class FeatureFlow(nn.Module):
    """Backbone feature maps → per-position NLL per channel, standardised per stage on validation images and
    averaged over stages at the finest stage's resolution (B, h, w). `anomaly_map(images)` runs the backbone."""

    def __init__(self, config: FeatureFlowConfig):
        super().__init__()
        self.config = config
        channels = [BACKBONE_CHANNELS[stage] for stage in config.stages]
        condition_dim = 4 * config.position_frequencies
        self.flows = nn.ModuleList(MAFStack(c, config.hidden, config.blocks, condition_dim, config.clamp) for c in channels)
        for index, c in enumerate(channels):  # feature standardisation, from the training images
            self.register_buffer(f"feature_mean_{index}", torch.zeros(c))
            self.register_buffer(f"feature_std_{index}", torch.ones(c))
        self.register_buffer("stage_mean", torch.zeros(len(channels)))  # per-stage NLL statistics on validation images
        self.register_buffer("stage_std", torch.ones(len(channels)))
        self.register_buffer("threshold", torch.tensor(float("nan")))  # image score, chosen on validation images

    def example_input(self, batch: int) -> tuple[torch.Tensor, ...]:
        size = 8
        return tuple(torch.randn(batch, BACKBONE_CHANNELS[stage], size >> index, size >> index) for index, stage in enumerate(self.config.stages))

    def standardise(self, index: int, features: torch.Tensor) -> torch.Tensor:
        mean, std = getattr(self, f"feature_mean_{index}"), getattr(self, f"feature_std_{index}")
        return (features - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)

    def stage_nll(self, index: int, features: torch.Tensor) -> torch.Tensor:
        """Feature map (B, C, h, w) → NLL per channel at each position (B, h, w), in nats."""
        batch, channels, height, width = features.shape
        x = self.standardise(index, features).permute(0, 2, 3, 1).reshape(-1, channels)  # (B·h·w, C)
        condition = positional_encoding(height, width, self.config.position_frequencies, features.device).repeat(batch, 1)
        return -self.flows[index].log_prob(x, condition).view(batch, height, width) / channels

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        """One feature map per stage → the combined anomaly map (B, h, w) at the first stage's resolution."""
        size = features[0].shape[-2:]
        maps = []
        for index, stage_features in enumerate(features):
            nll = (self.stage_nll(index, stage_features) - self.stage_mean[index]) / self.stage_std[index]
            maps.append(F.interpolate(nll[:, None], size=size, mode="bilinear", align_corners=False)[:, 0])
        return torch.stack(maps).mean(0)

    @torch.no_grad()
    def anomaly_map(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, S, S), S = image_size → blurred anomaly map at image resolution (B, S, S)."""
        return self.map_from_features(backbone_features(images, self.config.stages, self.config.pool), images.shape[-1])

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return backbone_features(images, self.config.stages, self.config.pool)

    @torch.no_grad()
    def map_from_features(self, features: list[torch.Tensor], size: int) -> torch.Tensor:
        """Backbone features of S px images → blurred anomaly map (B, S, S)."""
        coarse = self(*features)
        full = F.interpolate(coarse[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        return gaussian_blur(full, self.config.blur_sigma * size / self.config.image_size)

    def image_score(self, maps: torch.Tensor) -> torch.Tensor:
        flat = maps.flatten(1)
        if self.config.top_fraction <= 0:
            return flat.max(1).values
        count = max(1, int(self.config.top_fraction * flat.shape[1]))
        return flat.topk(count, dim=1).values.mean(1)
