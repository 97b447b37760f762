"""Persian captions (captioning): the text pipeline on known sentences, the loaders and split on a generated copy of
the published layout, BLEU against a hand-computed case, attention, greedy / beam search, dry-run training with
resume, and the evaluation on a tiny checkpoint."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from PIL import Image

from models import registry
from models.captioning import (END_ID, PAD_ID, START_ID, Captioner, CaptionerConfig, attend, attention_entropy, beam_search,
                               caption_loss, doubly_stochastic_penalty, greedy)
from nndl_data import captioning as data

TINY_VOCABULARY = data.SPECIALS + tuple("abcdefghijklmnop")
TINY = dict(vocabulary=TINY_VOCABULARY, encoder_dim=16, embed_dim=8, decoder_dim=12, attention_dim=8, grid_size=3, max_length=8)


def tiny_model(seed: int = 0, **changes) -> Captioner:
    torch.manual_seed(seed)
    return Captioner(CaptionerConfig(**{**TINY, **changes})).eval()


# ---- text ----

def test_hazm_keeps_the_report_table_3_tokens():
    # The report's Table 3 caption: «می رسد» stays two tokens (correct_spacing=False).
    tokens = data.tokenize("به نظر می رسد روز بسیار خوبی در بیرون است.")
    assert tokens == ["به", "نظر", "می", "رسد", "روز", "بسیار", "خوبی", "در", "بیرون", "است"]


def test_hazm_normalises_arabic_letters_digits_and_punctuation():
    assert data.normalize("كودكي با ۲ توپ، در پارك!") == "کودکی با ۲ توپ در پارک"
    assert data.normalize("2 سگ") == "۲ سگ"  # digits unified to one script
    assert data.tokenize("سگ نشسته است") == ["سگ", "نشسته_است"]  # the report's joined verb parts


def test_quote_artefacts_are_removed():
    assert data.clean_caption("نقل قول سگ با توپ نارنجی") == "سگ با توپ نارنجی"
    assert data.clean_caption('علامت "مادر" نقل قول  ok') == "علامت مادر ok"
    assert "نقل" not in data.tokenize("نقل قول یک زوج و یک نوزاد")


def test_english_tokens_are_lower_case_words():
    assert data.tokenize("A dog's ball , in the Park .", "en") == ["a", "dog's", "ball", "in", "the", "park"]


def test_vocabulary_min_frequency_specials_and_unknown_words():
    vocabulary = data.build_vocabulary([["a", "b", "a"], ["a", "b", "c"], ["b"]], min_frequency=3)
    assert vocabulary == ("<pad>", "<start>", "<end>", "<unk>", "a", "b")
    assert data.encode(["a", "c", "b"], vocabulary) == [data.START_ID, 4, data.UNK_ID, 5, data.END_ID]
    assert data.decode([1, 4, 3, 5, 2, 4], vocabulary) == ["a", "<unk>", "b"]
    batch = data.pad_batch([[1, 4, 2], [1, 4, 5, 4, 5, 2]], max_length=4)
    assert batch.tolist() == [[1, 4, 2, 0], [1, 4, 5, 2]]


# ---- the published layout, generated ----

@pytest.fixture
def flickr_root(tmp_path):
    folder = tmp_path / "captions" / "flickr8k_fa"
    (folder / "images").mkdir(parents=True)
    lines, english = [], ["image,caption"]
    for i in range(20):
        name = f"{1000 + i}_abc.jpg"
        Image.new("RGB", (224, 224), (i * 10, 100, 200)).save(folder / "images" / name)
        for j in range(5 if i else 4):
            lines.append(f"{name}____{i * 5 + j}|||نقل قول سگ {j} در پارک|||\"A dog {j} in a park ")
            english.append(f"{name},A dog {j} in the park .")
    english.append("99_other.jpg,An image without Persian captions .")
    (folder / "captions_fa_en.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "captions_en_flickr8k.txt").write_text("\n".join(english) + "\n", encoding="utf-8")
    return tmp_path


def test_loaders_read_the_published_layout(flickr_root):
    persian = data.read_persian_captions(flickr_root)
    assert len(persian.images) == 20 and len(persian.raw["1000_abc.jpg"]) == 4
    assert persian.english["1001_abc.jpg"][0] == "A dog 0 in a park"
    english = data.read_english_captions(flickr_root)
    assert sorted(english.raw) == persian.images  # kept to the images with Persian captions
    assert data.load_image(data.image_path("1003_abc.jpg", flickr_root)).size == (224, 224)


def test_split_is_by_image_seeded_and_disjoint(flickr_root):
    images = data.read_persian_captions(flickr_root).images
    split = data.split_images(images, seed=0)
    assert [len(split[k]) for k in ("train", "validation", "test")] == [16, 2, 2]
    assert set(split["train"]).isdisjoint(split["test"]) and set(sum(split.values(), [])) == set(images)
    assert split == data.split_images(list(reversed(images)), seed=0)
    assert split != data.split_images(images, seed=1)
    splits = data.tokenised_splits(data.read_persian_captions(flickr_root), split)
    assert all(len(refs) in (4, 5) for refs in splits["test"].references)  # every reference of an image


# ---- metrics ----

def test_corpus_bleu_matches_a_hand_computed_case():
    hypothesis = "the cat sat on the mat".split()
    references = ["the cat is on the mat".split(), "there is a cat on the mat".split()]
    # Clipped n-gram precisions: 1-grams 5/6 (the×2 clipped to 2, sat unmatched), 2-grams 3/5 (the cat, on the,
    # the mat), 3-grams 1/4 (on the mat), 4-grams 0/3 → smoothed to 0.1/3 (method1, ε = 0.1). Closest reference
    # length 6 = hypothesis length: brevity penalty 1.
    p = [5 / 6, 3 / 5, 1 / 4, 0.1 / 3]
    scores = data.corpus_bleu([references], [hypothesis])
    assert scores["bleu1"] == pytest.approx(p[0])
    assert scores["bleu2"] == pytest.approx(math.sqrt(p[0] * p[1]))
    assert scores["bleu4"] == pytest.approx(math.prod(p) ** 0.25)
    assert data.sentence_bleu(references, hypothesis)["bleu4"] == pytest.approx(scores["bleu4"])
    assert data.corpus_bleu([references], [references[0]])["bleu4"] == pytest.approx(1.0)


def test_chrf_is_one_for_an_exact_match_and_lower_otherwise():
    assert data.corpus_chrf([["سگ در پارک"]], ["سگ در پارک"]) == pytest.approx(1.0)
    assert data.corpus_chrf([["سگ در پارک"]], ["گربه روی مبل"]) < 0.3


# ---- model ----

def test_forward_shapes_loss_and_gradients_reach_every_parameter():
    model = tiny_model().train()
    features, captions = model.example_input(3)
    captions[0, 4:] = PAD_ID
    logits, alphas, betas = model(features, captions)
    assert logits.shape == (3, 5, len(TINY_VOCABULARY)) and alphas.shape == (3, 5, 9) and betas.shape == (3, 5)
    loss = caption_loss(logits, captions) + doubly_stochastic_penalty(alphas, captions)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for name, p in model.named_parameters()), \
        [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_attention_sums_to_one_and_ignores_padded_regions(kind):
    model = tiny_model(attention=kind)
    features = torch.rand(2, 9, 16)
    state, keys = model.start(features)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False  # three padded regions in the second image
    context, alpha = attend(model.attention, keys, features, state.hidden, mask)
    torch.testing.assert_close(alpha.sum(1), torch.ones(2))
    assert (alpha[1, 6:] == 0).all()
    changed = features.clone()
    changed[1, 6:] = 100.0  # whatever the padding holds, the second image's context and α stay the same
    state2, keys2 = model.start(changed, mask)
    state1, keys1 = model.start(features, mask)
    c1, a1 = attend(model.attention, keys1, features, state1.hidden, mask)
    c2, a2 = attend(model.attention, keys2, changed, state2.hidden, mask)
    torch.testing.assert_close(c1[1], c2[1])
    torch.testing.assert_close(a1[1], a2[1])


@torch.no_grad()
def test_padding_after_a_caption_changes_nothing_before_it():
    model = tiny_model()
    features, captions = model.example_input(1)
    padded = torch.cat([captions, torch.full((1, 3), PAD_ID)], 1)
    short, long_ = model(features, captions)[0], model(features, padded)[0]
    torch.testing.assert_close(long_[:, : short.shape[1]], short)
    assert float(caption_loss(long_[:, : short.shape[1]], captions)) == pytest.approx(float(caption_loss(long_, padded)))
    alphas = model(features, padded)[1]
    assert float(doubly_stochastic_penalty(alphas, padded)) == pytest.approx(float(doubly_stochastic_penalty(alphas[:, :5], captions)))


def test_scheduled_sampling_at_probability_one_is_teacher_forcing():
    model = tiny_model()
    features, captions = model.example_input(2)
    torch.testing.assert_close(model(features, captions, teacher_forcing=1.0)[0], model(features, captions)[0])
    assert not torch.equal(model(features, captions, teacher_forcing=0.0)[0], model(features, captions)[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_width_one_equals_greedy(seed):
    model = tiny_model(seed)
    features = torch.rand(4, 9, 16)
    for greedy_caption, beams in zip(greedy(model, features), beam_search(model, features, beam_width=1)):
        assert beams[0].ids == greedy_caption.ids
        assert beams[0].log_probability == pytest.approx(greedy_caption.log_probability, abs=1e-5)
        torch.testing.assert_close(beams[0].alphas, greedy_caption.alphas)


def test_beam_search_is_batched_sorted_and_respects_the_options():
    model = tiny_model(3)
    features = torch.rand(3, 9, 16)
    results = beam_search(model, features, beam_width=4, length_penalty=0.7, no_repeat_ngram=2)
    one_by_one = [beam_search(model, features[i : i + 1], beam_width=4, length_penalty=0.7, no_repeat_ngram=2)[0] for i in range(3)]
    for beams, alone in zip(results, one_by_one):
        assert len(beams) == 4
        assert [b.ids for b in beams] == [b.ids for b in alone]  # batching the images changes nothing
        assert [b.score for b in beams] == sorted((b.score for b in beams), reverse=True)
        for beam in beams:
            assert START_ID not in beam.ids and PAD_ID not in beam.ids
            assert beam.score == pytest.approx(beam.log_probability / len(beam.ids) ** 0.7, rel=1e-5)
            bigrams = list(zip(beam.ids, beam.ids[1:]))
            assert len(bigrams) == len(set(bigrams))  # no repeated 2-gram
            assert beam.alphas.shape == (len(beam.ids), 9)
            torch.testing.assert_close(beam.alphas.sum(1), torch.ones(len(beam.ids)))
    # the best beam is at least as likely as greedy under the plain sum (width 5 includes greedy's path early on)
    plain = beam_search(model, features, beam_width=5)
    for g, beams in zip(greedy(model, features), plain):
        assert beams[0].log_probability >= g.log_probability - 1e-5 or END_ID not in g.ids


def test_attention_entropy_bounds():
    uniform = torch.full((2, 9), 1 / 9)
    torch.testing.assert_close(attention_entropy(uniform), torch.full((2,), math.log(9)))
    assert attention_entropy(torch.eye(9)[:2]).abs().max() < 1e-6


def test_registry_round_trip_keeps_the_vocabulary(checkpoint_root):
    model = tiny_model()
    registry.save(model, "captioning-tiny", card={}, half=True)
    loaded = registry.load("captioning-tiny")
    assert loaded.vocabulary == TINY_VOCABULARY
    features = torch.rand(2, 9, 16)
    assert [c.ids for c in greedy(loaded, features)] == [c.ids for c in greedy(registry.load("captioning-tiny"), features)]


# ---- training and evaluation ----

def test_dry_run_trains_resumes_and_evaluates(tmp_path, checkpoint_root):
    from evaluation import captioning as evaluation
    from training import captioning as training

    run_dir = tmp_path / "run"
    cfg = training.TrainConfig(dry_run=True, run_dir=str(run_dir), checkpoint_root=str(checkpoint_root), steps=6)
    cfg_half = dataclasses.replace(cfg, max_minutes=1e-9)  # stops after the first step
    training.main(cfg_half)
    assert (run_dir / "last.pt").exists()
    state = torch.load(run_dir / "last.pt", weights_only=True)
    assert state["step"] == 1
    directory = training.main(cfg)  # resumes at step 1 and finishes
    card = registry.load_card("captioning-fa", root=checkpoint_root)
    assert card["steps"] == 6 and card["finished"]
    log = (run_dir / "log.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in log[1:]] == list(range(1, 7))
    model = registry.load("captioning-fa", root=checkpoint_root)
    assert model.vocabulary[:4] == data.SPECIALS
    metrics = evaluation.evaluate_split(model, training.fake_data(cfg).features["test"], training.fake_data(cfg).splits["test"].references,
                                        beam_widths=(1, 3))
    assert set(metrics) >= {"greedy", "beam3"} and 0 <= metrics["beam3"]["bleu4"] <= 1
    assert directory is not None
