"""The one helper every benchmark writes its CSV, JSON and tables with (benchmarks.tables)."""
import csv
import json
from pathlib import Path

from benchmarks.tables import format_value, markdown_table, text_table, write_csv, write_json


def test_csv_has_every_key_in_first_seen_order_and_blank_cells_for_missing_ones(tmp_path):
    path = tmp_path / "rows.csv"
    write_csv(path, [{"a": 1, "b": 2.5}, {"b": 3, "c": None}, {"c": "x", "a": 4}])
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["a", "b", "c"], ["1", "2.5", ""], ["", "3", ""], ["4", "", "x"]]
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]  # no temporary left behind


def test_json_is_one_space_indented_with_str_for_other_values(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"where": Path("/x"), "rows": [1, 2.0]})
    text = path.read_text()
    assert text == '{\n "where": "/x",\n "rows": [\n  1,\n  2.0\n ]\n}\n'
    assert json.loads(text) == {"where": "/x", "rows": [1, 2.0]}


def test_markdown_table():
    assert markdown_table(["model", "N"], [["wrn16_2", 4], ["sc", None]]) == (
        "| model | N |\n|---|---|\n| wrn16_2 | 4 |\n| sc | None |")
    assert markdown_table(("a",), []) == "| a |\n|---|"


def test_text_table_aligns_columns_and_formats_values():
    assert [format_value(v) for v in (None, 1.23456, 123.456, 7, "gc")] == ["-", "1.235", "123.5", "7", "gc"]
    table = text_table([{"conv": "gc2l:fused", "time_ms": 1.5}, {"conv": "sc", "extra": 1}], ["conv", "time_ms"])
    assert table.splitlines() == ["conv        time_ms",
                                  "----------  -------",
                                  "gc2l:fused  1.500  ",
                                  "sc          -      "]
