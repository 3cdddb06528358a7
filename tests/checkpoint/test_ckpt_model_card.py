import pytest
from huggingface_hub import ModelCard

from tglc_zoo.checkpoint import render_model_card


def test_front_matter_is_hub_yaml(cfg_dict):
    text = render_model_card(cfg_dict, metrics={"top1": 91.25, "loss": 0.31}, dataset="fashion_mnist",
                             base_model="org/base", num_params=12345, recipe="python scripts/finetune.py ...")
    data = ModelCard(text).data.to_dict()
    assert data["library_name"] == "tglc_zoo" and data["license"] == "apache-2.0"
    assert data["datasets"] == ["fashion_mnist"] and data["base_model"] == "org/base"
    assert "gc2l" in data["tags"] and "timm" in data["tags"]
    results = data["model-index"][0]["results"]
    assert {(m["type"], m["value"]) for r in results for m in r["metrics"]} == {("accuracy", 91.25), ("loss", 0.31)}
    assert {m["name"] for r in results for m in r["metrics"]} == {"Top-1 accuracy (%)", "Cross-entropy loss"}
    assert data["metrics"] == ["accuracy", "loss"] and data["pipeline_tag"] == "image-classification"
    assert "| top1 | 91.25 |" in text and "12,345" in text and "a, b, c" in text


def test_no_metrics_no_results_section(cfg_dict):
    text = render_model_card(cfg_dict)
    data = ModelCard(text).data.to_dict()
    assert "model-index" not in data and "## Results" not in text and "base_model" not in data


def test_metric_must_be_a_number(cfg_dict):
    with pytest.raises(ValueError, match="'top1'.*'high'"):
        render_model_card(cfg_dict, metrics={"top1": "high"})
