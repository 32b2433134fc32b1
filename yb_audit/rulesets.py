"""The rules a call applies: the active rule set minus what ``[audit] disabled_rules`` switches off."""

from __future__ import annotations

import threading

from yb_audit.model import RuleSet

_cache: dict[tuple[int, tuple[str, ...]], tuple[RuleSet, RuleSet]] = {}
_lock = threading.Lock()


def enabled_rules(rules: RuleSet, disabled: tuple[str, ...]) -> RuleSet:
    """``rules`` without those named in ``disabled`` (rule ids, kind keys, batches or rule-set names).
    Cached per loaded rule set, so a hook call does not rebuild the indexes."""
    if not disabled:
        return rules
    key = (id(rules), tuple(disabled))
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] is rules:
            return cached[1]
        off = set(disabled)
        kept = rules.select(lambda r: not ({r.rule_id, r.kind, r.batch, r.ruleset} & off))
        if len(_cache) > 16:
            _cache.clear()
        _cache[key] = (rules, kept)
        return kept
