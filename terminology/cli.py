"""``dip-cds data import-terminology`` and ``dip-cds code lookup|search|map`` for coders and debugging."""

from __future__ import annotations

import json

import click

__all__ = ["register"]

MAX_REJECTS_SHOWN = 20


def _home(ctx: click.Context):
    from cds_service.cli import home_from

    return home_from(ctx)


def _load(ctx: click.Context):
    from terminology.loader import load_terminology

    term = load_terminology(_home(ctx))
    if term.is_sample:
        click.secho(f"注意：{term.label}", fg="yellow", err=True)
    return term


@click.command("import-terminology")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--version", "version", default="2.0", show_default=True, help="医保版版本号（1.0 / 2.0 / 3.0 …）"
)
@click.option(
    "--kind",
    type=click.Choice(["dx", "px", "dx-map", "px-map"]),
    default=None,
    help="表类型；默认根据表头与编码自动识别",
)
@click.option("--no-activate", is_flag=True, help="只导入，不切换为当前使用的版本")
@click.option(
    "--show-rejects", default=MAX_REJECTS_SHOWN, show_default=True, help="每个文件最多列出的拒绝行数"
)
@click.pass_context
def import_terminology(ctx, paths, version, kind, no_activate, show_rejects) -> None:
    """Import code lists and 国临版→医保版 maps (TSV, CSV or XLSX) into the data home."""
    from terminology.loader import import_files
    from terminology.store import DB_NAME

    home = _home(ctx)
    reports = import_files(home, list(paths), version=version, kind=kind, activate=not no_activate)
    failed = False
    for r in reports:
        if r.error:
            failed = True
            click.secho(f"✗ {r.path}: {r.error}", fg="red")
            continue
        sheet = f" [工作表 {r.sheet}]" if r.sheet else ""
        state = "当前版本" if r.active else "未激活"
        click.secho(f"✓ {r.path}{sheet}", fg="green")
        click.echo(
            f"  {r.label} {version}（{state}）：导入 {r.accepted} 行，规范化 {r.normalised} 个编码，拒绝 {len(r.rejects)} 行"
        )
        for rej in r.rejects[:show_rejects]:
            click.echo(f"    第 {rej.line} 行：{rej.reason}")
        if len(r.rejects) > show_rejects:
            click.echo(f"    …… 另有 {len(r.rejects) - show_rejects} 行被拒绝")
    click.echo(f"数据库：{home / DB_NAME}")
    if failed:
        ctx.exit(1)


@click.command("terminology-versions")
@click.option(
    "--activate", nargs=2, metavar="KIND VERSION", default=None, help="切换当前版本，如 --activate dx 1.0"
)
@click.pass_context
def terminology_versions(ctx, activate) -> None:
    """List imported terminology versions (and switch the active one)."""
    from terminology.store import TerminologyStore

    store = TerminologyStore.in_home(_home(ctx))
    try:
        if activate:
            try:
                store.activate(*activate)
            except KeyError as exc:
                raise click.ClickException(str(exc.args[0])) from exc
        versions = store.versions()
        if not versions:
            click.echo("尚未导入任何术语表（服务使用内置示例）")
        for v in versions:
            mark = "*" if v.active else " "
            click.echo(f"{mark} {v.kind:7} {v.version:5} {v.row_count:7} 行  {v.imported_at}  {v.source}")
    finally:
        store.close()


@click.group("code")
def code_group() -> None:
    """Look up, search and map 医保版 / 国临版 codes."""


def _kind_option(f):
    return click.option(
        "--system",
        "system",
        default=None,
        help="dx（诊断）、px（手术操作）或编码系统 URI；默认自动判断",
    )(f)


def _kind_of(system: str | None, code: str | None = None) -> str | None:
    from terminology.systems import identify_system

    if system in ("dx", "px"):
        return system
    if system:
        info = identify_system(system)
        if info is None:
            raise click.BadParameter(f"未知的编码系统 {system}", param_hint="--system")
        return info.kind
    if code is not None:
        from terminology.normalize import normalize_diagnosis

        return "dx" if normalize_diagnosis(code).ok else "px"
    return None


