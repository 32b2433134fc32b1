"""Card texts from editable templates.

Each card type has a TOML file in ``cards/templates/`` with a Jinja2 ``summary`` (plain text) and
``detail`` (markdown). A hospital overrides any key by putting a file of the same name in
``<data home>/card_templates/``. Every ``{{ value }}`` is escaped by the environment itself
(``finalize`` + autoescape), so a template author cannot forget it; templates run sandboxed.
A broken override never breaks a card: the built-in text is used and the problem is recorded.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, DictLoader, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from cards import builders
from cards.escape import escape_markdown, plain_text
from cards.formatting import format_money, format_number, format_percent, to_decimal

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent / "templates"
OVERRIDE_DIRNAME = "card_templates"
CARD_KINDS = ("order_sign", "encounter_start", "discharge", "patient_view")
CONFIG_FILES = ("labels", "bands", "override_reasons", "partials")
#: The coder's card speaks of a finished stay (settlement words); the others of an ongoing one.
DISCHARGE = "discharge"
#: Band limits may name the region's deviation thresholds instead of a number.
THRESHOLD_NAMES = ("low", "high", "special")
DEFAULT_THRESHOLDS = {"rule": "2.0", "low": Decimal("0.5"), "high": Decimal(2), "special": Decimal(5)}


@dataclass(frozen=True, slots=True)
class Band:
    """A cost band as one card shows it: limits resolved to the region's thresholds, texts to the
    card's audience."""

    key: str
    label: str
    meaning: str
    below: Decimal | None = None  # exclusive upper limit
    upto: Decimal | None = None  # inclusive upper limit

    def contains(self, ratio: Decimal) -> bool:
        if self.below is not None:
            return ratio < self.below
        if self.upto is not None:
            return ratio <= self.upto
        return True


@dataclass(frozen=True, slots=True)
class BandSpec:
    """A band of ``bands.toml``: a limit is a number or a threshold name (``low``, ``high``,
    ``special``); ``rules`` restricts it to deviation rules (empty: every rule); ``discharge_*`` is
    the coder card's wording (else the doctor's)."""

    key: str
    label: str
    meaning: str
    discharge_label: str = ""
    discharge_meaning: str = ""
    below: Decimal | str | None = None
    upto: Decimal | str | None = None
    rules: tuple[str, ...] = ()

    def resolve(self, thresholds: Mapping[str, Any], discharge: bool) -> Band:
        def limit(value: Decimal | str | None) -> Decimal | None:
            return thresholds[value] if isinstance(value, str) else value

        label = (self.discharge_label or self.label) if discharge else self.label
        meaning = (self.discharge_meaning or self.meaning) if discharge else self.meaning
        return Band(
            self.key,
            _fill(label, thresholds),
            _fill(meaning, thresholds),
            limit(self.below),
            limit(self.upto),
        )


def _fill(text: str, thresholds: Mapping[str, Any]) -> str:
    """``{low}`` / ``{high}`` / ``{special}`` → the region's threshold as a percentage ("200%")."""
    for name in THRESHOLD_NAMES:
        text = text.replace("{" + name + "}", format_percent(thresholds[name], 0))
    return text


def thresholds_of(basis: Any) -> dict[str, Any]:
    """The deviation rule and thresholds of a ``PricingBasis`` (duck-typed), else the 2.0 defaults."""
    if basis is None:
        return dict(DEFAULT_THRESHOLDS)
    return {
        "rule": str(basis.deviation_rule),
        "low": to_decimal(basis.deviation_low) or DEFAULT_THRESHOLDS["low"],
        "high": to_decimal(basis.deviation_high) or DEFAULT_THRESHOLDS["high"],
        "special": to_decimal(basis.deviation_special) or DEFAULT_THRESHOLDS["special"],
    }


@dataclass(frozen=True, slots=True)
class RenderedText:
    summary: str
    detail: str


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _safe(text: str) -> Markup:
    return Markup(text)


