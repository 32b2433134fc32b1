"""The DIP grouping algorithm: pure, fast, explainable. No I/O: the catalog comes in as a GroupIndex."""

from grouper.algorithm import FLAG_OPTYPE_DEFAULT, Classifier, group_case
from grouper.index import GroupIndex
from grouper.model import Case, Group, GroupType, OpType
from grouper.policy import DEFAULT_TIE_BREAK, TIE_BREAKS, GroupingPolicy
from grouper.result import GroupResult, QcFlag, Severity, Trace

__all__ = [
    "Case",
    "Classifier",
    "DEFAULT_TIE_BREAK",
    "FLAG_OPTYPE_DEFAULT",
    "Group",
    "GroupIndex",
    "GroupResult",
    "GroupType",
    "GroupingPolicy",
    "OpType",
    "QcFlag",
    "Severity",
    "TIE_BREAKS",
    "Trace",
    "group_case",
]