@code_group.command("lookup")
@click.argument("code")
@_kind_option
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出")
@click.pass_context
def code_lookup(ctx, code, system, as_json) -> None:
    """Show a code: validity, name, chapter/block/类目/亚目, and suggestions when invalid."""
    term = _load(ctx)
    kind = _kind_of(system, code)
    v = term.validate(kind, code)
    hierarchy = term.hierarchy(kind, v.code) if v.code else {}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "input": v.input,
                    "status": v.status,
                    "code": v.code,
                    "display": v.display,
                    "changes": list(v.normalized.changes) if v.normalized else [],
                    "hierarchy": hierarchy,
                    "reasons": list(v.reasons),
                    "suggestions": [{"code": s.code, "display": s.display} for s in v.suggestions],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        status = {"exists": "有效", "retired": "已停用", "unknown": "无效/未知"}[v.status]
        click.echo(f"{v.code or v.input}  {v.display or ''}  [{status}]")
        if v.normalized and v.normalized.changes:
            click.echo("  规范化：" + "；".join(v.normalized.changes))
        for key, value in hierarchy.items():
            if value:
                click.echo(f"  {key}: {value}")
        for reason in v.reasons:
            if not (v.normalized and reason in v.normalized.changes):
                click.echo(f"  · {reason}")
        for s in v.suggestions:
            click.echo(f"  建议：{s.code}  {s.display}")
    if v.status != "exists":
        ctx.exit(1)


@code_group.command("search")
@click.argument("text")
@_kind_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def code_search(ctx, text, system, limit, as_json) -> None:
    """Search by code prefix, Chinese name (substring, fuzzy) or pinyin initials (JXLWY)."""
    term = _load(ctx)
    hits = term.search(text, kind=_kind_of(system), limit=limit)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"kind": k, "code": h.code, "display": h.display, "score": h.score, "match": h.match}
                    for k, h in hits
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    if not hits:
        click.echo("没有找到匹配的编码")
        ctx.exit(1)
    for k, h in hits:
        click.echo(f"{h.code:20} {h.display}  ({k} {h.match} {h.score:.2f})")


@code_group.command("map")
@click.argument("code_or_text")
@click.option(
    "--system", default=None, help="源编码系统 URI（医保版、国临版、WHO、医院本地）；dx/px 指定类型"
)
@click.option("--kind", type=click.Choice(["dx", "px"]), default=None, help="诊断或手术操作；默认自动判断")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def code_map(ctx, code_or_text, system, kind, as_json) -> None:
    """Map a code from any system (or free text) to the best 医保版 code, with the path taken."""
    from mappings.resolve import map_codeable_concept
    from terminology.normalize import normalize_diagnosis, normalize_procedure
    from terminology.systems import identify_system

    term = _load(ctx)
    if system in ("dx", "px"):
        kind, system = system, None
    if kind is None:
        info = identify_system(system) if system else None
        if info is not None:
            kind = info.kind
        else:
            kind = (
                "px"
                if normalize_procedure(code_or_text).ok and not normalize_diagnosis(code_or_text).ok
                else "dx"
            )
    looks_like_code = (normalize_diagnosis if kind == "dx" else normalize_procedure)(code_or_text).ok
    if looks_like_code or system:
        cc = {"coding": [{"system": system, "code": code_or_text}] if system else [{"code": code_or_text}]}
    else:
        cc = {"text": code_or_text}
    res = map_codeable_concept(term, kind, cc)
    if as_json:
        click.echo(json.dumps(res.to_dict(), ensure_ascii=False, indent=2))
    else:
        if res.code:
            flag = "（需要确认）" if res.needs_confirmation else ""
            click.echo(f"{res.code}  {res.display}{flag}")
        else:
            click.echo("未映射" + ("（需要编码员确认候选）" if res.needs_confirmation else ""))
        click.echo(f"  路径：{res.path}  可信度：{res.confidence:.2f}")
        for change in res.changes:
            click.echo(f"  规范化：{change}")
        for reason in res.reasons:
            click.echo(f"  · {reason}")
        for c in res.candidates:
            click.echo(f"  候选：{c.code}  {c.display}  ({c.score:.2f})")
    if res.code is None:
        ctx.exit(1)


def register(main: click.Group) -> None:
    data = main.commands["data"]
    data.add_command(import_terminology)  # type: ignore[attr-defined]
    data.add_command(terminology_versions)  # type: ignore[attr-defined]
    main.add_command(code_group)
