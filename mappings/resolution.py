"""The answer of the mapping layer: one 医保版 code (or none) plus how sure we are and why."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["Candidate", "Resolution", "unmapped"]


@dataclass(frozen=True, slots=True)
class Candidate:
    code: str
    display: str
    score: float


@dataclass(frozen=True, slots=True)
class Resolution:
    """``code`` is a valid 医保版 code or None; ``path`` names the rule that decided, e.g.
    'yb2.0-exact', 'gl2.0-official-map', 'who-icd10-yamu', 'local-map:HIS1', 'text-fuzzy', 'unmapped'."""

    code: str | None
    display: str | None
    system: str | None
    confidence: float
    path: str
    needs_confirmation: bool = False
    candidates: tuple[Candidate, ...] = ()
    reasons: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    source_system: str | None = None
    source_code: str | None = None
    #: warnings that do not stop the assignment, e.g. 'system-near-miss', 'system-unknown'
    flags: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def mapped(self) -> bool:
        """A code was assigned without needing a coder's confirmation."""
        return self.code is not None and not self.needs_confirmation

    def with_reasons(self, *reasons: str) -> Resolution:
        return replace(self, reasons=(*self.reasons, *reasons))

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "display": self.display,
            "system": self.system,
            "confidence": self.confidence,
            "path": self.path,
            "needs_confirmation": self.needs_confirmation,
            "candidates": [{"code": c.code, "display": c.display, "score": c.score} for c in self.candidates],
            "reasons": list(self.reasons),
            "changes": list(self.changes),
            "source_system": self.source_system,
            "source_code": self.source_code,
            "flags": list(self.flags),
        }


def unmapped(
    reasons: tuple[str, ...] | list[str],
    *,
    candidates: tuple[Candidate, ...] = (),
    changes: tuple[str, ...] = (),
    source_system: str | None = None,
    source_code: str | None = None,
) -> Resolution:
    return Resolution(
        None,
        None,
        None,
        0.0,
        "unmapped",
        needs_confirmation=bool(candidates),
        candidates=candidates,
        reasons=tuple(reasons),
        changes=changes,
        source_system=source_system,
        source_code=source_code,
    )
