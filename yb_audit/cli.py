"""Commands of 医保智能审核: ``data import-rules``, ``data rules``, ``audit``, ``synth-fees``."""

from __future__ import annotations

import json
from pathlib import Path

import click

MAX_REJECTS_SHOWN = 20


def _home(ctx: click.Context) -> Path:
    from cds_service.cli import home_from

    return home_from(ctx)


def audit_settings_for(home: Path, config: str | None):
    """``[audit]`` of the service configuration (file + ``DIP_CDS_<SECTION>__*``), validated with
    every other section, so a command and the service read the same settings."""
    from cds_service.config import ConfigError, load_settings
    from yb_audit.settings import audit_settings

    try:
        return audit_settings(load_settings(config, home))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("import-rules")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--prefix", default=None, help="规则编号前缀（默认按批次名，如 第一批 → B01）")
@click.option("--json", "as_json", is_flag=True, help="以 JSON 输出校验报告")
@click.option(
    "--show-rejects", default=MAX_REJECTS_SHOWN, show_default=True, help="每个文件最多列出的拒绝行数"
)
@click.pass_context
def import_rules(ctx, paths, prefix, as_json, show_rejects) -> None:
    """Import rule workbooks (国家医保基金智能监管规则库, as published) or hospital rule files
    (TOML / CSV in a workbook's layout) into the data home; one new version per rule set."""
    from yb_audit.importer import import_paths
    from yb_audit.store import db_path

    home = _home(ctx)
    reports, skipped = import_paths(home, [Path(p) for p in paths], prefix)
    if as_json:
        click.echo(
            json.dumps(
                {"files": [r.as_dict() for r in reports], "skipped": skipped}, ensure_ascii=False, indent=2
            )
        )
    else:
        for report in reports:
            if not report.ok:
                click.secho(f"✗ {report.path}：未导入（{report.error}）", fg="red")
                continue
            state = "内容未变，沿用" if report.unchanged else "已导入并启用"
            click.secho(f"✓ {report.path}", fg="green")
            click.echo(
                f"  规则集「{report.name}」第 {report.version} 版（{state}）：批次 {report.batch}，格式 {report.layout}，"
                f"规则类型 {'、'.join(report.kinds)}；读取 {report.rows} 行，规则 {report.rules} 条，编码 {report.codes} 个，"
                f"拒绝 {len(report.rejects)} 行"
            )
            for note in report.notes:
                click.echo(f"    说明：{note}")
            for reject in report.rejects[:show_rejects]:
                click.echo(f"    {reject}")
            if len(report.rejects) > show_rejects:
                click.echo(f"    …… 另有 {len(report.rejects) - show_rejects} 行被拒绝")
        for note in skipped:
            click.echo(note)
        click.echo(f"数据库：{db_path(home)}")
    if not reports or any(not r.ok for r in reports):
        ctx.exit(1)


