"""Train the Show, Attend and Tell decoder on Flickr8k with Persian (or the official English) captions.

    python -m training.captioning                          # Persian, the "better" CPU preset: about an hour on one core
    python -m training.captioning --language en            # the same on the English captions (the pipeline check)
    python -m training.captioning --preset report          # the report's settings (no doubly stochastic term)
    python -m training.captioning --attention dot --name captioning-fa-dot    # its scaled dot-product variant
    python -m training.captioning --scheduled-sampling-end 0.75 --name captioning-fa-ss   # its scheduled sampling
    python -m training.captioning --dry-run                # a few steps on generated features and captions

The encoder is frozen, so its 7×7×1280 grids are computed once for all images and cached
(`nndl_data.captioning.image_features`); only the decoder trains. Teacher forcing, cross-entropy with padding
ignored, Adam 1e-3 (the report's), ReduceLROnPlateau(max validation BLEU-4, factor 0.2, patience 3 validations),
gradient clipping at 5, optionally the doubly stochastic attention term λ · mean_i (1 − Σ_t α_ti)² (Xu et al.; on in
the default preset, off in `report`) and scheduled sampling (teacher-forcing probability falling linearly from 1
to `--scheduled-sampling-end`). The weights with the best greedy BLEU-4 on the validation images are kept.
Writes `captioning-<language>` (vocabulary inside); `python -m evaluation.captioning` measures it.
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.captioning import Captioner, CaptionerConfig, caption_loss, doubly_stochastic_penalty, greedy, parameter_count
from nndl_data.captioning import (CITATION, ENCODER_NAME, FLICKR8K_FA, SMOOTHING, SPECIALS, TokenisedSplit, build_vocabulary,
                                  corpus_bleu, encode, image_features, pad_batch, read_captions, split_images, tokenised_splits)
from training.common import BaseTrainConfig, BestWeights, batch_indices, initialise_from, parse_config
from training.loop import Run

SLUG = "captioning"


@dataclass
class TrainConfig(BaseTrainConfig):
    precision: str = "fp32"
    language: str = "fa"  # fa (Persian, machine-translated) | en (the official English captions of the same images)
    name: str = ""  # checkpoint name; default captioning-<language>
    attention: str = "additive"  # additive | dot
    embed_dim: int = 256
    decoder_dim: int = 512
    attention_dim: int = 256
    dropout: float = 0.5
    min_frequency: int = 3
    max_caption_length: int = 30  # words; longer training captions are cut (1 in 1,000 or so)
    steps: int = 6000  # ≈ 13 epochs of the 14 k training captions at batch 32
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    doubly_stochastic_weight: float = 1.0  # λ; 0 = off (the report)
    scheduled_sampling_end: float = 1.0  # teacher-forcing probability at the last step; 1 = always teacher forcing
    gradient_clip: float = 5.0
    plateau_patience: int = 3  # validations without a better BLEU-4 before the LR is multiplied by plateau_factor
    plateau_factor: float = 0.2
    split_seed: int = 0
    log_every: int = 25
    eval_every: int = 400
    save_every: int = 200


PRESETS = {
    "cpu": TrainConfig(),
    # The report: no doubly stochastic term, weight decay (garbled, probably 1e-5), ~46 epochs (≈ 20 k steps here).
    "report": TrainConfig(doubly_stochastic_weight=0.0, weight_decay=1e-5, steps=20000),
}


def checkpoint_name(cfg: TrainConfig) -> str:
    return cfg.name or f"{SLUG}-{cfg.language}"


def resolve(cfg: TrainConfig) -> TrainConfig:
    if cfg.language not in ("fa", "en"):
        raise SystemExit(f"--language must be fa or en, not {cfg.language!r}")
    if cfg.attention not in ("additive", "dot"):
        raise SystemExit(f"--attention must be additive or dot, not {cfg.attention!r}")
    if cfg.dry_run:
        cfg = dataclasses.replace(cfg, embed_dim=8, decoder_dim=16, attention_dim=8, steps=6, batch_size=4, log_every=1,
                                  eval_every=3, save_every=3)
    return cfg


@dataclass
class Data:
    vocabulary: tuple[str, ...]
    splits: dict[str, TokenisedSplit]
    features: dict[str, torch.Tensor]  # split → (N images, 49, D) fp16
    card: dict


def fake_data(cfg: TrainConfig) -> Data:
    """Generated features and captions whose words depend on the image: the dry-run data."""
    generator = np.random.default_rng(cfg.seed)
    words = ["dog", "cat", "runs", "sits", "on", "grass", "a", "red", "ball", "water"]
    splits, features = {}, {}
    for split, count in {"train": 12, "validation": 4, "test": 4}.items():
        images = [f"fake_{split}_{i}.jpg" for i in range(count)]
        references = [[[words[(i + j) % 10], words[(i + 2 * j) % 10], "on", "grass"] for j in range(3)] for i in range(count)]
        tokens = [ref for refs in references for ref in refs]
        index = [i for i in range(count) for _ in range(3)]
        splits[split] = TokenisedSplit(images, tokens, index, references)
        features[split] = torch.from_numpy(generator.random((count, 49, 1280), dtype=np.float32)).half()
    vocabulary = build_vocabulary(splits["train"].tokens, 1)
    return Data(vocabulary, splits, features, {"dataset": "generated dry-run captions"})


def load_data(cfg: TrainConfig) -> Data:
    if cfg.dry_run:
        return fake_data(cfg)
    captions = read_captions(cfg.language, cfg.data_root)
    split = split_images(captions.images, cfg.split_seed)
    splits = tokenised_splits(captions, split)
    counts = collections.Counter(token for tokens in splits["train"].tokens for token in tokens)
    vocabulary = build_vocabulary(splits["train"].tokens, cfg.min_frequency)
    all_tokens = [t for s in splits.values() for tokens in s.tokens for t in tokens]
    covered = sum(1 for t in all_tokens if t in set(vocabulary))
    features = {name: torch.from_numpy(image_features(s.images, cfg.data_root)) for name, s in splits.items() if name != "test"}
    card = {
        "dataset": f"{FLICKR8K_FA}: Flickr8k images (224 px) with " + ("Persian machine-translated captions (captions_fa_en.txt)"
                   if cfg.language == "fa" else "the official English captions (captions_en_flickr8k.txt) of the same images"),
        "citation": CITATION,
        "split": {"by": "image", "seed": cfg.split_seed, "fractions": [0.8, 0.1, 0.1],
                  **{name: {"images": len(s.images), "captions": len(s.tokens)} for name, s in splits.items()}},
        "text": ("clean_caption (drop «نقل قول» and stray quotes) → hazm Normalizer(correct_spacing=False) → punctuation removed "
                 "→ hazm WordTokenizer(join_verb_parts=True)") if cfg.language == "fa" else "lower-case, punctuation removed, words",
        "vocabulary": {"size": len(vocabulary), "min_frequency": cfg.min_frequency, "specials": list(SPECIALS),
                       "unique_training_words": len(counts), "token_coverage_all_splits": round(covered / max(len(all_tokens), 1), 4),
                       "top_words": counts.most_common(10)},
        "encoder": f"{ENCODER_NAME} (ImageNet, timm, frozen), forward_features at 224 px: 7×7×1280; cached",
        "data_root": str(cfg.data_root or "$NNDL_DATA_ROOT or ../shared/data"),
    }
    return Data(vocabulary, splits, features, card)


def model_config(cfg: TrainConfig, vocabulary: tuple[str, ...], encoder_dim: int) -> CaptionerConfig:
    return CaptionerConfig(vocabulary=vocabulary, language=cfg.language, encoder_dim=encoder_dim, embed_dim=cfg.embed_dim,
                           decoder_dim=cfg.decoder_dim, attention_dim=cfg.attention_dim, attention=cfg.attention,
                           dropout=cfg.dropout, max_length=cfg.max_caption_length)


@torch.no_grad()
def validation_bleu(model: Captioner, features: torch.Tensor, references, batch_size: int = 128) -> dict[str, float]:
    """Corpus BLEU-1..4 of greedy captions of the validation images against all their references."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hypotheses = []
    for start in range(0, len(features), batch_size):
        for caption in greedy(model, features[start : start + batch_size].to(device).float()):
            hypotheses.append(caption.words(model.vocabulary))
    model.train(was_training)
    return corpus_bleu(references, hypotheses)


