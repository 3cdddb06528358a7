"""Generated sections in hand-written markdown (experiments.markdown.replace_section), used by every study."""
import pytest

from experiments.markdown import replace_section


def test_fills_only_between_the_markers(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# t\nhand\n<!-- k:begin -->\nold\n<!-- k:end -->\ntail\n")
    replace_section(doc, "k", "new table\n")
    assert doc.read_text() == "# t\nhand\n<!-- k:begin -->\nnew table\n<!-- k:end -->\ntail\n"
    replace_section(doc, "k", "new table\n")  # idempotent
    assert doc.read_text() == "# t\nhand\n<!-- k:begin -->\nnew table\n<!-- k:end -->\ntail\n"


def test_missing_markers_are_an_error_unless_asked_to_create(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# t\nhand\n")
    with pytest.raises(ValueError, match="no '<!-- k:begin -->'"):
        replace_section(doc, "k", "body")
    replace_section(doc, "k", "body", create_title="ignored: the file exists")
    assert doc.read_text() == "# t\nhand\n\n<!-- k:begin -->\nbody\n<!-- k:end -->\n"
    fresh = tmp_path / "fresh.md"
    replace_section(fresh, "k", "body", create_title="Fresh")
    assert fresh.read_text() == "# Fresh\n\n<!-- k:begin -->\nbody\n<!-- k:end -->\n"
