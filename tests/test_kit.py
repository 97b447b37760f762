"""The tab kit reads every number it shows from the cards, and the overview shows each system's headline."""

import json

import pytest

from demos import kit, overview
from models import registry


@pytest.fixture
def card_root(tmp_path, monkeypatch):
    folder = tmp_path / "demo-model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")  # present, so the registry does not look on the Hub
    (folder / "card.json").write_text(json.dumps({"metrics": {"accuracy": 0.875, "nested": {"dice": 0.4321}}}))
    monkeypatch.setenv("NNDL_CHECKPOINTS", str(tmp_path))
    return tmp_path


def test_metric_reads_dotted_keys_and_is_none_when_missing(card_root):
    assert kit.Metric("acc", "demo-model", "accuracy").ours() == 0.875
    assert kit.Metric("dice", "demo-model", "nested.dice").ours() == 0.4321
    assert kit.Metric("gone", "demo-model", "nested.auroc").ours() is None
    assert kit.Metric("gone", "no-such-model", "accuracy").ours() is None


def test_headline_and_table_put_the_report_beside_ours(card_root):
    metrics = [kit.Metric("accuracy", "demo-model", "accuracy", report=0.9),
               kit.Metric("Dice", "demo-model", "nested.dice", report="0.48 (other data)", percent=False),
               kit.Metric("missing", "demo-model", "nope", report=0.5)]
    assert kit.headline_text(metrics) == "accuracy 87.5 % (report 90.0 %); Dice 0.432 (report 0.48 (other data))"
    table = kit.metrics_table(metrics).splitlines()
    assert table[2] == "| accuracy | 90.0 % | 87.5 % |" and table[4] == "| missing | 50.0 % | – |"


def test_overview_headlines_come_from_the_committed_cards():
    for slug, metrics in overview.HEADLINES.items():
        assert all(metric.ours() is not None for metric in metrics), f"{slug}: a headline metric is missing from its card"
    line = overview.status_line("pixelda", "ready")
    adapted = registry.load_card("pixelda-adapted")["metrics"]["mnist_m_test_accuracy"]
    assert f"{100 * adapted:.1f} %" in line and "report 96.0 %" in line
    assert overview.status_line("pixelda", "not trained: `python -m training.pixelda`").startswith("not trained")
