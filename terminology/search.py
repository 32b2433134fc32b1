"""Ranked search over one code table: code prefix, Chinese name (substring, fuzzy), pinyin initials.

Built in memory at load time from plain lists (names and initials were prepared at import), so a
query is a few C-level ``str.find`` scans over one joined string plus, when needed, one rapidfuzz
pass: well under 10 ms over the 33,304 ICD-10 names.

Names rank by what the clinician means, not by shared characters (see :mod:`terminology.wording`):
the exact name; the same concept in other wording (高血压病 → 高血压, 腹腔镜阑尾切除术 → 腹腔镜下
阑尾切除术); the same words in another order; narrower forms with the same head (原发性高血压,
高血压3级); only then names that merely start with or contain the query (高血压脑病); fuzzy last.
"""

from __future__ import annotations

import bisect
import heapq
import json
import re
import unicodedata
from array import array
from collections import Counter
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from terminology.wording import aliases, concept_keys, order_key, relation

__all__ = ["SearchHit", "SearchIndex", "MAX_QUERY_LENGTH"]

MAX_QUERY_LENGTH = 64
_MAX_SCAN_HITS = 4000
_FUZZY_POOL = 800
_COMMON_CHAR = 2000
_SEP = "\x00"
_CJK = re.compile(r"[\u3400-\u9fff\U00020000-\U0002ebef]")
_INITIALS = re.compile(r"^[A-Z0-9]+$")
_CODEISH = re.compile(r"^(?:[A-Z]\d|\d\d)")


@dataclass(frozen=True, slots=True)
class SearchHit:
    code: str
    display: str
    score: float  # 0..1, comparable across match kinds
    # 'code' | 'code-prefix' | 'name' | 'name-variant' | 'name-reordered' | 'name-narrower'
    # | 'name-sibling' | 'name-prefix' | 'name-substring' | 'name-words' | 'pinyin' | 'fuzzy'
    match: str


#: same concept in other wording, by the key level that matched (see wording.concept_keys)
_VARIANT_SCORE = {1: 0.98, 2: 0.97, 3: 0.96}
_REORDERED_SCORE = 0.93