@click.command("rules")
@click.option("--activate", nargs=2, metavar="NAME VERSION", default=None, help="启用规则集的某一版本")
@click.option("--deactivate", metavar="NAME", default=None, help="停用规则集（保留已导入的版本）")
@click.pass_context
def rules_command(ctx, activate, deactivate) -> None:
    """List imported rule sets and their versions (and switch the active one)."""
    from yb_audit import store

    home = _home(ctx)
    try:
        if activate:
            store.activate(home, activate[0], int(activate[1]))
        if deactivate and store.deactivate(home, deactivate) == 0:
            raise click.ClickException(f"规则集「{deactivate}」没有启用的版本")
    except (store.RuleStoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    versions = store.versions(home)
    if not versions:
        click.echo("尚未导入规则，当前使用内置示例规则（dip-cds data import-rules DIR 导入国家规则库）")
        return
    for v in versions:
        mark = "●" if v.active else "○"
        click.echo(
            f"{mark} {v.name} 第 {v.version} 版：规则 {v.rules} 条，编码 {v.codes} 个，拒绝 {v.rejects} 行，"
            f"{v.source_file}，{v.imported_at}"
        )


@click.command("audit")
@click.option(
    "--fees", "fees", required=True, type=click.Path(exists=True, dir_okay=False), help="费用明细 CSV"
)
@click.option(
    "--stays", "stays", required=True, type=click.Path(exists=True, dir_okay=False), help="就诊信息 CSV"
)
@click.option("--output", required=True, type=click.Path(file_okay=False), help="输出目录")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="线程数（默认：全部 CPU）")
@click.option(
    "--memory-limit", default="3GB", show_default=True, help="DuckDB 内存上限，超出部分写入临时文件"
)
@click.option(
    "--hospital-level", default=None, help="医院等级（就诊信息未给出时使用；默认取 [audit] hospital_level）"
)
@click.option("--config", default=None, type=click.Path(dir_okay=False), help="配置文件（[audit] 一节）")
@click.pass_context
def audit_command(ctx, fees, stays, output, engine, threads, memory_limit, hospital_level, config) -> None:
    """事后审核: audit fee-detail lines (national 2301 field names) against the active rules and
    write findings (CSV/XLSX), totals by rule, 科室 and 医生 rankings, an HTML report and rejects."""
    from marshmallow import ValidationError

    from yb_audit.batch.inputs import InputError
    from yb_audit.batch.run import run_audit
    from yb_audit.settings import parse_level

    home = _home(ctx)
    settings = audit_settings_for(home, config)
    level = None
    if hospital_level is not None:
        try:
            level = parse_level(hospital_level)
        except ValidationError:
            raise click.BadParameter("应为 一级 / 二级 / 三级", param_hint="--hospital-level") from None
    try:
        summary = run_audit(
            Path(fees),
            Path(stays),
            Path(output),
            home=home,
            settings=settings,
            engine=engine,
            threads=threads,
            memory_limit=memory_limit,
            hospital_level=level,
        )
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    counts, totals, timings = summary["counts"], summary["totals"], summary["timings"]
    if summary["meta"].get("示例规则"):
        click.secho(
            "注意：使用内置示例规则（dip-cds data import-rules 导入国家规则库后再审核）",
            fg="yellow",
            err=True,
        )
    click.echo(
        f"费用明细 {counts['fee_lines']} 行（未审核 {counts['fee_rejected']} 行，见 rejects.csv）；"
        f"违规 {totals['violations']} 条、可疑 {totals['suspicious']} 条，涉及 {totals['lines']} 行、"
        f"{totals['stays']} 次就诊，涉及金额 {totals['amount_at_risk']} 元"
    )
    click.echo("用时 " + "，".join(f"{k} {v:.1f}s" for k, v in timings.items()) + f"；输出：{Path(output)}")


@click.command("synth-fees")
@click.option("--output", required=True, type=click.Path(file_okay=False))
@click.option("--stays", "n_stays", default=1000, show_default=True, type=click.IntRange(1, 10**8))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--rate",
    "rates",
    multiple=True,
    metavar="KIND=RATE",
    help="某类规则的违规就诊占比，如 frequency=0.02（默认每类 0.01）",
)
@click.option(
    "--negative-rate",
    default=None,
    type=click.FloatRange(0, 1),
    help="每类规则的合规边界就诊占比（默认同 rate）",
)
@click.option("--lines-per-stay", default=30, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--bad-lines", default=0, show_default=True, type=click.IntRange(0, 10**6), help="插入的格式错误行数"
)
@click.pass_context
def synth_fees(ctx, output, n_stays, seed, rates, negative_rate, lines_per_stay, bad_lines) -> None:
    """Synthetic fee details and stays with violations seeded at known rates (expected.csv lists
    every finding the audit must report)."""
    from yb_audit import kinds, store
    from yb_audit.synth import write_synth_fees

    parsed: dict[str, float] = {k: 0.01 for k in kinds.KINDS}
    for item in rates:
        kind, _, value = item.partition("=")
        key = kinds.kind_of(kind.strip())
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if key is None or not 0 <= rate <= 1:
            raise click.BadParameter(
                f"{item!r}：应为 KIND=RATE，KIND 为 {'、'.join(kinds.KINDS)}", param_hint="--rate"
            )
        parsed[key] = rate
    home = _home(ctx)
    result = write_synth_fees(
        store.load_rules(home),
        Path(output),
        stays=n_stays,
        seed=seed,
        rates=parsed,
        negative_rate=negative_rate,
        lines_per_stay=lines_per_stay,
        bad_lines=bad_lines,
        secondary_rate=audit_settings_for(home, None).secondary_operation_rate,
    )
    click.echo(
        f"合成数据：{result.stays_count} 次就诊，{result.lines} 行费用明细（其中格式错误 {result.bad_lines} 行），"
        f"预期发现 {result.expected_findings} 条 → {result.fees}, {result.stays}, {result.expected}"
    )


def register(main: click.Group) -> None:
    from cds_service.cli import data_group

    for command in (import_rules, rules_command):
        if command.name not in data_group.commands:
            data_group.add_command(command)
    for command in (audit_command, synth_fees):
        if command.name not in main.commands:
            main.add_command(command)
