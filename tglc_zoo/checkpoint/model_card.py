"""``README.md``: a Hugging Face model card (YAML front matter + markdown) for a checkpoint folder.

The card reports only what it is given: measured metrics are passed in by whoever measured them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from huggingface_hub import EvalResult, ModelCardData

from .hf import HF_PREFIX, is_hf_repo_id

CARD_NAME = "README.md"
LIBRARY_NAME = "tglc_zoo"
# our metric keys -> (the Hub's metric type, its name in model-index); other keys stay in the card's table only
_HUB_METRIC = {"top1": ("accuracy", "Top-1 accuracy (%)"), "top5": ("accuracy", "Top-5 accuracy (%)"),
               "accuracy": ("accuracy", "Accuracy"), "loss": ("loss", "Cross-entropy loss")}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)


def render_model_card(config: Mapping[str, Any], *, metrics: Mapping[str, float] | None = None,
                      dataset: str | None = None, license: str = "apache-2.0", base_model: str | None = None,
                      tags: Sequence[str] = (), num_params: int | None = None, recipe: str | None = None,
                      description: str | None = None, model_name: str | None = None,
                      dataset_name: str | None = None) -> str:
    """Render the card text for a checkpoint described by ``config`` (see :mod:`.config`).

    Args:
        config: the checkpoint config (architecture, model_args, pretrained_cfg, ...).
        metrics: measured results, e.g. ``{"top1": 91.3, "top5": 99.8}``; reported as given.
        dataset: dataset the metrics were measured on (and the weights trained on): its Hub dataset id
            (e.g. ``zalando-datasets/fashion_mnist``) where it has one, as the Hub indexes those.
        dataset_name: the dataset's readable name for model-index (default: ``dataset``).
        license: SPDX-style licence id for the front matter.
        base_model: the checkpoint these weights were fine-tuned from (repo id, tag or path); it enters
            the front matter only when it is a Hub repo id, as the Hub requires.
        tags: extra Hub tags.
        num_params: parameter count to report.
        recipe: how the weights were trained (free text or a command line).
        description: a paragraph placed under the title.
        model_name: title and model-index name (default: the architecture, with its tag when it has one).
    """
    arch = config["architecture"]
    args = config.get("model_args", {})
    pcfg = config.get("pretrained_cfg", {})
    tag = pcfg.get("tag")
    name = model_name or (f"{arch}.{tag}" if tag else arch)
    conv_type = args.get("conv_type")
    metrics = dict(metrics or {})
    for key, value in metrics.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"metric {key!r} must be a number, got {value!r}")
    all_tags = ["image-classification", LIBRARY_NAME, "timm", "group-convolution",
                *([conv_type] if conv_type else []), *tags]
    eval_results = [EvalResult(task_type="image-classification", task_name="Image Classification",
                               dataset_type=dataset, dataset_name=dataset_name or dataset, dataset_split="test",
                               metric_type=_HUB_METRIC[k][0], metric_name=_HUB_METRIC[k][1], metric_value=float(v))
                    for k, v in metrics.items() if k in _HUB_METRIC] if dataset else None
    data = ModelCardData(
        library_name=LIBRARY_NAME, license=license, tags=list(dict.fromkeys(all_tags)),
        datasets=[dataset] if dataset else None,
        metrics=sorted({_HUB_METRIC[k][0] for k in metrics if k in _HUB_METRIC}) or None,
        base_model=base_model.removeprefix(HF_PREFIX) if base_model and is_hf_repo_id(base_model) else None,
        model_name=name if eval_results else None, eval_results=eval_results or None,
        pipeline_tag="image-classification",
    )
    lines = ["---", data.to_yaml(), "---", "", f"# {name}", ""]
    if description:
        lines += [description, ""]
    lines += ["An image classifier from tglc_zoo (two-level group convolution model zoo).", "",
              "| field | value |", "|---|---|", f"| architecture | `{arch}` |"]
    for key in ("conv_type", "groups", "in_chans"):
        if key in args:
            lines.append(f"| {key} | {_fmt(args[key])} |")
    lines.append(f"| num_classes | {config.get('num_classes')} |")
    if num_params is not None:
        lines.append(f"| parameters | {num_params:,} |")
    for key in ("input_size", "mean", "std", "interpolation", "crop_pct"):
        if key in pcfg:
            lines.append(f"| {key} | {_fmt(pcfg[key])} |")
    if dataset:
        lines.append(f"| dataset | {dataset} |")
    if base_model:
        lines.append(f"| base model | `{base_model}` |")
    lines.append("")
    if metrics:
        lines += ["## Results", "", f"Measured on {dataset or 'the evaluation set'}:", "", "| metric | value |",
                  "|---|---|", *(f"| {k} | {_fmt(float(v))} |" for k, v in metrics.items()), ""]
    if pcfg.get("label_names"):
        lines += ["## Labels", "", ", ".join(str(x) for x in pcfg["label_names"]), ""]
    if recipe:
        lines += ["## Training recipe", "", recipe, ""]
    lines += ["## Usage", "", "```python", "import tglc_zoo", "",
              'model = tglc_zoo.from_pretrained("<this folder, file, URL or Hub repo id>")', "```", ""]
    return "\n".join(lines)