def _make_env(finalize, partials: Mapping[str, str] | None = None) -> SandboxedEnvironment:
    """A sandboxed environment; ``partials`` are the snippets templates ``{% include %}`` by name."""
    env = SandboxedEnvironment(
        autoescape=True,
        finalize=finalize,
        undefined=ChainableUndefined,
        trim_blocks=True,
        keep_trailing_newline=False,
        loader=DictLoader(dict(partials or {})),
    )
    env.filters["money"] = lambda v: _safe(format_money(v))
    env.filters["percent"] = lambda v, places=1: _safe(format_percent(v, places))
    env.filters["number"] = lambda v, places=2: _safe(format_number(v, places))
    return env


def _finalize_detail(value: Any) -> Any:
    if value is None:
        return ""
    return escape_markdown(value)


def _finalize_summary(value: Any) -> Any:
    if value is None:
        return ""
    return Markup(plain_text(value))  # Markup so autoescape keeps the text as is


_LIST_ITEM = re.compile(r"^(?:[-*+] |\d+\. )")


def _block_kind(line: str) -> str:
    if line.startswith("|"):
        return "table"
    if line.startswith(">"):
        return "quote"
    if _LIST_ITEM.match(line):
        return "list"
    return "text"


def _tidy_markdown(text: str) -> str:
    """Collapse runs of blank lines the template's conditionals leave behind and separate blocks
    (paragraph, list, table, quote) by one blank line so every client renders them apart; each
    text line is its own paragraph (a soft break would join Chinese lines with a space).

    Only template structure can start a line: interpolated values never contain newlines and their
    markdown characters are escaped."""
    out: list[str] = []
    for line in (raw.rstrip() for raw in text.strip().splitlines()):
        if not line:
            if out and out[-1]:
                out.append("")
            continue
        kind = _block_kind(line)
        if out and out[-1] and (kind != _block_kind(out[-1]) or kind == "text"):
            out.append("")
        out.append(line)
    return "\n".join(out)


def _limit(value: Any) -> Decimal | str | None:
    """A band limit: a number, or the name of a deviation threshold."""
    if value is None:
        return None
    if isinstance(value, str) and value in THRESHOLD_NAMES:
        return value
    number = to_decimal(value)
    if number is None:
        raise ValueError(f"limit {value!r} is neither a number nor one of {', '.join(THRESHOLD_NAMES)}")
    return number


def _text_values(raw: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): v for k, v in raw.items() if isinstance(v, str)}


def _read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


