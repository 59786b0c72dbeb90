"""Result rows as a user reads them: a table, Markdown, CSV or JSON from one writer."""

import csv
import io
import json

import pytest

from mobilenets.results import FORMATS, human, one_line, render, write_rows

ROWS = [
    {"spec": "v1-0.25-128", "params": 470_000, "latency_ms_p50": 1.234, "top1": 0.414, "int8": True},
    {"spec": "v2-1.00-224", "params": 3_504_872, "latency_ms_p50": 12.5, "top1": None, "int8": False,
     "note": "no weights"},
]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("value, key, text", [
    (None, "", "-"),
    (True, "", "yes"),
    (False, "", "no"),
    (4_253_864, "params", "4,253,864"),
    (1.23456, "latency_ms_p50", "1.23"),
    (3.0, "size_mb", "3.00"),
    (568_700_000.0, "macs", "568,700,000"),
    (0.70612, "top1", "0.706"),
    (12.34, "", "12.3"),
    ("v1-0.50-160", "spec", "v1-0.50-160"),
])
def test_cells_read_as_people_read_them(value, key, text):
    assert human(value, key) == text


def test_one_line_escapes_newlines_and_keeps_printable_text():
    assert one_line("cat.jpg") == "cat.jpg"
    assert one_line("a\nb\tc.jpg") == "a\\nb\\tc.jpg"
    assert "\n" not in one_line("x\r\ny")


def test_table_aligns_numbers_right_text_left_and_shows_missing_as_dash():
    lines = render(ROWS, "table").splitlines()
    assert lines[0].split() == ["spec", "params", "latency_ms_p50", "top1", "int8", "note"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["v1-0.25-128", "470,000", "1.23", "0.414", "yes", "-"]
    assert lines[3].split()[:5] == ["v2-1.00-224", "3,504,872", "12.50", "-", "no"]
    params = lines[0].index("params") + len("params")
    assert lines[2][:params].endswith("470,000") and lines[3][:params].endswith("3,504,872")
    assert lines[2].startswith("v1-0.25-128 ")


def test_columns_choose_and_order_what_is_shown_and_headers_rename_them():
    text = render(ROWS, "table", columns=["top1", "spec"], headers={"top1": "top-1"})
    assert text.splitlines()[0].split() == ["top-1", "spec"]
    assert "params" not in text


def test_markdown_is_a_table_with_numeric_columns_right_aligned():
    lines = render(ROWS, "md", columns=["spec", "params", "int8"]).splitlines()
    assert lines == ["| spec | params | int8 |",
                     "|---|---:|---|",
                     "| v1-0.25-128 | 470,000 | yes |",
                     "| v2-1.00-224 | 3,504,872 | no |"]


def test_csv_keeps_raw_values_and_every_column():
    back = list(csv.DictReader(io.StringIO(render(ROWS, "csv"))))
    assert list(back[0]) == ["spec", "params", "latency_ms_p50", "top1", "int8", "note"]
    assert back[0]["params"] == "470000" and back[0]["latency_ms_p50"] == "1.234"
    assert back[0]["note"] == "" and back[1]["note"] == "no weights"


def test_json_keeps_types_and_fills_missing_keys_with_null():
    back = json.loads(render(ROWS, "json"))
    assert back[0] == {**ROWS[0], "note": None}
    assert back[1] == ROWS[1]


def test_an_unknown_format_names_the_ones_there_are():
    with pytest.raises(ValueError, match=r"format must be one of table, md, csv, json. Received 'xml'"):
        render(ROWS, "xml")
    assert FORMATS == ("table", "md", "csv", "json")


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_rows_to_a_file_writes_what_render_returns(fmt):
    out = io.StringIO()
    write_rows(ROWS, fmt, title="zoo", file=out)
    assert out.getvalue() == render(ROWS, fmt)


def test_write_rows_defaults_to_stdout(capsys):
    write_rows(ROWS, "csv")
    assert capsys.readouterr().out == render(ROWS, "csv")


def test_a_table_on_a_terminal_is_drawn_with_its_title():
    out = _Terminal()
    write_rows(ROWS, "table", title="MobileNet zoo", file=out)
    text = out.getvalue()
    assert "MobileNet zoo" in text and "v2-1.00-224" in text and "3,504,872" in text
    assert text != render(ROWS, "table")


def test_no_rows_is_a_header_only_csv_and_an_empty_json_list():
    assert render([], "json") == "[]"
    assert render([{"a": 1}][:0], "csv", columns=["a", "b"]) == "a,b\n"
