"""Normalise what people actually type into the canonical 医保版 code form.

Canonical means exactly the spelling of the official lists: upper-case letters, a lower-case
``x`` as extension/placeholder marker (``K35.300x001``, ``A33.x00``, ``01.6x00``), the letters of
the few ``17.912A0``-style procedure codes upper-case, dagger/asterisk pairs as
``A01.000x005+J17.0*``. Every step that changed the input is recorded in ``Normalized.changes``
so a coder can see why ``ｋ３５３００Ｘ００１`` became ``K35.300x001``.

Normalisation is purely syntactic: whether the code exists is the terminology's job. It is on the
grouper's hot path (a million cases), hence precompiled patterns and a result cache.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Normalized", "normalize_diagnosis", "normalize_procedure", "combine_dagger_asterisk"]

#: Inputs longer than this are not codes; they are rejected before any regex work.
MAX_CODE_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalised code: ``code`` is None when the input is not a code at all."""

    code: str | None
    changes: tuple[str, ...] = ()
    dagger: str | None = None
    asterisk: str | None = None
    ok: bool = False

    @property
    def parts(self) -> tuple[str | None, str | None]:
        """(dagger, asterisk) halves of a combination code."""
        return (self.dagger, self.asterisk)


# Characters NFKC leaves alone but people use as separators/markers in codes.
_DOT_LIKE = str.maketrans({"。": ".", "·": ".", "．": ".", "｡": ".", ",": ".", "，": "."})
_DAGGER_LIKE = ("†", "‡", "+")
_WS = re.compile(r"\s+")

# --- diagnoses -------------------------------------------------------------------------------
# main code: letter, 2 digits, optional (dot) subcategory digit-or-X + up to 2 digits, optional X-extension,
# optional ICD-O morphology suffix (M81600/3) as found in 国临版 codes.
_DX_MAIN = r"([A-Z])(\d{2})(?:(\.?)([0-9X])(\d{0,2}))?(?:X(\d{3,4}))?(M\d{4,5}/\d)?"
_DX_ASTERISK = r"([A-Z])(\d{2})(?:(\.?)([0-9X])(\d{0,3}))?"
_DX_FULL = re.compile(rf"^{_DX_MAIN}(?:(\+|†)?{_DX_ASTERISK}(\*)?)?(\*)?\.?$")

# --- procedures ------------------------------------------------------------------------------
# 2-digit category, optional dot, then the remainder: digits, an X placeholder, the letter of
# 17.912A0-style codes, and an optional x-extension of 3–4 digits.
_PX_FULL = re.compile(r"^(\d{2})(\.?)(\d?)([0-9X]?)(\d{0,3}?)([A-WYZ]\d)?(?:X(\d{3,4}))?\.?$")


def _prepare(raw: object) -> tuple[str | None, list[str]]:
    """Width, case, whitespace clean-up shared by both code systems."""
    changes: list[str] = []
    if not isinstance(raw, str):
        return None, ["输入不是字符串"]
    if len(raw) > MAX_CODE_LENGTH:
        return None, [f"输入过长（{len(raw)} 个字符），不是编码"]
    text = raw
    nfkc = unicodedata.normalize("NFKC", text)
    if nfkc != text:
        changes.append("全角字符转为半角")
        text = nfkc
    translated = text.translate(_DOT_LIKE)
    if translated != text:
        changes.append("中文句点/逗号视为小数点")
        text = translated
    stripped = _WS.sub("", text)
    if stripped != text:
        changes.append("去除空白字符")
        text = stripped
    if not text:
        return None, [*changes, "输入为空"]
    return text, changes


def _upper_letters(text: str, changes: list[str], marker_from: int) -> str:
    """Upper-case everything; report it unless the only lower-case letters were x markers."""
    upper = text.upper()
    if upper != text and any(c.islower() and (c != "x" or i < marker_from) for i, c in enumerate(text)):
        changes.append("字母转为大写")
    return upper


def _dx_code(letter: str, cat: str, sub: str | None, rest: str | None, ext: str | None) -> str:
    code = letter + cat
    if sub:
        code += "." + ("x" if sub == "X" else sub) + (rest or "")
    if ext:
        code += "x" + ext
    return code


_NOT_A_STRING = Normalized(None, ("输入不是字符串",))


