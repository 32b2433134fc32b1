"""Text of the tables hospitals and bureaus publish: UTF-8 (with or without BOM) or GB18030.

GB18030 is the superset of GBK/GB2312 that Chinese Excel and HIS exports use when not UTF-8. Every
importer (code lists, catalogs, price lists, local maps) decodes through here so they agree.
"""

from __future__ import annotations

ENCODINGS = ("utf-8-sig", "gb18030")


def decode_table_text(raw: bytes) -> str | None:
    """The decoded text, or None when the bytes are neither encoding (the caller says so in its words)."""
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None