class CardTemplates:
    """Compiled card templates plus labels, bands and override reasons of one data home."""

    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir
        self.problems: list[str] = []  # human-readable problems with hospital overrides
        self._builtin: dict[str, dict[str, Any]] = {}
        self._compiled: dict[tuple[str, str], Any] = {}
        self._fallback: dict[tuple[str, str], Any] = {}
        config: dict[str, dict[str, Any]] = {}
        for name in (*CARD_KINDS, *CONFIG_FILES):
            builtin = _read_toml(BUILTIN_DIR / f"{name}.toml")
            merged = builtin
            override_path = override_dir / f"{name}.toml" if override_dir else None
            if override_path and override_path.is_file():
                try:
                    merged = _merge(builtin, _read_toml(override_path))
                except (OSError, tomllib.TOMLDecodeError) as exc:
                    self._problem(f"{override_path}: {exc}; using the built-in {name}.toml")
            self._builtin[name] = builtin
            config[name] = merged
        # Partials (``partials.toml``) are shared snippets; the built-in texts render with the built-in
        # partials, so a broken hospital partial falls back together with the template using it.
        builtin_partials = _text_values(self._builtin["partials"])
        merged_partials = _text_values(config["partials"])
        envs = {
            "summary": (
                _make_env(_finalize_summary, merged_partials),
                _make_env(_finalize_summary, builtin_partials),
            ),
            "detail": (
                _make_env(_finalize_detail, merged_partials),
                _make_env(_finalize_detail, builtin_partials),
            ),
        }
        for kind in CARD_KINDS:
            for part, (env, builtin_env) in envs.items():
                builtin_template = builtin_env.from_string(self._builtin[kind][part])
                self._fallback[(kind, part)] = builtin_template
                source = config[kind].get(part)
                try:
                    if not isinstance(source, str):
                        raise TemplateError(f"'{part}' must be a string")
                    self._compiled[(kind, part)] = env.from_string(source)
                except TemplateError as exc:
                    self._problem(f"{kind}.toml [{part}]: {exc}; using the built-in text")
                    self._compiled[(kind, part)] = builtin_template
        self.labels = self._load_labels(config["labels"])
        self.bands, self.warning_ratio = self._load_bands(config["bands"])
        self._override_reasons = config["override_reasons"]

    def _problem(self, message: str) -> None:
        if message in self.problems:  # a template failing on every request is reported once
            return
        log.warning("card templates: %s", message)
        self.problems.append(message)

    @staticmethod
    def _load_labels(raw: Mapping[str, Any]) -> dict[str, Any]:
        """Labels are hospital configuration: trusted markdown, not escaped."""

        def convert(value: Any) -> Any:
            if isinstance(value, Mapping):
                return {k: convert(v) for k, v in value.items()}
            return Markup(str(value))

        return convert(raw)

    def _load_bands(self, raw: Mapping[str, Any]) -> tuple[list[BandSpec], Decimal]:
        bands: list[BandSpec] = []
        for entry in raw.get("band", []):
            try:
                below, upto = _limit(entry.get("below")), _limit(entry.get("upto"))
                rules = entry.get("rules", ())
                bands.append(
                    BandSpec(
                        key=str(entry["key"]),
                        label=str(entry.get("label", entry["key"])),
                        meaning=str(entry.get("meaning", "")),
                        discharge_label=str(entry.get("discharge_label", "")),
                        discharge_meaning=str(entry.get("discharge_meaning", "")),
                        below=below,
                        upto=upto,
                        rules=tuple(str(r) for r in ([rules] if isinstance(rules, str) else rules)),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                self._problem(
                    f"bands.toml: band {entry.get('key', '?')!r} is not usable ({exc}); band skipped"
                )
        warning = to_decimal(raw.get("indicator", {}).get("warning_ratio"))
        return bands, warning if warning is not None else Decimal(1)

    # -- queries ---------------------------------------------------------------------------------

    def band_for(self, ratio: object, basis: Any = None, kind: str = "order_sign") -> Band | None:
        """The band of a cost/standard ratio (None when the ratio is unknown), with its limits at the
        region's deviation thresholds (``basis``: a ``PricingBasis``; default the 2.0 rule) and its
        wording for the card ``kind`` (the coder's card at discharge, else the doctor's)."""
        value = to_decimal(ratio)
        if value is None:
            return None
        thresholds = thresholds_of(basis)
        applicable = [spec for spec in self.bands if not spec.rules or thresholds["rule"] in spec.rules]
        bands = [spec.resolve(thresholds, kind == DISCHARGE) for spec in applicable]
        for band in bands:
            if band.contains(value):
                return band
        return bands[-1] if bands else None

    def cost_notes(self, so_far: Any = None, orders: Any = None) -> list[str]:
        """Why the cost figures are estimates, from costing results (``CostSoFar``/``OrderCost``,
        duck-typed), in the hospital's wording (``labels.toml`` [cost_notes]) — for ``estimate_notes``."""
        wording = self.labels.get("cost_notes", {})
        keys: list[str] = []
        if orders is not None:
            if any(getattr(line, "quantity_assumed", False) for line in orders.priced):
                keys.append("quantity_assumed")
            if orders.notes and orders.priced:
                keys.append("sample_prices")
            if orders.unpriced:
                keys.append("orders_unpriced")
        if so_far is not None:
            if so_far.unvalued:
                keys.append("charges_unvalued")
            if so_far.notes:
                keys.append("his_mismatch")
        return [str(wording[key]) for key in keys if key in wording]

    def override_reasons(self, kind: str) -> list[dict[str, str]]:
        reasons = []
        for entry in self._override_reasons.get(kind, []):
            if isinstance(entry, Mapping) and entry.get("code") and entry.get("display"):
                reasons.append(builders.override_reason(str(entry["code"]), str(entry["display"])))
        return reasons

    def indicator_for(self, kind: str, view: Any) -> str:
        """``warning`` when the projected position is above the configured ratio; for the coder's
        card also when a settlement-list error or an inadmissible current principal is found."""
        position = getattr(view, "position", None)
        ratio = position.ratio if position is not None else None
        if kind == DISCHARGE:
            ratio = position.ratio_before_orders if position is not None else None
            if any(c.level == "error" for c in getattr(view, "checks", [])):
                return "warning"
            if any(o.current and not o.admissible for o in getattr(view, "principal_options", [])):
                return "warning"
            if getattr(view, "group", None) is None or getattr(view, "procedure_check", None) is not None:
                return "warning"
        if ratio is not None and ratio > self.warning_ratio:
            return "warning"
        return "info"

    # -- rendering -------------------------------------------------------------------------------

    def _context(self, kind: str, view: Any) -> dict[str, Any]:
        context: dict[str, Any] = {}
        if is_dataclass(view):
            context.update({f.name: getattr(view, f.name) for f in fields(view)})
        elif isinstance(view, Mapping):
            context.update(view)
        else:
            raise TypeError("a card view must be a dataclass or a mapping")
        position = context.get("position")
        ratio = None
        if position is not None:
            ratio = position.ratio_before_orders if kind == DISCHARGE else position.ratio
        context["band"] = self.band_for(ratio, context.get("basis"), kind)
        context["labels"] = self.labels
        context["view"] = view
        return context

    def _render_part(self, kind: str, part: str, context: dict[str, Any]) -> str:
        try:
            return self._compiled[(kind, part)].render(context)
        except Exception as exc:  # a hospital template must never take the card down
            if self._compiled[(kind, part)] is self._fallback[(kind, part)]:
                raise
            self._problem(f"{kind}.toml [{part}] failed to render ({exc}); using the built-in text")
            return self._fallback[(kind, part)].render(context)

    def render(self, kind: str, view: Any) -> RenderedText:
        if kind not in CARD_KINDS:
            raise ValueError(f"unknown card kind {kind!r}; one of {CARD_KINDS}")
        context = self._context(kind, view)
        summary = self._render_part(kind, "summary", context)
        detail = _tidy_markdown(self._render_part(kind, "detail", context))
        return RenderedText(summary=plain_text(summary), detail=detail)

    def build(
        self,
        kind: str,
        view: Any,
        *,
        source: Mapping[str, Any],
        suggestions: Iterable[Mapping[str, Any]] = (),
        selection_behavior: str | None = None,
        override_reasons: Iterable[Mapping[str, Any]] | None = None,
        links: Iterable[Mapping[str, Any]] = (),
        indicator: str | None = None,
    ) -> dict[str, Any]:
        """A complete card for a view-model: texts, indicator, override reasons, uuid."""
        text = self.render(kind, view)
        return builders.card(
            summary=text.summary,
            detail=text.detail,
            indicator=indicator or self.indicator_for(kind, view),
            source=source,
            suggestions=suggestions,
            selection_behavior=selection_behavior,
            override_reasons=self.override_reasons(kind) if override_reasons is None else override_reasons,
            links=links,
        )


_cache: dict[Path | None, tuple[tuple, CardTemplates]] = {}
_cache_lock = threading.Lock()


def _signature(directory: Path | None) -> tuple:
    if directory is None or not directory.is_dir():
        return ()
    try:
        return tuple(
            sorted(
                (e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(directory) if e.is_file()
            )
        )
    except OSError:
        return ()


def load_card_templates(home: Path | str | None = None) -> CardTemplates:
    """Card templates for a data home (built-ins when ``home`` is None or has no overrides).

    Cached per home; an edited override file is picked up on the next call (mtime check)."""
    directory = Path(home) / OVERRIDE_DIRNAME if home is not None else None
    signature = _signature(directory)
    with _cache_lock:
        cached = _cache.get(directory)
        if cached and cached[0] == signature:
            return cached[1]
    templates = CardTemplates(directory if signature else None)
    with _cache_lock:
        _cache[directory] = (signature, templates)
    return templates