def main(cfg: TrainConfig) -> Path:
    cfg = resolve(cfg)
    name = checkpoint_name(cfg)
    run = Run(cfg, name)
    data = load_data(cfg)
    train = data.splits["train"]
    word_index = {word: i for i, word in enumerate(data.vocabulary)}
    sequences = [encode(tokens[: cfg.max_caption_length], word_index) for tokens in train.tokens]
    image_index = torch.tensor(train.image_index)
    train_features = data.features["train"].to(run.device)
    validation_features = data.features["validation"]
    model = Captioner(model_config(cfg, data.vocabulary, train_features.shape[-1])).to(run.device).train()
    trained = run.wrap(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience)
    best = BestWeights(lower_is_better=False)  # BLEU-4
    start = run.resume(model=model, optimizer=optimizer, plateau=plateau, best=best)
    parent = initialise_from(cfg, model, start, run.run_dir, run.device)

    def step(step: int) -> dict:
        index = run.shard(batch_indices(len(sequences), cfg.batch_size, step, cfg.seed))
        captions = pad_batch([sequences[i] for i in index.tolist()]).to(run.device)  # (B, T)
        features = train_features[image_index[index].to(run.device)].float()  # (B, 49, D)
        teacher_forcing = 1.0 - (1.0 - cfg.scheduled_sampling_end) * step / max(cfg.steps - 1, 1)
        generator = torch.Generator(device=run.device).manual_seed(cfg.seed * 1_000_003 + step)
        with run.autocast():
            logits, alphas, _ = trained(features, captions, teacher_forcing=teacher_forcing, generator=generator)
        cross_entropy = caption_loss(logits.float(), captions)
        penalty = doubly_stochastic_penalty(alphas.float(), captions)
        loss = cross_entropy + cfg.doubly_stochastic_weight * penalty
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.gradient_clip)
        optimizer.step()
        return {"loss": loss, "cross_entropy": cross_entropy, "attention_penalty": penalty, "teacher_forcing": teacher_forcing,
                "learning_rate": optimizer.param_groups[0]["lr"]}

    def validate(done: int) -> dict:
        scores = validation_bleu(model, validation_features, data.splits["validation"].references)
        best.offer(scores["bleu4"], model, done)
        return {f"validation_{key}": value for key, value in scores.items()}

    run.train(cfg.steps, step, validate=validate, log_every=cfg.log_every, eval_every=cfg.eval_every, save_every=cfg.save_every,
              after_validation=lambda metrics: plateau.step(metrics["validation_bleu4"]))  # on every process
    run.close()
    final = validation_bleu(model, validation_features, data.splits["validation"].references)["bleu4"]
    best.offer(final, model, run.steps_done)
    model.load_state_dict(best.weights)
    model.eval()
    return run.save_checkpoint(
        model, name, data=data.card, half=True, finished=run.finished(cfg.steps), best_step=best.step,
        best_validation_bleu4_greedy=round(best.score, 5), validation_smoothing=SMOOTHING, initialised_from=parent,
        decoder_parameters=parameter_count(model),
    )


if __name__ == "__main__":
    main(parse_config(TrainConfig, PRESETS))
