"""FHIR CodeableConcepts and raw codes from any source system → the best 医保版 code, with the
confidence and the path taken (see :mod:`mappings.resolve`)."""

from mappings.local_maps import LocalMaps, load_local_maps, local_maps_for_home
from mappings.resolution import Candidate, Resolution
from mappings.resolve import (
    DEFAULT_TEXT_THRESHOLD,
    map_codeable_concept,
    resolve_code,
    resolve_coding,
    resolve_text,
)

__all__ = [
    "Candidate",
    "Resolution",
    "resolve_code",
    "resolve_coding",
    "resolve_text",
    "map_codeable_concept",
    "LocalMaps",
    "load_local_maps",
    "local_maps_for_home",
    "DEFAULT_TEXT_THRESHOLD",
]
