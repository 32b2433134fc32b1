"""Card texts from the editable templates: content, escaping, bands, hospital overrides."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from cards import (
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
    UnpricedOrderView,
    load_card_templates,
    source,
)
from cards.render import CardTemplates

CATALOG = "DIP 平顶山2025"
K353 = GroupView("K35.3", "急性阑尾炎伴局限性腹膜炎", "core", D("551.485545"), D("3153.50"), D("5.2"), 1220)
K353_LAP = GroupView(
    "K35.3:47.0100", "急性阑尾炎伴局限性腹膜炎", "core", D("1484.833425"), D("8490.51"), D("6.7"), 1608
)


@pytest.fixture(scope="module")
def templates() -> CardTemplates:
    return load_card_templates()


def order_sign(group=K353_LAP, cost=D("1800"), orders=D("3127"), **extra) -> OrderSignView:
    position = CostPosition(reference=group.standard if group else None, cost_so_far=cost, order_cost=orders)
    return OrderSignView(CATALOG, group, position, **extra)


def build(templates, kind, view):
    return templates.build(kind, view, source=source(CATALOG))


def test_order_sign_card_shows_group_standard_cost_projection_and_band(templates):
    built = build(templates, "order_sign", order_sign())
    assert built["indicator"] == "info"
    assert "K35.3:47.0100" in built["summary"] and "¥8,490.51" in built["summary"]
    assert "¥4,927.00" in built["summary"]  # 1,800 + 3,127 projected
    detail = built["detail"]
    for text in ("¥1,800.00", "¥3,127.00", "¥4,927.00", "58.0%", "低于支付标准 ¥3,563.51", "支付标准以内"):
        assert text in detail, text
    assert "| 病种分值 | 1,484.83 |" in detail
    assert len(built["summary"]) < 140
    assert built["overrideReasons"] and all(r["display"] for r in built["overrideReasons"])


def test_a_group_change_is_named_in_neutral_words_without_comparing_money(templates):
    view = order_sign(group_change=GroupChangeView(K353, K353_LAP, "47.0100", "腹腔镜下阑尾切除术"))
    built = build(templates, "order_sign", view)
    assert built["summary"].startswith(
        "本次手术后预计病种为 K35.3:47.0100 急性阑尾炎伴局限性腹膜炎，支付标准 ¥8,490.51"
    )
    assert "预计为本次住院的主要手术" in built["detail"]
    assert "¥3,153.50" not in built["detail"]  # the standard before the operation is not held against it


def test_no_cost_data_shows_only_the_standard_and_says_cost_is_unknown(templates):
    built = build(templates, "order_sign", order_sign(cost=None))
    assert "费用未知" in built["summary"]
    assert "费用未知" in built["detail"]
    assert (
        "¥0.00" not in built["detail"] and "%" not in built["detail"].split("占支付标准")[1].splitlines()[0]
    )
    assert built["indicator"] == "info"


def test_projection_above_the_standard_turns_the_card_into_a_warning(templates):
    built = build(templates, "order_sign", order_sign(group=K353, cost=D("6000"), orders=D("1000")))
    assert built["indicator"] == "warning"
    assert "费用超高病例" in built["detail"] and "222.0%" in built["summary"]


def test_unpriced_orders_and_estimate_notes_are_listed(templates):
    view = order_sign(
        unpriced_orders=[UnpricedOrderView("MedicationRequest/m1", "尚未选择药品")],
        estimate_notes=["主要诊断由国临版编码映射"],
        group=GroupView("J18.8", "肺炎", "core", D("923.16"), D("5278.75"), estimate=True),
    )
    built = build(templates, "order_sign", view)
    assert "尚未选择药品" in built["detail"] and "未计入预计费用" in built["detail"]
    assert "估算" in built["summary"] and "主要诊断由国临版编码映射" in built["detail"]


def test_ungrouped_stay_says_why(templates):
    built = build(templates, "order_sign", order_sign(group=None, ungrouped_reason="没有可用的主要诊断"))
    assert "未入组" in built["summary"] and "没有可用的主要诊断" in built["detail"]


def test_hostile_values_from_the_emr_cannot_inject_markup(templates):
    evil = GroupView("K35.3", "<script>alert(1)</script> **粗体** | 假列 |\n| 伪造行 |", "core", D(1), D(100))
    built = build(templates, "order_sign", order_sign(group=evil, cost=D(10), orders=D(0)))
    detail = built["detail"]
    assert "<script>" not in detail and "&lt;script&gt;" in detail
    assert "**粗体**" not in detail and r"\*\*粗体\*\*" in detail
    assert r"\| 假列 \|" in detail and "\n| 伪造行" not in detail
    assert "<script>" not in built["summary"]


def test_bands_follow_the_rule_book_boundaries(templates):
    expected = {
        "0.49": "low",
        "0.5": "normal",
        "0.79": "normal",
        "0.8": "approaching",
        "1.0": "approaching",
        "1.0001": "loss",
        "2.0": "loss",
        "2.01": "high_deviation",
    }
    for ratio, key in expected.items():
        assert templates.band_for(D(ratio)).key == key, ratio
    assert templates.band_for(None) is None


def test_encounter_start_lists_pathways_by_case_count_with_their_length_of_stay(templates):
    lap = GroupView(
        **{**{f: getattr(K353_LAP, f) for f in K353_LAP.__slots__}, "procedure_label": "腹腔镜下阑尾切除术"}
    )
    view = EncounterStartView(
        CATALOG,
        "K35.300",
        "急性阑尾炎伴局限性腹膜炎",
        "K35.3",
        pathways=[lap, K353],  # the handler orders them: most cases first
        other_operations=GroupView("K35:SS", "急性阑尾炎", "comprehensive", D("1669.28"), D("9545.22")),
        case_total=2828,
    )
    built = build(templates, "encounter_start", view)
    assert built["summary"] == (
        "入院诊断 K35.300 急性阑尾炎伴局限性腹膜炎：本地区常见诊疗路径为腹腔镜下阑尾切除术（平均住院 6.7 天）、"
        "保守治疗（平均住院 5.2 天）"
    )
    rows = table_rows(built["detail"])
    assert [r[0] for r in rows] == ["腹腔镜下阑尾切除术", "保守治疗", "其他手术"]
    assert rows[0][2] == "1608（57%）" and rows[0][3] == "6.7 天"
    assert rows[2][1] == "K35:SS（综合病种）"
    assert "预测仅供参考" in built["detail"] and "推诿" in built["detail"]


def table_rows(detail: str) -> list[list[str]]:
    """The data rows of the first markdown table, cells unescaped."""
    lines = [line for line in detail.splitlines() if line.startswith("|")][2:]
    return [[c.strip().replace("\\", "") for c in line.strip("|").split(" | ")] for line in lines]


def test_discharge_card_compares_principal_diagnoses_compliance_first(templates):
    view = DischargeView(
        CATALOG,
        GroupView(
            "C34.1:32.4100_33.3903+40.5914", "上叶，支气管或肺的恶性肿瘤", "core", D("8439.06"), D("48255.34")
        ),
        trace=["主要诊断 C34.100x004 → 亚目 C34.1", "匹配相关操作最多的核心病种"],
        principal_options=[
            PrincipalOption(
                "C34.100x004",
                "右肺上叶恶性肿瘤",
                current=True,
                admissible=True,
                reasons=["主要手术治疗的疾病"],
            ),
            PrincipalOption(
                "J95.800x016",
                "手术后脓胸",
                admissible=False,
                reasons=["择期手术的并发症不能作为主要诊断"],
                group=GroupView("J95.8", "操作后呼吸性疾患", standard=D("9999")),
            ),
            PrincipalOption("R05.x00", "咳嗽", admissible=False, reasons=["症状，已有相关明确诊断"]),
        ],
        mappings=[
            MappingView(
                "慢性阻塞性肺疾病急性加重",
                "仅文本",
                "J44.100",
                "慢性阻塞性肺病伴有急性加重",
                "名称匹配",
                D("0.82"),
                True,
            )
        ],
        checks=[CheckView("warning", "操作 33.2600x002 日期 2026-10-28 不在住院期间内", "procedure.date")],
        position=CostPosition(D("48255.34"), D("43722")),
    )
    built = build(templates, "discharge", view)
    detail = built["detail"]
    assert "1 项结算清单问题" in built["summary"] and "1 个编码需确认" in built["summary"]
    table = [
        line
        for line in detail.splitlines()
        if line.startswith("| C34") or line.startswith("| J95") or line.startswith("| R05")
    ]
    assert len(table) == 3
    assert "（当前）" in table[0] and "| 是 |" in table[0]
    # an inadmissible alternative never shows the group or standard it would give
    assert "| 否 |" in table[1] and "¥9,999.00" not in detail and "J95\\.8 " not in table[1]
    assert "不得仅因分值高低" in detail
    assert "1\\. " not in detail and "\n\n1. 主要诊断" in detail and "\n2. 匹配" in detail  # a real list
    assert "\n\n| 诊断 |" in detail  # tables and paragraphs are separate blocks
    assert "置信度 82%" in detail and "不在住院期间内" in detail
    assert built["indicator"] == "info"


def test_discharge_card_warns_when_the_current_principal_is_not_admissible(templates):
    view = DischargeView(
        CATALOG,
        GroupView("R05", "咳嗽"),
        principal_options=[
            PrincipalOption("R05.x00", "咳嗽", current=True, admissible=False, reasons=["症状"])
        ],
    )
    assert build(templates, "discharge", view)["indicator"] == "warning"


def test_patient_view_card(templates):
    view = PatientStatusView(
        CATALOG,
        GroupView("I63.9", "未特指的脑梗死", "core", D("670.05"), D("3831.44"), D("9.3")),
        CostPosition(D("3831.44"), D("7458.80")),
        admitted_on="2026-11-14",
        los_days=8,
    )
    built = build(templates, "patient_view", view)
    assert "I63.9" in built["summary"] and "194.7%" in built["summary"] and built["indicator"] == "warning"
    assert "| 已住院天数 | 8 天（本病种平均 9.3 天） |" in built["detail"]


def write(home, name, text):
    directory = home / "card_templates"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")


def test_a_hospital_overrides_one_text_and_keeps_the_others(tmp_path):
    write(tmp_path, "order_sign.toml", "summary = '本院：{{ group.code }} 标准 {{ group.standard|money }}'\n")
    write(tmp_path, "bands.toml", "[indicator]\nwarning_ratio = 0.5\n")
    templates = load_card_templates(tmp_path)
    assert templates.problems == []
    built = build(templates, "order_sign", order_sign())
    assert built["summary"] == "本院：K35.3:47.0100 标准 ¥8,490.51"
    assert "| 病种分值 |" in built["detail"]  # the built-in detail is kept
    assert built["indicator"] == "warning"  # 58% > the hospital's 50% threshold
    assert templates.band_for(D("0.9")).key == "approaching"  # bands themselves kept


def test_override_values_are_escaped_automatically_too(tmp_path):
    write(tmp_path, "patient_view.toml", "detail = '诊断名称：{{ group.name }}'\n")
    view = PatientStatusView(
        CATALOG, GroupView("X", "<img src=x onerror=alert(1)>"), CostPosition(None, None)
    )
    built = build(load_card_templates(tmp_path), "patient_view", view)
    assert built["detail"] == "诊断名称：&lt;img src\\=x onerror\\=alert\\(1\\)&gt;"


def test_a_broken_override_falls_back_to_the_built_in_text_and_is_reported(tmp_path):
    write(tmp_path, "order_sign.toml", "summary = '{% if %}'\n")
    write(tmp_path, "labels.toml", "this is not toml")
    templates = load_card_templates(tmp_path)
    assert any("order_sign.toml" in p for p in templates.problems)
    assert any("labels.toml" in p for p in templates.problems)
    assert "K35.3:47.0100" in build(templates, "order_sign", order_sign())["summary"]


def test_templates_run_sandboxed(tmp_path):
    write(tmp_path, "order_sign.toml", "summary = \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"\n")
    templates = load_card_templates(tmp_path)
    built = build(templates, "order_sign", order_sign())
    assert "subclasses" not in built["summary"] and "K35.3:47.0100" in built["summary"]
    assert any("failed to render" in p for p in templates.problems)
    build(templates, "order_sign", order_sign())
    assert len(templates.problems) == 1  # reported once, not on every request


def test_an_edited_override_is_picked_up_without_a_restart(tmp_path):
    write(tmp_path, "labels.toml", "cost_unknown = '费用暂缺'\n")
    assert "费用暂缺" in build(load_card_templates(tmp_path), "order_sign", order_sign(cost=None))["detail"]
    write(tmp_path, "labels.toml", "cost_unknown = '费用数据暂缺，请联系收费处'\n")
    assert (
        "请联系收费处" in build(load_card_templates(tmp_path), "order_sign", order_sign(cost=None))["detail"]
    )


def test_unknown_card_kind_is_an_error(templates):
    with pytest.raises(ValueError):
        templates.render("order_cancel", order_sign())


def test_costing_results_feed_the_card_directly(templates):
    from cards import position_from, unpriced_from
    from costing import cost_of_orders, cost_so_far, load_prices
    from tests.demo_fhir_helpers import demo_request

    request = demo_request("order-sign-stroke-high-cost")
    so_far = cost_so_far(request["prefetch"]["chargeItems"], encounter_id="demo-enc-stroke")
    orders = cost_of_orders(request["context"]["draftOrders"], load_prices(None))
    group = GroupView("I63.9", "未特指的脑梗死", "core", D("670.049325"), D("3831.44"))
    view = OrderSignView(
        CATALOG,
        group,
        position_from(group.standard, so_far, orders),
        priced_order_count=len(orders.priced),
        unpriced_orders=unpriced_from(orders),
    )
    built = build(templates, "order_sign", view)
    assert built["indicator"] == "warning" and "费用超高病例" in built["detail"]
    assert "999999999" in built["detail"]  # the unknown item is listed as not priced
    assert view.position.projected == so_far.total + orders.total
    unknown = build(
        templates, "order_sign", OrderSignView(CATALOG, group, position_from(group.standard, None, orders))
    )
    assert "费用未知" in unknown["summary"]


def test_a_group_without_a_standard_does_not_pretend_the_cost_is_unknown(templates):
    group = GroupView("CP11:SS", "消化系统手术（章节兜底）", "chapter")
    built = build(templates, "order_sign", OrderSignView(CATALOG, group, CostPosition(None, D("1200"))))
    assert "没有支付标准" in built["detail"] and "¥1,200.00" in built["detail"]
    assert "费用未知" not in built["detail"]


def test_cost_notes_explain_why_figures_are_estimates(templates):
    from costing import cost_of_orders, cost_so_far, load_prices
    from tests.demo_fhir_helpers import demo_request

    sandbox = cost_of_orders(
        demo_request("order-sign-sandbox-shape")["context"]["draftOrders"], load_prices(None)
    )
    pneumonia = cost_so_far(demo_request("encounter-discharge-pneumonia")["prefetch"]["chargeItems"])
    notes = templates.cost_notes(pneumonia, sandbox)
    assert any("示例价目表" in n for n in notes)
    assert any("未能定价" in n for n in notes)
    assert any("没有金额" in n for n in notes)
    assert templates.cost_notes(None, None) == []


# ----------------------------------------------------------------------------- pricing inputs and rules


def basis(**kw) -> PricingBasis:
    defaults = dict(insurance_type="职工", insurance_source="coverage", insurance_detail="职工基本医疗保险",
                    point_value=D("5.718153489"), point_value_kind="catalog_estimate")  # fmt: skip
    return PricingBasis(**{**defaults, **kw})


def test_the_bands_follow_the_regions_deviation_rule_and_threshold(templates):
    rule_3 = basis(deviation_rule="3.0", deviation_high=D(3))
    assert templates.band_for(D("2.5"), rule_3).key == "loss"  # within 3× under this region's rule
    assert templates.band_for(D("2.5"), basis()).key == "high_deviation"  # the 2.0 rule's 2×
    above = templates.band_for(D("3.01"), rule_3)
    assert above.key == "high_deviation" and above.label == "高于支付标准的 300%"
    assert "特例单议" in above.meaning
    assert "校正分值" in templates.band_for(D("2.01"), basis()).meaning  # the 2.0 rule's formula
    low = basis(deviation_low=D("0.4"))
    assert (
        templates.band_for(D("0.45"), low).key == "normal" and templates.band_for(D("0.39"), low).key == "low"
    )


def test_a_doctor_reads_where_the_cost_stands_a_coder_reads_the_settlement_terms(templates):
    doctor, coder = templates.band_for(D("0.3")), templates.band_for(D("0.3"), kind="discharge")
    assert doctor.key == coder.key == "low"
    assert "超低" not in doctor.label + doctor.meaning and "结余" not in doctor.meaning
    assert "费用超低病例" in coder.label and "没有结余空间" in coder.meaning
    assert "亏损" in templates.band_for(D("1.2"), kind="discharge").meaning
    assert "亏损" not in templates.band_for(D("1.2")).meaning


def test_the_card_says_what_the_standard_was_computed_with(templates):
    view = order_sign(
        basis=basis(hospital_coefficient_configured=False, hospital_coefficient_source="未配置医院系数")
    )
    detail = build(templates, "order_sign", view)["detail"]
    assert "参保类型 职工（据患者参保信息：职工基本医疗保险）" in detail
    assert "点值 5.72 元/分（按本地区次均费用估算）" in detail  # rounded, its source in words
    assert "未配置医院系数，按 1.0 估算" in detail
    assert "REGION" not in detail
    default = build(
        templates, "order_sign", order_sign(basis=basis(insurance_source="default", insurance_detail=""))
    )
    assert "参保类型 职工（本院默认设置，未取得患者参保信息）" in default["detail"]
    configured = build(
        templates,
        "order_sign",
        order_sign(
            basis=basis(
                point_value=D("5.8"),
                point_value_kind="budget",
                hospital_coefficient=D("1.05"),
                hospital_coefficient_source="3 级医院系数",
                aux_coefficient=D("1.05"),
                aux_reason="65 岁及以上",
            )
        ),  # fmt: skip
    )["detail"]
    assert (
        "点值 5.80 元/分（本地区预估点值）；医院系数 1.05（3 级医院系数）；辅助分型系数 1.05：65 岁及以上"
        in configured
    )


def test_a_hospital_overrides_a_shared_partial_and_every_card_uses_it(tmp_path):
    write(tmp_path, "partials.toml", "basis = '本院计算依据：{{ basis.insurance_type }}'\n")
    templates = load_card_templates(tmp_path)
    assert "本院计算依据：职工" in build(templates, "order_sign", order_sign(basis=basis()))["detail"]
    view = PatientStatusView(CATALOG, K353, CostPosition(D("3153.50"), D("100")), basis=basis())
    assert "本院计算依据：职工" in build(templates, "patient_view", view)["detail"]


def test_a_broken_partial_falls_back_to_the_built_in_one(tmp_path):
    write(tmp_path, "partials.toml", "basis = '{% if %}'\n")
    templates = load_card_templates(tmp_path)
    detail = build(templates, "order_sign", order_sign(basis=basis()))["detail"]
    assert "计算依据：参保类型 职工" in detail
    assert templates.problems
