"""Show, Attend and Tell (Xu et al. 2015) caption decoder over a frozen ImageNet EfficientNet-Lite0 grid.

The report's model (spec §2.4–2.7, 2.12): the last feature map of a frozen ImageNet CNN (here EfficientNet-Lite0,
7×7×1280 at 224 px, the only offline ImageNet weights; the report's B7 gave 7×7×2560) is the set of 49 annotation
vectors a_i. An LSTMCell decoder reads, at every step, the previous word's embedding and the gated context
β_t ⊙ z_t, where z_t = Σ_i α_ti a_i and α_t = softmax over regions of additive (Bahdanau) scores
w·tanh(W_a a_i + W_h h_{t−1}) or, as the report's variant, scaled dot products (W_q h_{t−1})·(W_k a_i)/√d.
β_t = σ(f_β(h_{t−1})) (a vector gate). h_0, c_0 = init_h(ā), init_c(ā) from the mean annotation. Dropout before
the output layer. The vocabulary is a config field, so it travels with the checkpoint.

Decoding: `greedy` and `beam_search` (beams of all images batched as one tensor; length normalisation
score / length^α; no-repeat n-grams; width 1 is greedy). `encode_images` runs the frozen encoder.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import register

SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")
PAD_ID, START_ID, END_ID, UNK_ID = range(4)


@dataclass(frozen=True)
class CaptionerConfig:
    vocabulary: tuple[str, ...] = SPECIALS + ("a", "dog", "runs")  # the real one comes from training (nndl_data.captioning)
    language: str = "fa"  # fa | en: how the tab and the evaluation tokenise references
    encoder_dim: int = 1280  # EfficientNet-Lite0's last feature map
    grid_size: int = 7  # 224 px / stride 32
    embed_dim: int = 256
    decoder_dim: int = 512
    attention_dim: int = 256
    attention: str = "additive"  # additive (Bahdanau, the report's baseline) | dot (scaled dot product, its variant)
    dropout: float = 0.5
    max_length: int = 30  # words generated at most (plus <end>)


class AdditiveAttention(nn.Module):
    """e_i = w·tanh(W_a a_i + W_h h), α = softmax(e) over the regions (masked ones get 0)."""

    def __init__(self, encoder_dim: int, decoder_dim: int, attention_dim: int):
        super().__init__()
        self.encoder_att = nn.Linear(encoder_dim, attention_dim)
        self.decoder_att = nn.Linear(decoder_dim, attention_dim)
        self.full_att = nn.Linear(attention_dim, 1)

    def keys(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder_att(features)  # (B, N, A): computed once per caption, not per step

    def scores(self, keys: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return self.full_att(torch.tanh(keys + self.decoder_att(hidden)[:, None, :])).squeeze(-1)  # (B, N)


class DotProductAttention(nn.Module):
    """e_i = (W_q h)·(W_k a_i) / √d (spec §2.12): the values stay the raw annotations."""

    def __init__(self, encoder_dim: int, decoder_dim: int, attention_dim: int):
        super().__init__()
        self.key = nn.Linear(encoder_dim, attention_dim)
        self.query = nn.Linear(decoder_dim, attention_dim)
        self.scale = 1 / math.sqrt(attention_dim)

    def keys(self, features: torch.Tensor) -> torch.Tensor:
        return self.key(features)  # (B, N, A)

    def scores(self, keys: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bna,ba->bn", keys, self.query(hidden)) * self.scale  # (B, N)


ATTENTIONS = {"additive": AdditiveAttention, "dot": DotProductAttention}


def attend(attention: nn.Module, keys: torch.Tensor, features: torch.Tensor, hidden: torch.Tensor,
           mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(context (B, D), α (B, N)); `mask` (B, N) True where a region exists: padded regions get exactly 0."""
    scores = attention.scores(keys, hidden).float()  # (B, N)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    alpha = torch.softmax(scores, dim=1).to(features.dtype)  # (B, N), sums to 1
    return torch.bmm(alpha[:, None, :], features).squeeze(1), alpha  # (B, D), (B, N)


@dataclass
class DecoderState:
    hidden: torch.Tensor  # (B, H)
    cell: torch.Tensor  # (B, H)


