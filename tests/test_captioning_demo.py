"""The captioning tab's pure functions and adapters on a tiny decoder over the real frozen encoder, and bad uploads."""

from __future__ import annotations

import re

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from demos import captioning as demo
from models.captioning import Captioner, CaptionerConfig
from nndl_data.captioning import SPECIALS
from tests.bad_uploads import MUST_ACCEPT, MUST_REFUSE, bad_image_files

ARABIC_SCRIPT = re.compile(r"[\u0600-\u06ff]")
VOCABULARY = SPECIALS + ("سگ", "در", "پارک", "می", "دود", "یک", "است")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Captioner(CaptionerConfig(vocabulary=VOCABULARY, language="fa", embed_dim=8, decoder_dim=16, attention_dim=8, max_length=8)).eval()


@pytest.fixture
def tiny_tab(tiny, monkeypatch):
    monkeypatch.setattr(demo, "load_model", lambda name="captioning-fa": tiny)
    return tiny


def _photo(seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (180, 260, 3), dtype=np.uint8))


def test_describe_gives_greedy_and_sorted_beams_and_width_one_is_greedy(tiny):
    encoder = demo.load_encoder()
    result = demo.describe(tiny, encoder, _photo(), beam_width=4, length_penalty=0.5, no_repeat_ngram=2, max_length=8)
    assert result.image.size == (224, 224)
    assert len(result.beams) == 4 and [b.score for b in result.beams] == sorted((b.score for b in result.beams), reverse=True)
    single = demo.describe(tiny, encoder, _photo(), beam_width=1, max_length=8)
    assert single.beams[0].ids == single.greedy.ids


def test_attention_panels_one_per_token_and_figure_without_persian(tiny):
    result = demo.describe(tiny, demo.load_encoder(), _photo(), beam_width=2, max_length=8)
    caption = result.beams[0]
    panels = demo.attention_overlays(result.image, caption, tiny.vocabulary)
    assert len(panels) == len(caption.ids)
    assert all(image.shape == (224, 224, 3) and image.dtype == np.uint8 for image, _ in panels)
    assert panels[0][1].startswith("1. ")
    figure = demo.step_figure(caption)
    texts = [text.get_text() for text in figure.findobj(lambda artist: hasattr(artist, "get_text"))]
    assert not any(ARABIC_SCRIPT.search(text) for text in texts)  # matplotlib does not shape Arabic script
    table = demo.steps_html(caption, tiny.vocabulary, "fa")
    assert table.count("<tr>") == len(caption.ids) + 1 and "dir='rtl'" in table


def test_persian_is_rendered_right_to_left_and_escaped():
    assert 'dir="rtl"' in demo.text_html("سگ در پارک", "fa") and 'lang="fa"' in demo.text_html("سگ", "fa")
    assert 'dir="ltr"' in demo.text_html("a dog", "en")
    assert "&lt;script&gt;" in demo.text_html("<script>", "fa")


def test_tokenisation_inspector_highlights_unknown_words():
    text = demo.inspect_tokens("یک سگ در باغ وحش می دود.", VOCABULARY, "fa")
    assert "باغ → &lt;unk&gt;" in text and "وحش → &lt;unk&gt;" in text
    assert text.count("background:#ffd2d2") == 2
    assert "<td>1</td>" in text and "<td>2</td>" in text  # <start> and <end> ids


def test_shipped_examples_are_recognised_with_their_references_also_after_re_encoding(tmp_path):
    shipped = sorted(demo.ASSETS.glob("*.jpg"))
    assert 3 <= len(shipped) <= 6
    assert sum(p.stat().st_size for p in demo.ASSETS.iterdir()) < 1_000_000
    with Image.open(shipped[0]) as image:
        references = demo.references_for(image)
        image.save(tmp_path / "copy.png")  # lossless: the same pixels
    assert references is not None and len(references["fa"]) >= 3 and len(references["en"]) >= 3
    with Image.open(tmp_path / "copy.png") as copy:
        assert demo.references_for(copy)["name"] == shipped[0].name
    assert demo.references_for(_photo()) is None


def test_adapter_returns_every_panel_and_references_for_a_test_image(tiny_tab):
    path = str(sorted(demo.ASSETS.glob("*.jpg"))[0])
    label = next(iter(demo.MODELS))
    shown, greedy_html, beam_html, beams, panels, figure, steps, references = demo._caption(path, label, 3, 0.0, 2, 8, "best beam")
    assert shown.shape == (224, 224, 3)
    assert 'dir="rtl"' in greedy_html and 'dir="rtl"' in beam_html
    assert beams.count("<tr>") == 4  # header + three beams
    assert panels and figure is not None and "step" in steps
    assert "Sentence BLEU" in references and "BLEU-4" in references


@pytest.mark.parametrize("case", MUST_REFUSE)
def test_bad_uploads_are_refused_with_a_message(tiny_tab, tmp_path, case):
    path = bad_image_files(tmp_path)[case]
    with pytest.raises(gr.Error) as error:
        demo._caption(str(path), next(iter(demo.MODELS)), 3, 0.0, 0, 8, "best beam")
    assert len(str(error.value.message)) > 10


@pytest.mark.parametrize("case", MUST_ACCEPT)
def test_odd_but_valid_uploads_are_captioned(tiny_tab, tmp_path, case):
    path = bad_image_files(tmp_path)[case]
    outputs = demo._caption(str(path), next(iter(demo.MODELS)), 2, 0.0, 0, 8, "greedy")
    assert outputs[0].shape == (224, 224, 3)
    assert "no references" in outputs[-1]


def test_missing_input_and_unknown_model_say_what_to_do(tiny_tab):
    with pytest.raises(gr.Error, match="Upload"):
        demo._caption(None, next(iter(demo.MODELS)), 3, 0.0, 0, 8, "best beam")
    with pytest.raises(gr.Error, match="Unknown model"):
        demo._caption(str(sorted(demo.ASSETS.glob("*.jpg"))[0]), "nope", 3, 0.0, 0, 8, "best beam")
    with pytest.raises(gr.Error, match="caption"):
        demo._inspect("   ", next(iter(demo.MODELS)))


def test_results_show_the_report_numbers_and_its_examples():
    text = demo.results_markdown()
    assert "0.0385" in text and "0.231" in text and "COCO-fa is not available" in text
    assert text.count('dir="rtl"') == 9
