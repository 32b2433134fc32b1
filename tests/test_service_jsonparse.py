"""Request bodies are read as the standard JSON parser reads them, whichever parser does the work."""

from __future__ import annotations

import json
import math

import pytest

from cds_service.jsonparse import parse_json


@pytest.mark.parametrize(
    "raw",
    [
        b'{"hook": "order-sign", "context": {"patientId": "p-1"}}',
        '{"display": "未特指的脑梗死", "value": 1.5e3, "n": -0}'.encode(),
        b'{"value": 1e400}',  # infinity
        b'{"x": NaN}',
        b'{"s": "\\ud800"}',  # an escaped lone surrogate: rejected later by the service, parsed here
    ],
)
def test_a_body_parses_to_what_the_standard_parser_reads(raw):
    expected, got = json.loads(raw), parse_json(raw)
    if isinstance(expected.get("x"), float) and math.isnan(expected["x"]):
        assert math.isnan(got["x"])
    else:
        assert got == expected


def test_an_integer_beyond_64_bits_is_read_as_a_float():
    assert parse_json(b'{"n": 123456789012345678901234567890}') == {"n": 1.2345678901234568e29}


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a": 1,}', b"[1] x", b"\xff\xfe"])
def test_invalid_json_raises_the_standard_error(raw):
    with pytest.raises(ValueError):
        parse_json(raw)
