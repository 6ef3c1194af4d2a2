"""Markdown tables and generated sections (`fetal_analytics.markdown`)."""

from __future__ import annotations

import math

import pytest

from fetal_analytics.markdown import MarkdownError, markdown_table, write_section


def test_a_table_has_a_header_a_rule_and_a_row_per_record():
    records = [{"model": "SonoNet", "F1": 0.7123, "F1 (paper)": 0.71, "n": 12},
               {"model": "a|b", "F1": None, "F1 (paper)": math.nan, "n": 3}]
    assert markdown_table(records, column_digits={"F1 (paper)": 2}) == [
        "| model | F1 | F1 (paper) | n |",
        "|---|---|---|---|",
        "| SonoNet | 0.712 | 0.71 | 12 |",
        "| a\\|b |  |  | 3 |",
    ]
    assert markdown_table(records[:1], digits=1)[2] == "| SonoNet | 0.7 | 0.7 | 12 |"
    assert markdown_table([]) == []


SECTION = "<!-- figures:start -->\n## Figures\n\n| a |\n|---|\n| 1 |\n<!-- figures:end -->\n"


def test_a_section_is_appended_then_replaced_between_its_markers(tmp_path):
    path = tmp_path / "REPORT.md"
    before, after = "# Report\n\nWritten by hand.\n", "\n## Notes\n\nAlso by hand.\n"
    path.write_text(before)
    write_section(path, SECTION)
    assert path.read_text() == before + "\n" + SECTION
    path.write_text(path.read_text() + after)
    write_section(path, SECTION.replace("| 1 |", "| 2 |"))
    text = path.read_text()
    assert text == before + "\n" + SECTION.replace("| 1 |", "| 2 |") + after
    write_section(path, SECTION.replace("| 1 |", "| 2 |"))
    assert path.read_text() == text
    fresh = tmp_path / "new.md"
    write_section(fresh, SECTION)
    assert fresh.read_text() == SECTION


def test_a_section_without_markers_or_a_file_with_one_marker_is_refused(tmp_path):
    path = tmp_path / "REPORT.md"
    with pytest.raises(MarkdownError, match="must start and end with two different marker"):
        write_section(path, "## Figures\n\nno markers\n")
    with pytest.raises(MarkdownError, match="must start and end with two different marker"):
        write_section(path, "<!-- figures:start -->\n")
    assert not path.exists()
    path.write_text("x\n<!-- figures:start -->\nno end\n")
    with pytest.raises(MarkdownError, match=r"REPORT.md has only one of the markers "
                                            r"<!-- figures:start --> and <!-- figures:end -->"):
        write_section(path, SECTION)
    assert path.read_text() == "x\n<!-- figures:start -->\nno end\n"
