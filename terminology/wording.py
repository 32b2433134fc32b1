"""Wording keys: the same clinical concept written the ways clinicians write it.

Chinese diagnosis and operation names vary in ways that do not change the concept: a trailing
病/症/疾病 or 术 (高血压病 = 高血压, 阑尾切除 = 阑尾切除术), the attributive 性/型/的
(高血压心脏病 = 高血压性心脏病, 不稳定性心绞痛 = 不稳定型心绞痛), 镜下 for 镜 (腹腔镜阑尾切除术),
a bracketed qualifier or alias (心房颤动[心房纤颤], 支气管扩张（症）), hyphens and spaces. Search
compares such *keys* so that an exact clinical concept outranks a longer name that merely contains
the query's characters (高血压脑病 for 高血压病).

Chinese terms are head-final: the last word names the thing. A name that ends with the query
(急性阑尾炎 for 阑尾炎) or continues it with a qualifier (高血压3级, 胆囊结石伴胆囊炎, 肺炎恢复期)
is a narrower form of the same concept; a name that continues it with another head (高血压脑病,
肺炎性假瘤) is a different concept. :func:`relation` tells these apart for ranking.

Pure functions of strings: no tables, no I/O. Clinical shorthand (心梗, 慢阻肺) is data, in
``tables/synonyms.csv``, not here.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["GENERIC_HEADS", "aliases", "concept_keys", "order_key", "relation", "same_concept"]

#: trailing words that name the category rather than the concept, per kind (longest first)
GENERIC_HEADS: dict[str, tuple[str, ...]] = {
    "dx": ("疾病", "病", "症"),
    "px": ("手术", "检查", "术"),
}

_ALL_HEADS = tuple(sorted({h for heads in GENERIC_HEADS.values() for h in heads}, key=len, reverse=True))
_SQUARE = re.compile(r"[\[［【〔]([^\[\]［］【】〔〕]*)[\]］】〕]")
_ROUND = re.compile(r"[（(]([^（()）]*)[）)]")
_ANY_BRACKET = re.compile(r"[\[［【〔(（]")
_ACRONYM = re.compile(r"[(（\[［【]([A-Za-z][A-Za-z0-9\-]{1,11})[)）\]］】]")
_NOISE = re.compile(r"[\s\-－–—_·・.。'\"“”‘’/／]+")
_CJK = "\u3400-\u9fff"
# 性/型 after a character: 高血压性心脏病, 不稳定型心绞痛 (never a leading 性: 性病, 性早熟)
_ATTRIBUTIVE = re.compile(rf"(?<=[{_CJK}])[性型]|的")
_GENERIC_LEAD = re.compile(r"^(?:其他和未特指|未特指)的?")
_GENERIC_TAIL = re.compile(r"[，,]未特指的?$")
# what may follow a concept (in key form: 性/型 already folded) without changing its head
_QUALIFIER = re.compile(
    r"""^(?:
        [，,、:：;；]                                     # 慢性阻塞性肺病，其他特指的
      | (?:伴有|伴|并发|合并|并)                         # 胆囊结石伴胆囊炎
      | [0-9一二三四五六七八九十IVXⅠ-Ⅻ]+[级期度型次]     # 高血压3级, 慢性肾脏病5期
      | (?:急|慢|亚急)?(?:发作|加重)期?                  # 慢性阻塞性肺病急性加重
      | (?:早|中|晚|末|稳定|缓解|恢复|活动|静止|进展|危重|终末|潜伏|康复|失代偿|代偿)期
      | (?:急|危象|亚急)$                                # 高血压急症, 高血压危象
    )""",
    re.VERBOSE,
)


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text)
    return _NOISE.sub("", folded) if _NOISE.search(folded) else folded


def _strip_head(key: str, kind: str) -> str:
    heads = GENERIC_HEADS.get(kind, ())
    if key.endswith(heads):
        for head in heads:
            if key.endswith(head) and len(key) - len(head) >= 2:
                return key[: -len(head)]
    return key


def concept_keys(text: str, kind: str) -> tuple[str, str, str]:
    """Three ever looser keys of one wording. 1: noise, a bracketed alias and 未特指 removed
    (心房颤动[心房纤颤] → 心房颤动); 2: also a bracketed qualifier and the generic head
    (支气管扩张（症） → 支气管扩张, 高血压病 → 高血压); 3: also 性/型/的 and 镜下 folded. Two
    wordings of the same concept share at least the last key.

    Run for every name at load (47,000 of them), so each rule is skipped when its characters are
    absent."""
    folded = _fold(text)
    k1 = _SQUARE.sub("", folded) if ("[" in folded or "【" in folded or "〔" in folded) else folded
    if "特指" in k1:
        k1 = _GENERIC_TAIL.sub("", _GENERIC_LEAD.sub("", k1))
    k1 = k1 or folded
    k2 = _strip_head((_ROUND.sub("", k1) or k1) if "(" in k1 else k1, kind)
    k3 = k2.replace("镜下", "镜") if "镜下" in k2 else k2
    if "性" in k3 or "型" in k3 or "的" in k3:
        k3 = _strip_head(_ATTRIBUTIVE.sub("", k3), kind) or k2
    return k1, k2, k3


def aliases(name: str) -> list[str]:
    """Alternative names written inside the name: 心房颤动[心房纤颤] → 心房纤颤; an acronym in any
    bracket: 经皮冠状动脉腔内血管成形术[PTCA] → PTCA, 经尿道前列腺切除术（TURP） → TURP."""
    if not _ANY_BRACKET.search(name):
        return []
    folded = unicodedata.normalize("NFKC", name)
    out = [m.group(1) for m in _SQUARE.finditer(folded) if not m.group(1).isdigit()]
    out += [m.group(1).upper() for m in _ACRONYM.finditer(folded)]
    return list(dict.fromkeys(a for a in out if len(a) >= 2))


def order_key(key: str) -> str:
    """The characters of a key in a fixed order: equal for the same words in another order
    (慢性胆囊炎伴胆囊结石 / 胆囊结石伴慢性胆囊炎)."""
    return "".join(sorted(key))


def relation(query_key: str, name_key: str) -> str:
    """How a name relates to the query, both as their loosest keys: 'same', 'narrower' (same head,
    more specific), 'sibling' (其他阑尾切除术: the *other* kinds of it), 'prefix' (starts with the
    query but names another thing: 高血压脑病), 'contains' or ''."""
    if name_key == query_key:
        return "same"
    if name_key.startswith("其他") and not query_key.startswith("其他") and query_key in name_key:
        return "sibling"
    if name_key.endswith(query_key):
        return "narrower"
    if name_key.startswith(query_key):
        rest = name_key[len(query_key) :]
        # 慢性阻塞性肺病急性加重: the generic head may sit between the concept and its qualifier
        rest = next((rest[len(h) :] for h in _ALL_HEADS if rest.startswith(h) and rest != h), rest)
        return "narrower" if _QUALIFIER.match(rest) else "prefix"
    return "contains" if query_key in name_key else ""


def same_concept(text: str, name: str, kind: str) -> bool:
    """Whether ``text`` (a coding's display) names the concept whose official name is ``name``:
    equal wording keys, or one of the name's bracketed aliases (心房纤颤 for 心房颤动[心房纤颤])."""
    if not isinstance(text, str) or not text.strip():
        return False
    key = concept_keys(text, kind)[2]
    return key == concept_keys(name, kind)[2] or any(key == concept_keys(a, kind)[2] for a in aliases(name))
