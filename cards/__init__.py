"""Building CDS Hooks cards: escaping, money formatting, templates a hospital can edit, uuids.

Hook handlers fill a view-model from :mod:`cards.views` and call
``load_card_templates(home).build(kind, view, source=source(label))``.
"""

from cards.builders import (
    action,
    card,
    coding,
    compact,
    create_action,
    delete_action,
    link,
    override_reason,
    source,
    suggestion,
    truncate_summary,
    update_action,
)
from cards.escape import escape_markdown, plain_text
from cards.fhir_actions import add_coding_action, principal_diagnosis_action
from cards.formatting import format_money, format_number, format_percent, yuan
from cards.render import CARD_KINDS, Band, CardTemplates, RenderedText, load_card_templates
from cards.views import (
    CheckView,
    CostPosition,
    DischargeView,
    EncounterStartView,
    GroupChangeView,
    GroupView,
    MappingView,
    OrderSignView,
    PatientStatusView,
    PricingBasis,
    PrincipalOption,
    ProcedureChoice,
    ProcedureOrderCheck,
    UnpricedOrderView,
    position_from,
    unpriced_from,
)

__all__ = [
    "CARD_KINDS",
    "Band",
    "CardTemplates",
    "CheckView",
    "CostPosition",
    "DischargeView",
    "EncounterStartView",
    "GroupChangeView",
    "GroupView",
    "MappingView",
    "OrderSignView",
    "PatientStatusView",
    "PricingBasis",
    "PrincipalOption",
    "ProcedureChoice",
    "ProcedureOrderCheck",
    "RenderedText",
    "UnpricedOrderView",
    "action",
    "add_coding_action",
    "card",
    "coding",
    "compact",
    "create_action",
    "delete_action",
    "escape_markdown",
    "format_money",
    "format_number",
    "format_percent",
    "link",
    "load_card_templates",
    "override_reason",
    "plain_text",
    "position_from",
    "principal_diagnosis_action",
    "source",
    "suggestion",
    "truncate_summary",
    "unpriced_from",
    "update_action",
    "yuan",
]
