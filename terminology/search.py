"""Ranked search over one code table: code prefix, Chinese name (substring, fuzzy), pinyin initials.

Built in memory at load time from plain lists (names and initials were prepared at import), so a
query is a few C-level ``str.find`` scans over one joined string plus, when needed, one rapidfuzz
pass: well under 10 ms over the 33,304 ICD-10 names.
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
    match: str  # 'code' | 'code-prefix' | 'name' | 'name-prefix' | 'name-substring' | 'pinyin' | 'fuzzy'


class SearchIndex:
    """Search structures for one table; ``codes`` must be sorted (bisect for prefixes)."""

    def __init__(self, codes: list[str], names: list[str], initials: list[str], normalize) -> None:
        self.codes = codes
        self.names = names
        self.initials = initials
        self._normalize = normalize
        # queries are NFKC-folded (full-width brackets, Ⅱ → II), so the searched text must be too
        self._folded = [unicodedata.normalize("NFKC", n) for n in names]
        self._name_blob, self._name_starts = self._join(self._folded)
        self._ini_blob, self._ini_starts = self._join(initials)
        self._chars: dict[str, array] | None = None

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

        upper = re.sub(r"\s+", "", text).upper()
        has_cjk = _CJK.search(text) is not None
        if _CODEISH.match(upper):
            self._code_hits(text, upper, offer, limit)
        if has_cjk:
            self._name_hits(text, best)
            words = text.split()
            if len(words) > 1:
                self._all_words_hits(words, offer)
            # fuzzy matching only when literal matching found neither the name itself nor enough
            exact = any(v[1] == "name" for v in best.values()) if len(best) < limit else True
            if fuzzy and not exact and len(text) >= 2:
                self._fuzzy_hits(re.sub(r"\s+", "", text), offer, limit)
        elif _INITIALS.match(upper):
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
        return self

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

    def _name_hits(self, text: str, best: dict[int, tuple[float, str]]) -> None:
        """Substring scan of the joined names; a tight loop because short queries hit thousands."""
        blob, starts, folded = self._name_blob, self._name_starts, self._folded
        n = len(text)
        bisect_right = bisect.bisect_right
        pos, found = blob.find(text), 0
        while pos != -1 and found < _MAX_SCAN_HITS:
            idx = bisect_right(starts, pos) - 1
            size = len(folded[idx])
            if size == n:
                score, match = 0.99, "name"
            elif pos == starts[idx]:
                score, match = 0.85 + 0.1 * n / size, "name-prefix"
            else:
                score, match = 0.75 + 0.1 * n / size, "name-substring"
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
