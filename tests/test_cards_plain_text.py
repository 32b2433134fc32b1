"""The plain-text reading of ``detail`` the README gives EMR vendors without a markdown renderer
("Rendering cards in your EMR"): applied to the real cards of every demo request it leaves no markup,
and a hostile value comes back exactly as the EMR sent it."""

from __future__ import annotations

import html
import re

import pytest

from tests.demo_fhir_helpers import DEMO_REQUESTS, demo_request
from tests.service_helpers import make_app

HOSTILE = (
    "<script>alert(1)</script> **粗体** | 管道 \\ 反斜杠 [链接](http://x) &amp; &lt; 1_2 #3 `码` - 项 > 引"
)
_SEPARATOR = re.compile(r"\|(\s*:?-+:?\s*\|)+")
_CELL = re.compile(r"(?<!\\)\|")
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # a backslash before ASCII punctuation


def as_plain_text(detail: str) -> str:
    """The README's rules, in its order."""
    lines = []
    for line in detail.splitlines():
        stripped = line.strip()
        if _SEPARATOR.fullmatch(stripped):
            continue
        if stripped.startswith("|") and stripped.endswith("|"):
            cells = [cell.strip() for cell in _CELL.split(stripped[1:-1])]
            line = "：".join(cells) if len(cells) == 2 else " ｜ ".join(cells)
        line = line.replace("**", "")
        if line.startswith("- "):
            line = "• " + line[2:]
        elif line.startswith("> "):
            line = line[2:]
        line = _ESCAPED.sub(r"\1", line)
        for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"), ("&amp;", "&")):
            line = line.replace(entity, char)
        lines.append(line)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return make_app(tmp_path_factory.mktemp("home")).test_client()


def _cards(client, request: dict) -> list[dict]:
    response = client.post(f"/cds-services/dip-{request['hook']}", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["cards"]


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in DEMO_REQUESTS.glob("*.json") if "no-prefetch" not in p.stem)
)
def test_every_demo_card_reads_as_plain_text_without_markup(client, name) -> None:
    for card in _cards(client, demo_request(name)):
        text = as_plain_text(card["detail"])
        assert "**" not in text and "|" not in text and not _ESCAPED.search(text), text
        assert html.unescape(text) == text  # no entity left
        for standard in re.findall(r"^\| 支付标准 \| (¥[\d,]+\.\d\d) \|$", card["detail"], re.MULTILINE):
            assert f"支付标准：{standard}" in text.splitlines()


def test_a_hostile_value_comes_back_exactly_as_sent(client) -> None:
    request = demo_request("order-sign-appendicitis")
    request["context"]["draftOrders"]["entry"].append(
        {"resource": {"resourceType": "MedicationRequest", "id": "hostile", "status": "draft", "intent": "order",
                      "subject": {"reference": "Patient/demo-appendicitis"},
                      "medicationCodeableConcept": {"text": HOSTILE + "\n第二行"}}}
    )  # fmt: skip
    (card,) = _cards(client, request)
    assert "<script>" not in card["detail"]  # escaped in the markdown …
    text = as_plain_text(card["detail"])
    expected = f"• {HOSTILE} 第二行（MedicationRequest/hostile）"
    assert any(line.startswith(expected) for line in text.splitlines())  # … literal in the text
