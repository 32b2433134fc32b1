"""Escaping of interpolated values and number formatting for cards."""

from __future__ import annotations

import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cards import escape_markdown, format_money, format_number, format_percent, plain_text, yuan

MARKDOWN_CONTROL = set("\\`*_{}[]()#+-.!|~>=$:")


def test_html_is_neutralised_into_entities():
    escaped = escape_markdown("<script>alert(\"x\")</script> & 'q'")
    assert "<" not in escaped and ">" not in escaped and '"' not in escaped and "'" not in escaped
    assert "&lt;script&gt;" in escaped and "&amp;" in escaped


def test_markdown_emphasis_links_and_table_pipes_are_backslash_escaped():
    assert escape_markdown("**x**") == r"\*\*x\*\*"
    assert escape_markdown("a|b") == r"a\|b"
    assert escape_markdown("[click](javascript:alert(1))") == r"\[click\]\(javascript\:alert\(1\)\)"


def test_newlines_cannot_break_out_of_a_table_row():
    assert escape_markdown("第一行\n| 伪造 | 行 |\r\n") == r"第一行 \| 伪造 \| 行 \|"


def test_chinese_text_passes_unchanged():
    assert escape_markdown("急性阑尾炎伴局限性腹膜炎（演示）") == "急性阑尾炎伴局限性腹膜炎（演示）"


def test_none_is_empty_and_numbers_are_text():
    assert escape_markdown(None) == ""
    assert escape_markdown(12) == "12"


@given(st.text())
def test_escaped_text_never_contains_a_raw_html_or_markdown_control_character(text):
    escaped = str(escape_markdown(text))
    assert "\n" not in escaped and "<" not in escaped and ">" not in escaped
    # every control character is either preceded by a backslash or part of an entity
    stripped = re.sub(r"&(lt|gt|amp|quot|#39);", "", escaped)
    index = 0
    while index < len(stripped):
        ch = stripped[index]
        if ch == "\\":
            assert index + 1 < len(stripped) and stripped[index + 1] in MARKDOWN_CONTROL
            index += 2
            continue
        assert ch not in MARKDOWN_CONTROL or ch == ";", (text, escaped)
        index += 1


def test_plain_text_summary_keeps_words_but_cannot_open_a_tag():
    assert plain_text("<b>肺炎</b>\n**x**") == "＜b＞肺炎＜/b＞ **x**"


def test_money_is_yuan_with_thousands_separators_and_two_places():
    assert format_money(Decimal("8490.50")) == "¥8,490.50"
    assert format_money("8490.505") == "¥8,490.51"  # half up to the fen
    assert format_money(0) == "¥0.00"
    assert format_money(Decimal("-1200")) == "-¥1,200.00"
    assert format_money(1234567.891) == "¥1,234,567.89"


def test_unknown_money_is_a_dash_never_zero():
    for value in (None, "", "abc", float("nan"), float("inf"), True):
        assert format_money(value) == "—"


def test_percentages_and_numbers():
    assert format_percent(Decimal("1.485")) == "148.5%"
    assert format_percent(Decimal("0.5"), 0) == "50%"
    assert format_percent(None) == "—"
    assert format_number(Decimal("1484.833425")) == "1,484.83"
    assert format_number(Decimal("6.655"), 1) == "6.7"


def test_yuan_rounds_to_the_fen():
    assert yuan("8490.505") == Decimal("8490.51")
    assert yuan("x") is None