@register("captioning-show-attend-tell", CaptionerConfig)
class Captioner(nn.Module):
    """Annotations (B, N, D) + captions (B, T) → next-word logits (B, T−1, V), α (B, T−1, N), β (B, T−1)."""

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        if config.vocabulary[:4] != SPECIALS:
            raise ValueError(f"the vocabulary must start with {SPECIALS}")
        if config.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {sorted(ATTENTIONS)}, not {config.attention!r}")
        self.config = config
        vocabulary_size = len(config.vocabulary)
        self.attention = ATTENTIONS[config.attention](config.encoder_dim, config.decoder_dim, config.attention_dim)
        self.embedding = nn.Embedding(vocabulary_size, config.embed_dim)
        self.init_h = nn.Linear(config.encoder_dim, config.decoder_dim)
        self.init_c = nn.Linear(config.encoder_dim, config.decoder_dim)
        self.f_beta = nn.Linear(config.decoder_dim, config.encoder_dim)  # vector gate (sgrvinod; the paper's is scalar)
        self.lstm = nn.LSTMCell(config.embed_dim + config.encoder_dim, config.decoder_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.decoder_dim, vocabulary_size)

    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.config.vocabulary

    def example_input(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        features = torch.rand(batch_size, self.config.grid_size**2, self.config.encoder_dim, generator=generator)
        captions = torch.randint(4, len(self.config.vocabulary), (batch_size, 6), generator=generator)
        captions[:, 0], captions[:, -1] = START_ID, END_ID
        return features, captions

    def start(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[DecoderState, torch.Tensor]:
        """h_0, c_0 from the mean annotation (over existing regions) and the attention keys."""
        if mask is None:
            mean = features.mean(1)  # (B, D)
        else:
            weights = mask.to(features.dtype)[..., None]
            mean = (features * weights).sum(1) / weights.sum(1).clamp_min(1)
        state = DecoderState(torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))
        return state, self.attention.keys(features)

    def advance(self, words: torch.Tensor, state: DecoderState, features: torch.Tensor, keys: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[DecoderState, torch.Tensor, torch.Tensor]:
        """The LSTM update for previous words (B,): new state, α (B, N), β (B, D)."""
        context, alpha = attend(self.attention, keys, features, state.hidden, mask)
        beta = torch.sigmoid(self.f_beta(state.hidden))  # (B, D)
        inputs = torch.cat([self.embedding(words), beta * context], dim=1)  # (B, E + D)
        hidden, cell = self.lstm(inputs, (state.hidden, state.cell))
        return DecoderState(hidden, cell), alpha, beta

    def step(self, words: torch.Tensor, state: DecoderState, features: torch.Tensor, keys: torch.Tensor,
             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, DecoderState, torch.Tensor, torch.Tensor]:
        """One word for each row: previous words (B,) → logits (B, V), new state, α (B, N), β (B, D)."""
        state, alpha, beta = self.advance(words, state, features, keys, mask)
        return self.fc(self.dropout(state.hidden)), state, alpha, beta

    def forward(self, features: torch.Tensor, captions: torch.Tensor, mask: torch.Tensor | None = None,
                teacher_forcing: float = 1.0, generator: torch.Generator | None = None):
        """Teacher forcing (scheduled sampling when `teacher_forcing` < 1: each step's input is the model's own
        previous argmax with probability 1 − teacher_forcing). Returns logits (B, T−1, V), α (B, T−1, N), β (B, T−1)
        (β averaged over its vector). Rows are processed longest first and each step only advances the captions
        that have not ended (shrinking batch, as in sgrvinod): α and β are 0 at padded positions (logits the bias), and a padded
        batch costs what its real words cost."""
        batch, steps = captions.shape[0], captions.shape[1] - 1
        lengths = (captions != PAD_ID).sum(1) - 1  # (B,) words to predict, <end> included
        order = lengths.argsort(descending=True, stable=True)
        captions, lengths = captions[order], lengths[order]
        features = features[order]
        mask = mask[order] if mask is not None else None
        state, keys = self.start(features, mask)
        hiddens = features.new_zeros(batch, steps, self.config.decoder_dim)
        alphas = features.new_zeros(batch, steps, features.shape[1])
        betas = features.new_zeros(batch, steps)
        words = captions[:, 0]
        for t in range(steps):
            active = int((lengths > t).sum())  # a prefix, since rows are sorted by length
            if active == 0:
                break
            part = DecoderState(state.hidden[:active], state.cell[:active])
            part, alpha, beta = self.advance(words[:active], part, features[:active], keys[:active], None if mask is None else mask[:active])
            state = DecoderState(torch.cat([part.hidden, state.hidden[active:]]), torch.cat([part.cell, state.cell[active:]]))
            hiddens[:active, t], alphas[:active, t], betas[:active, t] = part.hidden, alpha.to(alphas.dtype), beta.mean(1).to(betas.dtype)
            words = captions[:, t + 1]
            if teacher_forcing < 1.0:
                own = self.fc(part.hidden.detach()).argmax(1)
                use_own = torch.rand(active, generator=generator, device=words.device) >= teacher_forcing
                words = torch.cat([torch.where(use_own, own, words[:active]), words[active:]])
        logits = self.fc(self.dropout(hiddens))  # (B, T−1, V): one matmul for all steps
        inverse = order.argsort()
        return logits[inverse], alphas[inverse], betas[inverse]


def doubly_stochastic_penalty(alphas: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
    """(1 − Σ_t α_ti)² (Xu et al. eq. 14), averaged over regions and the batch as in sgrvinod's widely used
    implementation (so λ = 1 stays comparable to the cross-entropy; the paper's sum over 196 regions is 196× this),
    counting only steps that predict a real word or `<end>` (not padding)."""
    real = (captions[:, 1:] != PAD_ID).to(alphas.dtype)[..., None]  # (B, T−1, 1)
    return ((1 - (alphas * real).sum(1)) ** 2).mean()


def caption_loss(logits: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the next words, padding ignored."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), captions[:, 1:].reshape(-1), ignore_index=PAD_ID)


@dataclass
class Caption:
    """One decoded caption: ids (without `<start>`, up to and including `<end>` if emitted), its total log-probability,
    the score it was ranked by, and per generated token α (T, N) and β (T,)."""

    ids: list[int]
    log_probability: float
    score: float
    alphas: torch.Tensor
    betas: torch.Tensor

    def words(self, vocabulary: tuple[str, ...]) -> list[str]:
        return [vocabulary[i] for i in self.ids if i not in (END_ID, START_ID, PAD_ID)]


def _never_generated(log_probs: torch.Tensor) -> torch.Tensor:
    """`<pad>` and `<start>` are never a next word."""
    log_probs = log_probs.clone()
    log_probs[:, [PAD_ID, START_ID]] = float("-inf")
    return log_probs


def _length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    return length.clamp_min(1).float() ** alpha if alpha else torch.ones_like(length, dtype=torch.float)


@torch.no_grad()
def greedy(model: Captioner, features: torch.Tensor, max_length: int | None = None) -> list[Caption]:
    """Argmax decoding of a batch of annotation sets (B, N, D); stops a row at `<end>`."""
    max_length = max_length or model.config.max_length
    batch = features.shape[0]
    state, keys = model.start(features)
    words = torch.full((batch,), START_ID, dtype=torch.long, device=features.device)
    done = torch.zeros(batch, dtype=torch.bool, device=features.device)
    ids, log_probabilities, alphas, betas = [], torch.zeros(batch, device=features.device), [], []
    for _ in range(max_length + 1):
        logits, state, alpha, beta = model.step(words, state, features, keys)
        log_probs = _never_generated(torch.log_softmax(logits.float(), dim=1))
        words = log_probs.argmax(1)
        log_probabilities += torch.where(done, 0.0, log_probs.gather(1, words[:, None]).squeeze(1))
        ids.append(torch.where(done, PAD_ID, words))
        alphas.append(alpha)
        betas.append(beta.mean(1))
        done |= words == END_ID
        if bool(done.all()):
            break
    ids_matrix, alpha_stack, beta_stack = torch.stack(ids, 1), torch.stack(alphas, 1), torch.stack(betas, 1)
    captions = []
    for row in range(batch):
        row_ids = [int(i) for i in ids_matrix[row] if int(i) != PAD_ID]
        length = len(row_ids)
        captions.append(Caption(row_ids, float(log_probabilities[row]), float(log_probabilities[row]),
                                alpha_stack[row, :length].float().cpu(), beta_stack[row, :length].float().cpu()))
    return captions


def _banned_by_ngrams(sequences: torch.Tensor, n: int, vocabulary_size: int) -> torch.Tensor:
    """(R, L) token histories → (R, V) bool: tokens that would repeat an n-gram already in the row."""
    banned = torch.zeros(sequences.shape[0], vocabulary_size, dtype=torch.bool)
    if n <= 0 or sequences.shape[1] < n:
        return banned
    history = sequences.tolist()
    for row, tokens in enumerate(history):
        prefix = tuple(tokens[len(tokens) - n + 1 :]) if n > 1 else ()
        for start in range(len(tokens) - n + 1):
            if tuple(tokens[start : start + n - 1]) == prefix:
                banned[row, tokens[start + n - 1]] = True
    return banned


@torch.no_grad()
def beam_search(model: Captioner, features: torch.Tensor, beam_width: int = 3, length_penalty: float = 0.0,
                no_repeat_ngram: int = 0, max_length: int | None = None) -> list[list[Caption]]:
    """Beam search for a batch of annotation sets (B, N, D); all B·k beams advance as one tensor.

    Candidates are ranked by log P / length^`length_penalty` (0 = the plain sum, the report's). A finished beam
    stays in the beam unchanged (its only continuation is itself); the search ends when every beam has emitted
    `<end>` or after `max_length` words. With `no_repeat_ngram` = n, a word that would repeat an n-gram of its
    beam is forbidden. Returns, per image, the k final beams, best first. Width 1 is exactly `greedy`."""
    max_length = max_length or model.config.max_length
    batch, regions, _ = features.shape
    k, vocabulary_size, device = beam_width, len(model.config.vocabulary), features.device
    state, keys = model.start(features)
    expand = lambda t: t.repeat_interleave(k, dim=0)  # noqa: E731  (B, …) → (B·k, …)
    features, keys = expand(features), expand(keys)
    state = DecoderState(expand(state.hidden), expand(state.cell))
    sequences = torch.full((batch * k, 1), START_ID, dtype=torch.long, device=device)  # (B·k, t+1)
    alphas = torch.zeros(batch * k, 0, regions, device=device)
    betas = torch.zeros(batch * k, 0, device=device)
    totals = torch.zeros(batch, k, device=device)
    totals[:, 1:] = float("-inf")  # all beams start identical: keep one alive so the first step picks k distinct words
    lengths = torch.zeros(batch * k, dtype=torch.long, device=device)
    finished = torch.zeros(batch * k, dtype=torch.bool, device=device)
    for _ in range(max_length + 1):
        logits, new_state, alpha, beta = model.step(sequences[:, -1], state, features, keys)
        log_probs = _never_generated(torch.log_softmax(logits.float(), dim=1))  # (B·k, V)
        if no_repeat_ngram:
            log_probs = log_probs.masked_fill(_banned_by_ngrams(sequences[:, 1:].cpu(), no_repeat_ngram, vocabulary_size).to(device), float("-inf"))
        # a finished beam has one continuation, <pad>, costing nothing
        log_probs = torch.where(finished[:, None], torch.full_like(log_probs, float("-inf")), log_probs)
        log_probs[:, PAD_ID] = torch.where(finished, 0.0, float("-inf"))
        candidate_totals = totals.reshape(-1, 1) + log_probs  # (B·k, V)
        candidate_lengths = lengths[:, None] + (~finished).long()[:, None]  # (B·k, 1)
        ranking = candidate_totals / _length_penalty(candidate_lengths, length_penalty)
        ranking = ranking.view(batch, k * vocabulary_size)
        best = ranking.topk(k, dim=1).indices  # (B, k) ties → lower index, as greedy's argmax
        source = best // vocabulary_size + torch.arange(batch, device=device)[:, None] * k  # (B, k) beam rows
        words = best % vocabulary_size
        source, words = source.reshape(-1), words.reshape(-1)
        totals = candidate_totals[source, words].view(batch, k)
        was_finished = finished[source]
        lengths = lengths[source] + (~was_finished).long()
        finished = was_finished | (words == END_ID)
        sequences = torch.cat([sequences[source], words[:, None]], dim=1)
        alphas = torch.cat([alphas[source], alpha[source][:, None, :].float()], dim=1)
        betas = torch.cat([betas[source], beta[source].mean(1, keepdim=True).float()], dim=1)
        state = DecoderState(new_state.hidden[source], new_state.cell[source])
        if bool(finished.all()):
            break
    scores = (totals.view(-1) / _length_penalty(lengths, length_penalty)).view(batch, k)
    results = []
    for image in range(batch):
        order = scores[image].argsort(descending=True, stable=True).tolist()
        beams = []
        for position in order:
            row = image * k + position
            if not torch.isfinite(totals[image, position]):
                continue
            length = int(lengths[row])
            ids = [int(i) for i in sequences[row, 1 : 1 + length]]
            beams.append(Caption(ids, float(totals[image, position]), float(scores[image, position]),
                                 alphas[row, :length].cpu(), betas[row, :length].cpu()))
        results.append(beams)
    return results


def attention_entropy(alphas: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each step's attention (T, N) → (T,); log N is uniform attention."""
    return -(alphas * alphas.clamp_min(1e-12).log()).sum(-1)


@torch.no_grad()
def encode_images(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB (B, 3, 224, 224) → annotations (B, 49, 1280) from the ImageNet classifier's last feature map
    (`models.imagenet.ImageNetClassifier`, normalising inside)."""
    grid = encoder.network.forward_features((images - encoder.mean) / encoder.std)  # (B, 1280, 7, 7)
    return grid.flatten(2).transpose(1, 2).contiguous()  # (B, 49, 1280)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def with_vocabulary(config: CaptionerConfig, vocabulary: tuple[str, ...], **changes) -> CaptionerConfig:
    return dataclasses.replace(config, vocabulary=tuple(vocabulary), **changes)