def normalize_diagnosis(raw: str) -> Normalized:
    """Canonical 医保版 ICD-10 spelling of ``raw`` with the list of changes made (never raises)."""
    return _normalize_diagnosis(raw) if isinstance(raw, str) else _NOT_A_STRING


def normalize_procedure(raw: str) -> Normalized:
    """Canonical 医保版 ICD-9-CM-3 spelling of ``raw`` with the list of changes made (never raises)."""
    return _normalize_procedure(raw) if isinstance(raw, str) else _NOT_A_STRING


@lru_cache(maxsize=131072)
def _normalize_diagnosis(raw: str) -> Normalized:
    text, changes = _prepare(raw)
    if text is None:
        return Normalized(None, tuple(changes))
    original = text
    text = _upper_letters(text, changes, marker_from=1)
    if "X" in original[1:]:
        changes.append("扩展码标记 X 改为小写 x")
    dagger_only = False
    if "†" in text or text.endswith("+"):
        # "A01.000x005†J17.0*" or "A01.000x005†+J17.0*": the dagger sign is just a separator;
        # a trailing one marks a dagger half given alone
        text = text.replace("†+", "+").replace("+†", "+")
        if text.endswith(("†", "+")):
            text = text[:-1]
            dagger_only = True
    m = _DX_FULL.match(text)
    if m is None:
        return Normalized(None, (*changes, "不符合 ICD-10 编码格式"))
    (letter, cat, dot, sub, rest, ext, morph, sep, a_letter, a_cat, a_dot, a_sub, a_rest, a_star, star) = (
        m.groups()
    )
    if sub and not dot:
        changes.append("补充小数点")
    if a_sub and not a_dot:
        changes.append("星号编码补充小数点")
    if text.endswith(".") and not text.endswith("*."):
        changes.append("去除末尾的点")
    main = _dx_code(letter, cat, sub, rest, ext) + (morph or "")
    if a_letter:
        asterisk = _dx_code(a_letter, a_cat, a_sub, a_rest, None)
        if sep is None:
            changes.append("补充剑号 + 分隔")
        elif sep == "†":
            changes.append("剑号 † 改为 +")
        if not a_star:
            changes.append("补充星号 *")
        return Normalized(f"{main}+{asterisk}*", tuple(changes), dagger=main, asterisk=asterisk, ok=True)
    if star:
        # an asterisk half given alone ("J17.0*"): it is a manifestation code, not a principal one
        changes.append("识别为星号（表现）编码")
        return Normalized(main, tuple(changes), dagger=None, asterisk=main, ok=True)
    if dagger_only:
        changes.append("识别为剑号（病因）编码")
        return Normalized(main, tuple(changes), dagger=main, asterisk=None, ok=True)
    return Normalized(main, tuple(changes), ok=True)


@lru_cache(maxsize=131072)
def _normalize_procedure(raw: str) -> Normalized:
    text, changes = _prepare(raw)
    if text is None:
        return Normalized(None, tuple(changes))
    original = text
    text = _upper_letters(text, changes, marker_from=0)
    if "X" in original:
        changes.append("扩展码标记 X 改为小写 x")
    m = _PX_FULL.match(text)
    if m is None:
        return Normalized(None, (*changes, "不符合 ICD-9-CM-3 编码格式"))
    cat, dot, d1, d2, more, letter_part, ext = m.groups()
    body = d1 + ("x" if d2 == "X" else d2) + more + (letter_part or "")
    if body and not dot:
        changes.append("补充小数点")
    if text.endswith("."):
        changes.append("去除末尾的点")
    code = cat + ("." + body if body else "") + ("x" + ext if ext else "")
    return Normalized(code, tuple(changes), ok=True)


def combine_dagger_asterisk(dagger: str, asterisk: str) -> Normalized:
    """Join two halves given separately (``A01.000x005†`` and ``J17.0*``) into one code."""
    d = normalize_diagnosis(dagger)
    a = normalize_diagnosis(asterisk)
    if not (d.ok and a.ok):
        return Normalized(None, (*d.changes, *a.changes, "剑号/星号部分无法识别"))
    dag = d.dagger or d.code
    ast = a.asterisk or a.code
    return Normalized(
        f"{dag}+{ast}*", (*d.changes, *a.changes, "合并剑号与星号编码"), dagger=dag, asterisk=ast, ok=True
    )
