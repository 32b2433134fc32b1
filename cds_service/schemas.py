"""marshmallow schemas for CDS Hooks requests and feedback.

Lenient where real clients are sloppy (the Sandbox's draftOrders Bundle has no ``type``, its
MedicationRequest may lack ``intent``; unknown context fields are kept), strict where meaning is
lost (no ``hook``/``hookInstance``/``context``/``patientId``, token without ``fhirServer``).
FHIR resources are checked only for shape here; they are parsed tolerantly later, on demand.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

_ID = validate.Length(min=1, max=256)
_URL = validate.URL(schemes={"http", "https"}, require_tld=False)


class _Lenient(Schema):
    class Meta:
        unknown = INCLUDE


class _ResourceField(fields.Dict):
    """A JSON object carrying a ``resourceType`` (content is validated later, tolerantly)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        result = super()._deserialize(value, attr, data, **kwargs)
        rtype = result.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            raise ValidationError("FHIR resource without resourceType")
        return result


class _BundleField(_ResourceField):
    """A FHIR Bundle; ``type`` may be absent (CDS Hooks Sandbox), entries need a resource."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        bundle = super()._deserialize(value, attr, data, **kwargs)
        if bundle["resourceType"] != "Bundle":
            raise ValidationError(f"must be a FHIR Bundle, got {bundle['resourceType']!r}")
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            raise ValidationError("Bundle.entry must be an array")
        problems: dict[str, list[str]] = {}
        for i, entry in enumerate(entries):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
                problems[f"entry.{i}"] = ["entry without a resource with resourceType"]
        if problems:
            raise ValidationError(problems)
        return bundle


class FhirAuthorizationSchema(_Lenient):
    # RFC 6750 b64token (a JWT fits): the token travels in an HTTP header, which takes no other text
    access_token = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9\-._~+/]+=*$",
            error="must be an RFC 6750 bearer token (ASCII letters, digits, -._~+/)",
        ),
    )
    token_type = fields.String(required=True, validate=validate.OneOf(["Bearer", "bearer"]))
    expires_in = fields.Integer(load_default=None, allow_none=True)
    scope = fields.String(load_default=None, allow_none=True)
    subject = fields.String(load_default=None, allow_none=True)
    patient = fields.String(load_default=None, allow_none=True)


class PatientContextSchema(_Lenient):
    """patient-view: userId, patientId, encounterId (optional)."""

    # userId is REQUIRED by the spec but carries no meaning for DIP: accepted when absent.
    userId = fields.String(load_default=None, validate=_ID)
    patientId = fields.String(required=True, validate=_ID)
    encounterId = fields.String(load_default=None, validate=_ID)


class EncounterContextSchema(PatientContextSchema):
    """encounter-start / encounter-discharge: the encounter is the point of the hook."""

    encounterId = fields.String(required=True, validate=_ID)


class OrderSignContextSchema(PatientContextSchema):
    draftOrders = _BundleField(required=True)


class OrderSelectContextSchema(OrderSignContextSchema):
    selections = fields.List(fields.String(validate=_ID), required=True, validate=validate.Length(min=1))

    @validates_schema(skip_on_field_errors=False)
    def _selections_in_bundle(self, data: dict[str, Any], **_: Any) -> None:
        # A selection that names no draft order loses meaning ("which order was picked?").
        if "draftOrders" not in data or "selections" not in data:
            return  # already reported as field errors
        ids = {
            f"{e['resource']['resourceType']}/{e['resource'].get('id')}"
            for e in data.get("draftOrders", {}).get("entry", [])
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        }
        missing = [s for s in data.get("selections", []) if s not in ids]
        if missing:
            raise ValidationError(f"not in draftOrders: {', '.join(missing[:5])}", "selections")


CONTEXT_SCHEMAS: dict[str, type[Schema]] = {
    "patient-view": PatientContextSchema,
    "encounter-start": EncounterContextSchema,
    "encounter-discharge": EncounterContextSchema,
    "order-sign": OrderSignContextSchema,
    "order-select": OrderSelectContextSchema,
}


class _PrefetchField(fields.Dict):
    """Prefetch: key → FHIR resource or ``null`` (client has no data)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        result = super()._deserialize(value, attr, data, **kwargs)
        bad = {
            k: ["must be a FHIR resource or null"]
            for k, v in result.items()
            if v is not None and not (isinstance(v, dict) and isinstance(v.get("resourceType"), str))
        }
        if bad:
            raise ValidationError(bad)
        return result


class HookRequestSchema(_Lenient):
    hook = fields.String(required=True, validate=validate.Length(min=1, max=100))
    hookInstance = fields.String(required=True, validate=validate.Length(min=1, max=256))
    fhirServer = fields.String(load_default=None, validate=_URL)
    fhirAuthorization = fields.Nested(FhirAuthorizationSchema, load_default=None, allow_none=True)
    context = fields.Dict(required=True)
    prefetch = _PrefetchField(load_default=dict)
    extension = fields.Dict(load_default=None, allow_none=True)

    @validates_schema
    def _auth_needs_server(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("fhirAuthorization") and not data.get("fhirServer"):
            raise ValidationError("fhirServer is required when fhirAuthorization is present", "fhirServer")


class CodingSchema(_Lenient):
    system = fields.String(load_default=None, allow_none=True)
    code = fields.String(load_default=None, allow_none=True)
    display = fields.String(load_default=None, allow_none=True)


class OverrideReasonSchema(_Lenient):
    reason = fields.Nested(CodingSchema, load_default=None, allow_none=True)
    userComment = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))


class AcceptedSuggestionSchema(_Lenient):
    id = fields.String(required=True, validate=_ID)


class _UtcDateTime(fields.AwareDateTime):
    """An aware date/time that exists in UTC (``0001-01-01T00:00:00+14:00`` does not)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        result = super()._deserialize(value, attr, data, **kwargs)
        try:
            result.astimezone(UTC)
        except OverflowError:
            raise ValidationError("date/time out of range") from None
        return result


class FeedbackItemSchema(_Lenient):
    card = fields.String(required=True, validate=_ID)
    outcome = fields.String(required=True, validate=validate.OneOf(["accepted", "overridden"]))
    acceptedSuggestions = fields.List(fields.Nested(AcceptedSuggestionSchema), load_default=list)
    overrideReason = fields.Nested(OverrideReasonSchema, load_default=None, allow_none=True)
    outcomeTimestamp = _UtcDateTime(required=True, default_timezone=UTC)


class FeedbackRequestSchema(_Lenient):
    feedback = fields.List(
        fields.Nested(FeedbackItemSchema), required=True, validate=validate.Length(min=1, max=500)
    )
