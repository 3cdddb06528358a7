"""The generated sections of README.md and MODEL_CARD.md, and the studies' committed reports, are what their
commands produce from the committed sources (the weights manifest, the studies' run records): a record or
a shipped tag that changed without regenerating them fails here."""
import json
import re
from pathlib import Path

import pytest

from experiments.fmnist_study.__main__ import CARD_SECTIONS, DEFAULT_DIRS
from experiments.fmnist_study.cells import CellTable
from experiments.fmnist_study.presets import PRESETS
from experiments.fmnist_study.records import finished_results
from experiments.fmnist_study.report import StudyReport, model_card_section
from experiments.model_card import tags_table

ROOT = Path(__file__).parents[2]


def _section(path: Path, key: str) -> str:
    match = re.search(rf"<!-- {key}:begin -->\n(.*?)\n<!-- {key}:end -->", path.read_text(encoding="utf-8"), re.S)
    assert match, f"{path.name} has no {key} section"
    return match.group(1)


def test_readme_tags_table_is_the_manifests():
    assert _section(ROOT / "README.md", "pretrained-tags") == tags_table(), \
        "README's tag table is stale: run `python -m experiments.model_card`"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_study_report_and_model_card_section_match_the_records(preset):
    docs = ROOT / DEFAULT_DIRS[preset][1]
    payload = json.loads((docs / "results.json").read_text())
    records = finished_results(docs / "runs", PRESETS[preset].plan())
    hint = f"run `python -m experiments.fmnist_study --preset {preset} --report-only`"
    assert payload["finished_runs"] == len(records) and payload["planned_runs"] == len(PRESETS[preset].plan()), hint
    assert json.loads(json.dumps(CellTable.from_records(records).to_json())) == payload["cells"], hint
    on_disk = {p.stem for p in (docs / "runs").glob("*.json")}
    assert on_disk == {r.run_id for r in records}, "a record outside the plan"
    expected = model_card_section(StudyReport.from_json(payload), docs, ROOT)
    assert _section(ROOT / "MODEL_CARD.md", CARD_SECTIONS[preset]) == expected.strip(), hint