class SearchIndex:
    """Search structures for one table; ``codes`` must be sorted (bisect for prefixes). ``kind``
    ('dx'/'px') selects the generic heads (病/症, 术) that wording keys ignore."""

    def __init__(
        self, codes: list[str], names: list[str], initials: list[str], normalize, kind: str = ""
    ) -> None:
        self.codes = codes
        self.names = names
        self.initials = initials
        self._normalize = normalize
        self._kind = kind
        # queries are NFKC-folded (full-width brackets, Ⅱ → II), so the searched text must be too
        self._folded = [unicodedata.normalize("NFKC", n) for n in names]
        self._name_blob, self._name_starts = self._join(self._folded)
        self._ini_blob, self._ini_starts = self._join(initials)
        self._chars: dict[str, array] | None = None
        self._wording: _Wording | None = None

    @staticmethod
    def _join(items: list[str]) -> tuple[str, list[int]]:
        starts, pos = [], 0
        for item in items:
            starts.append(pos)
            pos += len(item) + 1
        return _SEP.join(items) + _SEP, starts

    def _scan(self, blob: str, starts: list[int], needle: str):
        """Indices of items containing ``needle`` and whether at their start (capped for 1-char needles)."""
        pos, found = blob.find(needle), 0
        while pos != -1 and found < _MAX_SCAN_HITS:
            idx = bisect.bisect_right(starts, pos) - 1
            yield idx, pos == starts[idx]
            found += 1
            pos = blob.find(needle, pos + 1)

    def search(self, query: str, limit: int = 20, fuzzy: bool = True) -> list[SearchHit]:
        if not isinstance(query, str):
            return []
        text = unicodedata.normalize("NFKC", query).strip()[:MAX_QUERY_LENGTH]
        if not text:
            return []
        limit = max(1, min(int(limit), 500))
        best: dict[int, tuple[float, str]] = {}

        def offer(idx: int, score: float, match: str) -> None:
            old = best.get(idx)
            if old is None or score > old[0]:
                best[idx] = (score, match)

        compact = re.sub(r"\s+", "", text)
        upper = compact.upper()
        has_cjk = _CJK.search(text) is not None
        if _CODEISH.match(upper):
            self._code_hits(text, upper, offer, limit)
        if has_cjk:
            keys = concept_keys(compact, self._kind)
            self._name_hits(compact, keys[2], best)
            self._concept_hits(compact, keys, offer)
            words = text.split()
            if len(words) > 1:
                self._all_words_hits(words, offer)
            # fuzzy matching only when literal matching found neither the concept itself nor enough
            exact = (
                any(v[1] in ("name", "name-variant") for v in best.values()) if len(best) < limit else True
            )
            if fuzzy and not exact and len(text) >= 2:
                self._fuzzy_hits(compact, offer, limit)
        elif _INITIALS.match(upper):
            for idx in self._words.by_key.get(upper, ()):  # an acronym in the name: ...[PTCA]
                offer(idx, _VARIANT_SCORE[1], "name-variant")
            self._initials_hits(upper, offer)
        names, codes = self.names, self.codes
        ranked = heapq.nsmallest(
            limit,
            best.items(),
            key=lambda kv: (-kv[1][0], 0 if kv[1][1].startswith("code") else len(names[kv[0]]), codes[kv[0]]),
        )
        return [SearchHit(codes[i], names[i], round(s, 4), m) for i, (s, m) in ranked]

    def prepare(self) -> SearchIndex:
        """Build the lazily built structures now (service start), not on the first query."""
        self._char_index  # noqa: B018
        self._words  # noqa: B018
        return self

    @property
    def _words(self) -> _Wording:
        if self._wording is None:
            self._wording = _Wording(self.names, self._kind)
        return self._wording

    def _concept_hits(self, compact: str, keys: tuple[str, str, str], offer) -> None:
        """The query's concept in other wording, its narrower forms, and its words reordered."""
        words = self._words
        same = words.by_key.get(keys[2], ())
        for idx in same:
            offer(idx, _VARIANT_SCORE[words.level(idx, keys)], "name-variant")
        if keys[2] != compact and len(keys[2]) >= 2:  # 高血压病: also what 高血压 is the head of
            self._scan_keys(keys[2], offer)
        if not same and len(keys[2]) >= 4:
            self._reordered_hits(keys[2], offer)

    def _reordered_hits(self, key: str, offer) -> None:
        """Names with exactly the query's characters in another order (切除 阑尾, 慢性胆囊炎伴胆囊
        结石): candidates from the postings of its two rarest characters."""
        index, keys, size, wanted = self._char_index, self._words.keys, len(key), order_key(key)
        rarest = sorted(set(key), key=lambda c: len(index.get(c, ())))[:2]
        if any(c not in index for c in rarest):
            return
        candidates = set(index[rarest[0]]).intersection(index[rarest[-1]])
        for idx in candidates:
            if len(keys[idx]) == size and order_key(keys[idx]) == wanted:
                offer(idx, _REORDERED_SCORE, "name-reordered")

    def _scan_keys(self, key: str, offer) -> None:
        words = self._words
        for idx, _start in self._scan(words.blob, words.starts, key):
            offer(idx, *_related(key, words.keys[idx]))

    @property
    def _char_index(self) -> dict[str, array]:
        """Character → indices of the names containing it: narrows fuzzy matching to a few hundred
        names instead of all 33,304. Precomputed at import (see :func:`char_postings`)."""
        if self._chars is None:
            self._chars = char_postings(self.names)
        return self._chars

    def use_postings(self, packed: bytes | None) -> None:
        """Adopt postings packed at import time by :func:`pack_postings` (ignored if unusable)."""
        if packed:
            try:
                self._chars = unpack_postings(packed)
            except (ValueError, TypeError):
                self._chars = None

    def _all_words_hits(self, words: list[str], offer) -> None:
        """'阑尾 切除' → names containing every word, in any order."""
        sets = []
        for w in words[:6]:
            sets.append({idx for idx, _ in self._scan(self._name_blob, self._name_starts, w)})
        total = sum(len(w) for w in words)
        for idx in set.intersection(*sets) if sets else ():
            offer(idx, 0.72 + 0.1 * min(1.0, total / len(self._folded[idx])), "name-words")

    def _fuzzy_hits(self, text: str, offer, limit: int) -> None:
        """Typos and missing characters: names sharing most characters, scored by rapidfuzz."""
        index = self._char_index
        chars = sorted({c for c in text if not c.isspace()}, key=lambda c: len(index.get(c, ())))
        # the rarest characters carry the information; very common ones (性, 病) only cost time
        informative = [c for c in chars if len(index.get(c, ())) <= _COMMON_CHAR] or chars[:2]
        counts: Counter[int] = Counter()
        for ch in informative:
            counts.update(index.get(ch, ()))
        need = max(1, int(len(informative) * 0.6))
        ids = [idx for idx, n in counts.items() if n >= need]
        if len(ids) > _FUZZY_POOL:
            ids = [idx for idx, _n in counts.most_common(_FUZZY_POOL)]
        pool = {idx: self._folded[idx] for idx in ids}
        if not pool:
            return
        for _name, score, idx in process.extract(
            text, pool, scorer=fuzz.WRatio, processor=None, limit=limit, score_cutoff=60
        ):
            offer(idx, 0.75 * score / 100.0, "fuzzy")

    def _code_hits(self, text: str, upper: str, offer, limit: int) -> None:
        normalized = self._normalize(text)
        prefixes = []
        if normalized.ok and normalized.code:
            prefixes.append(normalized.code)
        prefixes.append(
            upper.replace("X", "x") if upper[:1].isdigit() else upper[:1] + upper[1:].replace("X", "x")
        )
        for prefix in prefixes:
            i = bisect.bisect_left(self.codes, prefix)
            taken = 0
            while i < len(self.codes) and self.codes[i].startswith(prefix) and taken < limit * 5:
                exact = self.codes[i] == prefix
                # shorter codes (the 亚目-level ones) first, then code order
                score = 0.97 - 0.001 * (len(self.codes[i]) - len(prefix)) - 1e-6 * taken
                offer(i, 1.0 if exact else score, "code" if exact else "code-prefix")
                i += 1
                taken += 1

    def _name_hits(self, text: str, key: str, best: dict[int, tuple[float, str]]) -> None:
        """Substring scan of the joined names; a tight loop because short queries hit thousands.
        A hit is ranked by how its name relates to the query's concept key (narrower first)."""
        blob, starts, folded = self._name_blob, self._name_starts, self._folded
        keys = self._words.keys
        bisect_right = bisect.bisect_right
        pos, found = blob.find(text), 0
        while pos != -1 and found < _MAX_SCAN_HITS:
            idx = bisect_right(starts, pos) - 1
            if len(folded[idx]) == len(text):
                score, match = 0.99, "name"
            else:
                score, match = _related(key, keys[idx])
            old = best.get(idx)
            if old is None or score > old[0]:
                best[idx] = (score, match)
            found += 1
            pos = blob.find(text, pos + 1)

    def _initials_hits(self, upper: str, offer) -> None:
        # an entry may hold two variants separated by a space: with and without the Latin/digit
        # parts of the name (受压区Ⅳ期压疮: SYQIVQYC and SYQQYC) since users type either
        for idx, _ in self._scan(self._ini_blob, self._ini_starts, upper):
            for ini in self.initials[idx].split(" "):
                pos = ini.find(upper)
                if pos == 0 and len(ini) == len(upper):
                    offer(idx, 0.9, "pinyin")
                elif pos == 0:
                    offer(idx, 0.8 + 0.09 * len(upper) / len(ini), "pinyin")
                elif pos > 0:
                    offer(idx, 0.6 + 0.09 * len(upper) / len(ini), "pinyin")


