"""Turn any code or CodeableConcept the EMR sends into the best 医保版 code, or a clear question.

Order of trust: a 医保版 code as is; a 国临版 code through the official map; a local HIS code
through the hospital's map file; a WHO ICD-10 code through its 亚目's 医保版 members; a code sent
under a misspelt or unknown system URI only when its display confirms it (flagged, lower
confidence); free text through ranked fuzzy search, which is never auto-assigned below the
confidence threshold. Every answer says which path decided and why, because a wrong code silently
changes the DIP group.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

from mappings.local_maps import LocalMaps, load_local_maps, local_maps_for_home
from mappings.resolution import Candidate, Resolution, unmapped
from terminology.systems import SystemInfo, canonical_for_kind, identify_system, near_miss_system
from terminology.wording import same_concept

__all__ = [
    "resolve_code",
    "resolve_coding",
    "map_codeable_concept",
    "resolve_text",
    "DEFAULT_TEXT_THRESHOLD",
    "NEAR_MISS_CONFIDENCE",
    "UNKNOWN_SYSTEM_CONFIDENCE",
]

#: text matches at or above this score are assigned without confirmation (exact official name).
DEFAULT_TEXT_THRESHOLD = 0.95
MAX_TEXT_LENGTH = 200
#: confidence cap of a code accepted under a misspelt system URI / an unknown one (display-confirmed)
NEAR_MISS_CONFIDENCE = 0.9
UNKNOWN_SYSTEM_CONFIDENCE = 0.8
_KIND_WORD = {"dx": "诊断", "px": "手术操作"}


def _ok_kind(kind: Any) -> bool:
    return kind in ("dx", "px")


def _path_names(term, kind: str) -> tuple[str, str]:
    table = term.table(kind)
    yb = f"yb{table.version}"
    cmap = term.code_map(kind)
    gl = "gl2.0" if kind == "dx" else "gl3.0"
    if cmap is not None and cmap.source_system.rsplit("-gl", 1)[-1]:
        gl = "gl" + cmap.source_system.rsplit("-gl", 1)[-1]
    return yb, gl


def _candidates(concepts, score: float) -> tuple[Candidate, ...]:
    return tuple(Candidate(c.code, c.display, round(score, 3)) for c in concepts)


def resolve_code(term, kind: str, raw: Any, system: str | None = None) -> Resolution:
    """Fast path for the grouper: normalise → 医保版 as is → 国临版 via official map → unmapped.

    ``system`` (a URI, canonical or alternative) says which code system ``raw`` is from; None
    means "probably 医保版, maybe 国临版". Cached: the same few thousand codes repeat a million times.
    """
    if not _ok_kind(kind):
        return unmapped((f"未知的编码类型 {str(kind)[:20]!r}（应为 dx 或 px）",))
    if not isinstance(raw, str):
        return unmapped(("编码不是字符串",))
    if system is not None and not isinstance(system, str):
        return unmapped(("编码系统不是字符串",))
    if len(raw) > 64:
        return unmapped((f"编码过长（{len(raw)} 个字符），不是有效编码",), source_system=system)
    if system is not None and len(system) > 500:
        return unmapped(("编码系统 URI 过长",))
    return _resolve_cached(term, kind, raw, system)


@lru_cache(maxsize=200_000)
def _resolve_cached(term, kind: str, raw: str, system: str | None) -> Resolution:
    info = identify_system(system) if system else None
    if system and info is None:
        return unmapped(
            (f"未知的编码系统 {system[:80]}：无法判断 {raw[:40]} 属于哪个编码体系（请配置医院本地映射表）",),
            source_system=system,
            source_code=raw,
        )
    if info is not None and info.kind != kind:
        return unmapped(
            (f"编码系统 {info.title} 是{_KIND_WORD[info.kind]}编码，不能用于{_KIND_WORD[kind]}",),
            source_system=system,
            source_code=raw,
        )
    if info is not None and info.family == "who":
        return _resolve_who(term, raw, system)
    return _resolve_yb_or_gl(term, kind, raw, system, info)


def _resolve_yb_or_gl(term, kind: str, raw: str, system: str | None, info: SystemInfo | None) -> Resolution:
    from terminology.model import normalizer_for

    n = normalizer_for(kind)(raw)
    table = term.table(kind)
    yb, gl = _path_names(term, kind)
    canonical = canonical_for_kind(kind)
    if not n.ok or n.code is None:
        return unmapped(
            (f"{raw[:40]!r} 不是有效的{_KIND_WORD[kind]}编码格式",),
            changes=n.changes,
            source_system=system,
            source_code=raw,
        )
    family = info.family if info else None
    exact = table.get(n.code)
    mapped = term.translate(kind, n.code) if family != "yb" else None

    def via_map(conf: float, *why: str) -> Resolution:
        assert mapped is not None  # called only when the 国临版 map has the code
        target = table.get(mapped.target_code)
        if target is None:
            return unmapped(
                (f"官方映射目标 {mapped.target_code} 不在当前医保版 {table.version} 编码表中", *why),
                changes=n.changes,
                source_system=system,
                source_code=raw,
            )
        return Resolution(
            target.code,
            target.display,
            canonical,
            conf,
            f"{gl}-official-map",
            reasons=(
                f"国临版 {mapped.source_code}（{mapped.source_name}）按官方映射表对应医保版 {target.code}",
                *why,
            ),
            changes=n.changes,
            source_system=system,
            source_code=raw,
        )

    if family == "gl" and mapped is not None:
        return via_map(1.0)
    if exact is not None:
        why: tuple[str, ...] = ()
        if family == "gl":
            why = (f"{n.code} 不在国临版映射表中，但在医保版 {table.version} 中存在，按医保版编码使用",)
        conf = (1.0 if not n.changes else 0.99) if family != "gl" else 0.9
        return Resolution(
            exact.code,
            exact.display,
            canonical,
            conf,
            f"{yb}-exact",
            reasons=why,
            changes=n.changes,
            source_system=system,
            source_code=raw,
        )
    completions = term.completions(kind, n.code)
    explicit_dagger = n.dagger is not None and n.asterisk is None  # "B19.900x001†": the 医保版 half
    if mapped is not None and not (explicit_dagger and completions):
        because = "未指定编码系统" if family is None else f"{n.code} 不在医保版中"
        return via_map(0.95, f"{because}，按国临版编码处理")
    if len(completions) == 1:
        c = completions[0]
        how = "补全星号部分" if "+" in c.code and "+" not in n.code else "补零为医保版完整编码"
        return Resolution(
            c.code,
            c.display,
            canonical,
            0.9,
            f"{yb}-completed",
            reasons=(f"{n.code} 不是完整的医保版编码，{how}：{c.code}",),
            changes=(*n.changes, f"{n.code} → {c.code}"),
            source_system=system,
            source_code=raw,
        )
    if len(completions) > 1:
        return unmapped(
            (f"{n.code} 对应多个医保版编码，需要编码员确认",),
            candidates=_candidates(completions, 0.7),
            changes=n.changes,
            source_system=system,
            source_code=raw,
        )
    validation = term.validate(kind, n.code)
    reasons = tuple(r for r in validation.reasons if r not in n.changes)
    if family == "gl":
        reasons = (f"{n.code} 不在国临版→医保版官方映射表中", *reasons)
    return unmapped(
        reasons or (f"{n.code} 不在医保版 {table.version} 编码表中",),
        candidates=_candidates(validation.suggestions, 0.5),
        changes=n.changes,
        source_system=system,
        source_code=raw,
    )


def _resolve_who(term, raw: str, system: str | None) -> Resolution:
    """WHO ICD-10 has only 类目/亚目; the 医保版 extends them. The 亚目's own code (K35.3 → K35.300)
    is the natural target; its other members are offered as candidates."""
    from terminology.normalize import normalize_diagnosis
    from terminology.structure import yamu

    n = normalize_diagnosis(raw)
    if not n.ok or n.code is None:
        return unmapped(
            (f"{raw[:40]!r} 不是有效的 ICD-10 编码格式",),
            changes=n.changes,
            source_system=system,
            source_code=raw,
        )
    code = n.dagger or n.code
    exact = term.dx.get(n.code)
    if exact is not None:  # a WHO code that is spelled exactly like a 医保版 one
        return Resolution(
            exact.code,
            exact.display,
            canonical_for_kind("dx"),
            0.95,
            "who-icd10-exact",
            changes=n.changes,
            source_system=system,
            source_code=raw,
        )
    sub = yamu(code)
    members = term.subcategory_members(code) if sub else term.dx.with_prefix(code[:3] + ".", limit=200)
    if not members:
        return unmapped(
            (f"WHO ICD-10 {code} 在医保版中没有对应的亚目/类目",),
            candidates=_candidates(term.dx.nearest(code), 0.3),
            changes=n.changes,
            source_system=system,
            source_code=raw,
        )
    head = sub if sub else code[:3]
    # the 亚目's own code (K35.3 → K35.300); for a WHO 类目 without subdivisions (I10) the .x00 code
    own_code = f"{head}00" if sub else f"{head}.x00"
    own = [m for m in members if m.code == own_code]
    cands = _candidates(members[:10], 0.6)
    if own:
        best = own[0]
        return Resolution(
            best.code,
            best.display,
            canonical_for_kind("dx"),
            0.85,
            "who-icd10-yamu",
            candidates=cands,
            reasons=(
                f"WHO ICD-10 {code} 取医保版{'亚目' if sub else '类目'} {head} 的主编码 {best.code}；该亚目下共 {len(members)} 个医保版编码，可细化",
            ),
            changes=n.changes,
            source_system=system,
            source_code=raw,
        )
    return Resolution(
        None,
        None,
        None,
        0.5,
        "who-icd10-yamu",
        needs_confirmation=True,
        candidates=cands,
        reasons=(f"WHO ICD-10 {code} 对应医保版 {head} 下的 {len(members)} 个编码，需要编码员选择",),
        changes=n.changes,
        source_system=system,
        source_code=raw,
    )


#: search match kind → (path, how the text relates to the official name) for an assigned text
_TEXT_PATHS = {
    "name": ("text-exact-name", "一致"),
    "name-variant": ("text-same-concept", "是同一概念（仅写法不同：病/症/术、性/型、括号内别名等）"),
    "name+synonym": ("text-synonym", "一致（按临床简称对照表展开）"),
    "name-variant+synonym": ("text-synonym", "是同一概念（按临床简称对照表展开）"),
}


def resolve_text(
    term, kind: str, text: Any, threshold: float = DEFAULT_TEXT_THRESHOLD, limit: int = 5
) -> Resolution:
    """Free text → ranked candidates; assigned only when the best match reaches ``threshold``."""
    if not _ok_kind(kind):
        return unmapped((f"未知的编码类型 {str(kind)[:20]!r}",))
    if not isinstance(text, str) or not text.strip():
        return unmapped(("没有编码，也没有文字描述",))
    reasons: list[str] = []
    query = text.strip()
    if len(query) > MAX_TEXT_LENGTH:
        reasons.append(f"文字描述过长（{len(query)} 字），只用前 {MAX_TEXT_LENGTH} 字检索")
        query = query[:MAX_TEXT_LENGTH]
    hits = [h for _k, h in term.search(query, kind=kind, limit=limit)]
    if not hits:
        return unmapped((*reasons, f"文字“{query[:30]}”找不到相近的医保版{_KIND_WORD[kind]}名称"))
    cands = tuple(Candidate(h.code, h.display, h.score) for h in hits)
    top = hits[0]
    tie = len(hits) > 1 and hits[1].score >= top.score
    if top.score >= threshold and not tie:
        path, how = _TEXT_PATHS.get(top.match, ("text-fuzzy", "相近"))
        return Resolution(
            top.code,
            top.display,
            canonical_for_kind(kind),
            top.score,
            path,
            candidates=cands,
            reasons=(*reasons, f"文字“{query[:30]}”与医保版名称“{top.display}”{how}"),
        )
    return Resolution(
        None,
        None,
        None,
        top.score,
        "text-fuzzy",
        needs_confirmation=True,
        candidates=cands,
        reasons=(
            *reasons,
            f"仅有文字描述，最佳匹配“{top.display}”可信度 {top.score:.2f} 低于阈值 {threshold:.2f}，需要编码员确认",
        ),
    )


# --- one coding, and a CodeableConcept ---------------------------------------------------------------
_PRIORITY = {"yb": 0, "gl": 1, "local": 2, "who": 3, None: 4, "system-near-miss": 5, "system-unknown": 6}
_UNLISTED = 9  # a system nobody knows and whose code could not be confirmed


def _coding_priority(res: Resolution) -> int:
    if res.path.startswith("local-map:"):
        return _PRIORITY["local"]
    for flag in res.flags:
        if flag in _PRIORITY:
            return _PRIORITY[flag]
    if not res.source_system:
        return _PRIORITY[None]
    info = identify_system(res.source_system)
    return _PRIORITY[info.family] if info else _UNLISTED


def resolve_coding(
    term, kind: str, coding: Any, local_maps=None, *, trust_systemless: bool = True
) -> Resolution:
    """The 医保版 code for one FHIR Coding (never raises, never falls back to text).

    A coding whose system is the hospital's (local maps) or a known one resolves as such. One whose
    system URI is a near miss of a known one (``…/icd-10-yb-2.0``) or unknown is accepted only when
    its display agrees with the official name of what its code denotes, flagged and with a lower
    confidence (the display is the evidence; without it the code is not trusted). A coding without
    a system counts as 医保版/国临版 unless ``trust_systemless`` is False (draft orders, where such
    codes are usually charge items): then it needs the same display evidence."""
    try:
        return _resolve_coding(term, kind, coding, _as_local_maps(term, local_maps), trust_systemless)
    except Exception as exc:  # noqa: BLE001 - the contract is "never an exception to the caller"
        return unmapped((f"无法处理该编码（内部错误：{type(exc).__name__}）",))


def _resolve_coding(term, kind: str, coding: Any, locals_: LocalMaps, trust_systemless: bool) -> Resolution:
    if not _ok_kind(kind):
        return unmapped((f"未知的编码类型 {str(kind)[:20]!r}（应为 dx 或 px）",))
    if not isinstance(coding, dict) or not isinstance(coding.get("code"), str) or not coding["code"].strip():
        return unmapped(("coding 没有编码",))
    code, system, display = coding["code"], coding.get("system"), coding.get("display")
    system = system if isinstance(system, str) and system.strip() else None
    if system and locals_.knows_system(system):
        entry = locals_.get(system, code)
        if entry is None:
            return unmapped(
                (f"院内编码 {code[:40]} 不在医院映射表中",), source_system=system, source_code=code[:64]
            )
        return _resolve_local(term, kind, entry, system)
    if (system and identify_system(system) is not None) or (system is None and trust_systemless):
        return resolve_code(term, kind, code, system)
    return _resolve_unlisted(term, kind, code, system, display if isinstance(display, str) else None)


def _resolve_unlisted(term, kind: str, code: str, system: str | None, display: str | None) -> Resolution:
    """A code under a system URI we do not know (or none where one is needed): trusted only when the
    display names the same concept as the code does in the system the URI evidently meant."""
    near = near_miss_system(system)
    meant = near if near is not None and near.kind == kind and near.family in ("yb", "gl") else None
    res = resolve_code(term, kind, code, meant.uri if meant else None)
    shown = (system or "")[:80]
    if not res.mapped or not res.code or not res.path.endswith(("-exact", "-official-map")):
        return unmapped(
            (
                f"{_system_words(system)}：{code[:40]} 不是有效的医保版/国临版{_KIND_WORD[kind]}编码，"
                "无法判断其含义（请配置医院本地映射表）",
            ),
            source_system=system,
            source_code=code[:64],
        )
    names = [res.display or ""]
    source = term.translate(kind, code) if "official-map" in res.path else None
    if source is not None:
        names.append(source.source_name)
    if not any(same_concept(display or "", name, kind) for name in names):
        said = f"coding.display“{display[:40]}”与之不一致" if display else "coding 没有 display，无法确认"
        return replace(
            unmapped(
                (
                    f"{_system_words(system)}；编码 {code[:40]} 在医保版中是“{res.display}”，但{said}，"
                    f"不予自动采用（请使用标准编码系统 URI {canonical_for_kind(kind)}）",
                ),
                candidates=(Candidate(res.code, res.display or "", 0.5),),  # what the code says
                source_system=system,
                source_code=code[:64],
            ),
            flags=("display-conflict",) if display else (),
        )
    if meant is not None:
        flag, cap = "system-near-miss", NEAR_MISS_CONFIDENCE
        why = f"编码系统 URI {shown} 与{meant.title}的标准 URI {meant.uri} 相近，视为拼写偏差"
    else:
        flag, cap = "system-unknown", UNKNOWN_SYSTEM_CONFIDENCE
        why = _system_words(system)
    return replace(
        res,
        confidence=min(res.confidence, cap),
        # flag first: the code was not sent under a 医保版 system, so hooks show the mapping and
        # offer to add the canonical coding (system-near-miss:yb2.0, system-unknown:gl2.0-official-map)
        path=f"{flag}:{res.path.removesuffix('-exact')}",
        flags=(*res.flags, flag),
        reasons=(
            *res.reasons,
            f"{why}；编码 {code[:40]} 与名称“{(display or '')[:40]}”一致，按医保版 {res.code}（{res.display}）采用，可信度降为 {min(res.confidence, cap):.2f}",
        ),
    )


def _system_words(system: str | None) -> str:
    return f"编码系统 {system[:80]} 不是已知的编码系统" if system else "编码未注明编码系统"


def _as_local_maps(term, local_maps) -> LocalMaps:
    if isinstance(local_maps, LocalMaps):
        return local_maps
    if local_maps is None:
        return local_maps_for_home(getattr(term, "home", None))
    return load_local_maps(local_maps)


def _resolve_local(term, kind: str, entry, system: str) -> Resolution:
    from terminology.model import normalizer_for

    n = normalizer_for(kind)(entry.target_code)
    target = term.table(kind).get(n.code) if n.ok and n.code else None
    path = f"local-map:{entry.map_name}"
    if target is None:
        return unmapped(
            (
                f"医院映射表 {entry.map_name} 第 {entry.line} 行的目标编码 {entry.target_code} 不在医保版编码表中",
            ),
            source_system=system,
            source_code=entry.source_code,
        )
    return Resolution(
        target.code,
        target.display,
        canonical_for_kind(kind),
        0.95,
        path,
        reasons=(
            f"院内编码 {entry.source_code}（{entry.source_name}）按医院映射表 {entry.map_name} 对应 {target.code}",
        ),
        changes=n.changes,
        source_system=system,
        source_code=entry.source_code,
    )


def map_codeable_concept(
    term,
    kind: str,
    codeable_concept: Any,
    local_maps=None,
    threshold: float = DEFAULT_TEXT_THRESHOLD,
) -> Resolution:
    """Best 医保版 code for a FHIR CodeableConcept with any number of codings (never raises)."""
    try:
        return _map_cc(term, kind, codeable_concept, local_maps, threshold)
    except Exception as exc:  # noqa: BLE001 - the contract is "never an exception to the caller"
        return unmapped((f"无法处理该编码（内部错误：{type(exc).__name__}）",))


def _combine_halves(term, codings: list) -> Resolution | None:
    """A dagger half (``A01.000x005†``) and an asterisk half (``J17.0*``) sent as two codings of one
    concept are one 医保版 code (``A01.000x005+J17.0*``) when that combination exists."""
    from terminology.normalize import combine_dagger_asterisk, normalize_diagnosis

    daggers, asterisks = [], []
    for c in codings:
        code = c.get("code") if isinstance(c, dict) else None
        if not isinstance(code, str) or len(code) > 64:
            continue
        n = normalize_diagnosis(code)
        if n.ok and n.asterisk and not n.dagger:
            asterisks.append(code)
        elif n.ok and not n.asterisk:
            daggers.append(code)
    for d in daggers:
        for a in asterisks:
            joined = combine_dagger_asterisk(d, a)
            hit = term.dx.get(joined.code) if joined.ok else None
            if hit is not None:
                return Resolution(
                    hit.code,
                    hit.display,
                    canonical_for_kind("dx"),
                    0.98,
                    "yb2.0-dagger-asterisk",
                    reasons=(f"剑号编码 {d} 与星号编码 {a} 合并为医保版 {hit.code}",),
                    changes=joined.changes,
                )
    return None


def _map_cc(term, kind, cc, local_maps, threshold) -> Resolution:
    if not _ok_kind(kind):
        return unmapped((f"未知的编码类型 {str(kind)[:20]!r}（应为 dx 或 px）",))
    if not isinstance(cc, dict):
        return unmapped(("CodeableConcept 不是 JSON 对象",))
    codings = cc.get("coding") or []
    if not isinstance(codings, list):
        return unmapped(("CodeableConcept.coding 不是数组",))
    locals_ = _as_local_maps(term, local_maps)
    notes: list[str] = []
    results: list[tuple[int, int, Resolution]] = []
    displays: list[str] = []
    for i, coding in enumerate(codings[:20]):
        if not isinstance(coding, dict):
            notes.append(f"第 {i + 1} 个 coding 不是对象，已忽略")
            continue
        code, display = coding.get("code"), coding.get("display")
        if isinstance(display, str) and display.strip():
            displays.append(display)
        if not isinstance(code, str) or not code.strip():
            notes.append(f"第 {i + 1} 个 coding 没有编码")
            continue
        res = _resolve_coding(term, kind, coding, locals_, trust_systemless=True)
        results.append((_coding_priority(res), i, res))
    for _prio, _i, res in results:
        notes.extend(r for r in res.reasons if res.code is None and r not in notes)
    if kind == "dx":
        combined = _combine_halves(term, codings[:20])
        if combined is not None:
            return combined
    good = sorted((r for r in results if r[2].code is not None), key=lambda t: (t[0], -t[2].confidence, t[1]))
    if good:
        best = good[0][2]
        others = {code for r in good[1:] if (code := r[2].code) is not None and code != best.code}
        extra = []
        if others:
            extra.append(
                f"其他 coding 对应不同的医保版编码（{'、'.join(sorted(others))}），按编码系统优先级采用 {best.code}"
            )
        return best.with_reasons(*extra) if extra else best
    text = cc.get("text")
    if not (isinstance(text, str) and text.strip()) and displays:
        text = displays[0]
        notes.append("编码无法映射，改用 coding.display 的文字检索")
    if isinstance(text, str) and text.strip():
        by_text = resolve_text(term, kind, text, threshold)
        conflict = tuple(c for _p, _i, r in results if "display-conflict" in r.flags for c in r.candidates)
        if conflict and by_text.code is not None and by_text.code not in {c.code for c in conflict}:
            # the code says one thing and its display another: neither wins without a coder
            by_text = replace(
                by_text,
                code=None,
                display=None,
                system=None,
                confidence=0.5,
                path="code-display-conflict",
                needs_confirmation=True,
                candidates=(*conflict, *by_text.candidates),
                reasons=(*by_text.reasons, "编码与名称指向不同的医保版条目，需要编码员确认"),
            )
        # a code that nearly resolved (candidates) is more useful than text, keep both lists
        code_cands = tuple(c for _p, _i, r in results for c in r.candidates)
        if code_cands and by_text.code is None:
            return by_text.with_reasons(*notes)
        return by_text.with_reasons(*notes) if notes else by_text
    if results:
        best_unmapped = sorted(results, key=lambda t: (t[0], -len(t[2].candidates)))[0][2]
        return best_unmapped.with_reasons(*[n for n in notes if n not in best_unmapped.reasons])
    return unmapped(tuple(notes) or ("CodeableConcept 没有编码也没有文字",))
