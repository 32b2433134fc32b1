"""Fee-detail and stay files of the batch audit: columns, header aliases, encoding, line endings.

Fee lines use the national field names of 费用明细上传 (2301) (Chinese labels accepted):

====================  ========================  =========
field                 meaning                   required
====================  ========================  =========
feedetl_sn            费用明细流水号             yes
init_feedetl_sn       原费用流水号 (退费)        for refunds
mdtrt_id              就诊 ID                    yes
psn_no                人员编号                   yes
fee_ocur_time         费用发生时间               yes
med_list_codg         医疗目录编码 (国家编码)     yes*
medins_list_codg      医药机构目录编码 (院内)     *one of the two
med_list_name         名称 (或 medins_list_name / hilist_name)
cnt / pric            数量 / 单价                yes
det_item_fee_sumamt   明细项目费用总额           yes
pric_uplmt_amt        价格上限金额 (标准价)       no (限定主次操作)
bilg_dept_codg/name   开单科室编码 / 名称         no
bilg_dr_codg/name     开单医师编码 / 姓名         no
====================  ========================  =========

Stays: ``mdtrt_id`` (required), ``psn_no``, ``gend`` (性别), ``brdy`` (出生日期), ``insutype`` (险种),
``med_type`` (医疗类别) or ``med_mdtrt_type`` (就诊类型) or ``encounter_type`` (住院 / 门诊 / 急诊),
``medins_lv`` (医疗机构等级).

Files are CSV, UTF-8 (GB18030 is converted first), one record per line (a quoted field may hold
commas but no line break), consistent line endings; line numbers in the outputs are the file's own.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from pathlib import Path

FEE_FIELDS: dict[str, tuple[str, ...]] = {
    "feedetl_sn": ("feedetl_sn", "费用明细流水号", "明细流水号"),
    "init_feedetl_sn": ("init_feedetl_sn", "原费用流水号", "原明细流水号"),
    "mdtrt_id": ("mdtrt_id", "就诊id", "就诊ID", "就诊流水号"),
    "psn_no": ("psn_no", "人员编号", "个人编号"),
    "fee_ocur_time": ("fee_ocur_time", "费用发生时间", "收费时间"),
    "med_list_codg": ("med_list_codg", "医疗目录编码", "医保目录编码", "hilist_code"),
    "medins_list_codg": ("medins_list_codg", "医药机构目录编码", "院内目录编码", "hosplist_code"),
    "med_list_name": ("med_list_name", "medins_list_name", "hilist_name", "医疗目录名称", "项目名称", "名称"),
    "cnt": ("cnt", "数量"),
    "pric": ("pric", "单价"),
    "det_item_fee_sumamt": ("det_item_fee_sumamt", "明细项目费用总额", "金额"),
    "pric_uplmt_amt": ("pric_uplmt_amt", "价格上限金额", "标准价"),
    "bilg_dept_codg": ("bilg_dept_codg", "开单科室编码"),
    "bilg_dept_name": ("bilg_dept_name", "开单科室名称"),
    "bilg_dr_codg": ("bilg_dr_codg", "开单医师编码", "开单医生编码"),
    "bilg_dr_name": ("bilg_dr_name", "开单医师姓名", "开单医生姓名"),
}
FEE_REQUIRED = ("feedetl_sn", "mdtrt_id", "psn_no", "fee_ocur_time", "cnt", "pric", "det_item_fee_sumamt")

STAY_FIELDS: dict[str, tuple[str, ...]] = {
    "mdtrt_id": ("mdtrt_id", "就诊id", "就诊ID", "就诊流水号"),
    "psn_no": ("psn_no", "人员编号", "个人编号"),
    "gend": ("gend", "sex", "性别"),
    "brdy": ("brdy", "birth_date", "出生日期"),
    "insutype": ("insutype", "insurance_type", "险种", "险种类型", "参保类型"),
    "med_type": ("med_type", "医疗类别"),
    "med_mdtrt_type": ("med_mdtrt_type", "就诊类型"),
    "encounter_type": ("encounter_type", "就医方式"),
    "medins_lv": ("medins_lv", "hospital_level", "医疗机构等级", "医院等级"),
}
STAY_REQUIRED = ("mdtrt_id",)


class InputError(ValueError):
    """A file that cannot be audited at all (missing, unreadable, no usable header)."""


def _key(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split()).lower()


@dataclass(frozen=True)
class TableFile:
    """A prepared input: the (UTF-8) path to read, its header, where data starts, its columns."""

    label: str  # "fees" / "stays"
    source: Path  # as given
    path: Path  # UTF-8 copy or the source itself
    header: tuple[str, ...]
    first_data_line: int  # 1-based
    columns: dict[str, int]  # field → 1-based column
    crlf: bool
    converted: bool = False

    @property
    def ncols(self) -> int:
        return len(self.header)


def _is_utf8(path: Path, probe: int = 1 << 20) -> bool:
    with path.open("rb") as fh:
        data = fh.read(probe)
    for cut in range(4):  # a multi-byte character may straddle the probe's end
        try:
            (data[: len(data) - cut] if cut else data).decode("utf-8")
            return True
        except UnicodeDecodeError as exc:
            if exc.start < len(data) - 4:
                return False
    return False


def _convert(path: Path, target: Path) -> None:
    """GB18030 → UTF-8, streamed; raises :class:`InputError` when it is neither."""
    try:
        with (
            path.open("r", encoding="gb18030", newline="") as src,
            target.open("w", encoding="utf-8", newline="") as dst,
        ):
            while chunk := src.read(1 << 22):
                dst.write(chunk)
    except UnicodeDecodeError:
        raise InputError(f"{path}: 既不是 UTF-8 也不是 GB18030 编码") from None


def prepare(
    path: Path, label: str, fields: dict[str, tuple[str, ...]], required: tuple[str, ...], work: Path
) -> TableFile:
    if not path.is_file():
        raise InputError(f"{label} 文件不存在：{path}")
    source, converted = path, False
    if not _is_utf8(path):
        work.mkdir(parents=True, exist_ok=True)
        target = work / f"{label}.utf8.csv"
        _convert(path, target)
        path, converted = target, True
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        head = fh.read(1 << 16)
    crlf = "\r\n" in head
    lines = head.splitlines()
    header_index = next(
        (i for i, line in enumerate(lines) if line.strip() and not line.startswith("#")), None
    )
    if header_index is None:
        raise InputError(f"{source}: 文件为空")
    header = tuple(next(csv.reader([lines[header_index]])))
    aliases = {_key(alias): field for field, names in fields.items() for alias in names}
    columns: dict[str, int] = {}
    for position, cell in enumerate(header, start=1):
        field = aliases.get(_key(cell))
        if field and field not in columns:
            columns[field] = position
    missing = [f for f in required if f not in columns]
    if label == "fees" and "med_list_codg" not in columns and "medins_list_codg" not in columns:
        missing.append("med_list_codg")
    if missing:
        raise InputError(f"{source}: 表头缺少列 {', '.join(missing)}（表头为：{', '.join(header)[:200]}）")
    return TableFile(label, source, path, header, header_index + 2, columns, crlf, converted)


def prepare_fees(path: Path, work: Path) -> TableFile:
    return prepare(path, "fees", FEE_FIELDS, FEE_REQUIRED, work)


def prepare_stays(path: Path, work: Path) -> TableFile:
    return prepare(path, "stays", STAY_FIELDS, STAY_REQUIRED, work)


def parse_quoted(rows: list[tuple[int, str]]) -> list[tuple[int, int, list[str]]]:
    """(line, number of fields, fields) of lines that contain quotes, parsed as CSV by Python —
    both engines hand these few lines here so they read them the same way."""
    out = []
    for line, text in rows:
        try:
            fields = next(csv.reader([text.rstrip("\r")]))
        except (csv.Error, StopIteration):
            fields = []
        out.append((line, len(fields), fields))
    return out