#: relation of a name to the query concept → (base score, share of score for covering it, match)
_RELATION_SCORE = {
    "narrower": (0.86, 0.08, "name-narrower"),
    "sibling": (0.80, 0.06, "name-sibling"),
    "prefix": (0.80, 0.06, "name-prefix"),
    "contains": (0.74, 0.06, "name-substring"),
}


def _related(key: str, name_key: str) -> tuple[float, str]:
    """Score and match kind of a name containing the query, from how it relates to the query's
    concept (a name that contains it only literally, e.g. inside brackets, counts as 'contains')."""
    base, span, match = _RELATION_SCORE.get(relation(key, name_key), _RELATION_SCORE["contains"])
    return base + span * min(1.0, len(key) / max(1, len(name_key))), match


class _Wording:
    """Per-name wording keys (loosest level) and the lookup by key (and by bracketed alias)."""

    def __init__(self, names: list[str], kind: str) -> None:
        self._names, self._kind = names, kind
        self.keys: list[str] = []
        self.by_key: dict[str, list[int]] = {}
        for idx, name in enumerate(names):
            key = concept_keys(name, kind)[2]
            self.keys.append(key)
            self.by_key.setdefault(key, []).append(idx)
            for alias in aliases(name):
                alias_key = concept_keys(alias, kind)[2]
                if idx not in self.by_key.setdefault(alias_key, []):
                    self.by_key[alias_key].append(idx)
        self.blob, self.starts = SearchIndex._join(self.keys)

    def level(self, idx: int, query_keys: tuple[str, str, str]) -> int:
        """The tightest key level at which the name (or one of its aliases) equals the query."""
        best = 3
        for text in (self._names[idx], *aliases(self._names[idx])):
            name_keys = concept_keys(text, self._kind)
            for level in (1, 2):
                if name_keys[level - 1] == query_keys[level - 1]:
                    best = min(best, level)
        return best


def char_postings(names: list[str]) -> dict[str, array]:
    """For each character of the NFKC-folded names, the sorted indices of names containing it."""
    postings: dict[str, array] = {}
    for i, name in enumerate(names):
        for ch in set(unicodedata.normalize("NFKC", name)):
            arr = postings.get(ch)
            if arr is None:
                postings[ch] = arr = array("i")
            arr.append(i)
    return postings


def pack_postings(names: list[str]) -> bytes:
    """Serialised postings, stored next to the code list so loading does not rebuild them.

    Format: a JSON header ``{char: [start, count]}``, a newline, then the concatenated int32 arrays
    (JSON rather than pickle/marshal: the store file must never be able to run code)."""
    header: dict[str, list[int]] = {}
    chunks: list[bytes] = []
    pos = 0
    for ch, arr in char_postings(names).items():
        header[ch] = [pos, len(arr)]
        chunks.append(arr.tobytes())
        pos += len(arr)
    return json.dumps(header, ensure_ascii=False).encode() + b"\n" + b"".join(chunks)


def unpack_postings(packed: bytes) -> dict[str, array]:
    head, _, body = packed.partition(b"\n")
    all_ids = array("i")
    all_ids.frombytes(body)
    out: dict[str, array] = {}
    for ch, (start, count) in json.loads(head).items():
        out[ch] = all_ids[start : start + count]
    return out
