"""``dip-cds data import-catalog`` / ``import-optypes`` and ``dip-cds group``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click


def _known_code_checker(home: Path):
    """known_code(kind, code) against the data home's imported terminology (None: cannot check)."""
    from dip_engine.importer import terminology_checker

    try:
        from terminology import load_terminology

        term = load_terminology(home)
    except Exception:
        return None
    return terminology_checker(term)


def register(main: click.Group) -> None:
    from cds_service.cli import home_from

    data_group = main.commands["data"]
    assert isinstance(data_group, click.Group)

    @data_group.command("import-catalog")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--region", required=True, help="Region (统筹区) code, e.g. 410400.")
    @click.option("--name", required=True, help="Catalog name, e.g. 平顶山.")
    @click.option("--year", type=int, help="Catalog year, e.g. 2025.")
    @click.option(
        "--stats",
        "stats",
        type=click.Path(exists=True, dir_okay=False),
        help="Statistics sheet as a separate file (中间结果.csv).",
    )
    @click.option(
        "--effective-from", type=click.DateTime(["%Y-%m-%d"]), help="First day the catalog applies."
    )
    @click.option("--effective-to", type=click.DateTime(["%Y-%m-%d"]), help="Last day the catalog applies.")
    @click.option("--default", "make_default", is_flag=True, help="Make this region the default one.")
    @click.option(
        "--report",
        "report_path",
        type=click.Path(dir_okay=False),
        help="Write the full validation report as JSON.",
    )
    @click.pass_context
    def import_catalog_cmd(
        ctx, file, region, name, year, stats, effective_from, effective_to, make_default, report_path
    ):
        """Import a DIP catalog (XLSX, incl. two-sheet workbooks, or CSV) with a validation report."""
        from dip_engine.importer import CatalogImportError, TableError, import_catalog
        from dip_engine.rules import RulesError, check_region_code
        from dip_engine.store import StoreError, save_catalog

        try:
            check_region_code(region)
        except RulesError as exc:
            raise click.BadParameter(str(exc), param_hint="--region") from None
        home = home_from(ctx)
        known = _known_code_checker(home)
        try:
            catalog, report = import_catalog(
                file, region, name, year, stats_path=stats, known_code=known, home=home,
                effective_from=effective_from.date() if effective_from else None,
                effective_to=effective_to.date() if effective_to else None,
            )  # fmt: skip
        except (CatalogImportError, TableError, ValueError) as exc:  # ValueError: a broken headers.toml
            raise click.ClickException(str(exc)) from None
        try:
            save_catalog(home, catalog, report.as_dict(), make_default)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(report.render())
        if known is None:
            click.echo("  （未导入正式术语库，未检查编码是否存在）")
        if report_path:
            Path(report_path).write_text(
                json.dumps(report.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8"
            )
        click.echo(
            f"已保存 {catalog.label}（{region}）: {sum(report.accepted.values())} 个病种 → {home / 'catalogs.sqlite'}"
        )

    @data_group.command("import-optypes")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.pass_context
    def import_optypes_cmd(ctx, file):
        """Import a procedure-type table (手术/介入 → SS, 治疗性操作 → ZLXCZ, 诊断性操作 → ZDXCZ)."""
        from dip_engine.importer import CatalogImportError, TableError, import_optypes
        from dip_engine.store import StoreError, save_optypes

        home = home_from(ctx)
        try:
            entries, report = import_optypes(file, home)
        except (CatalogImportError, TableError, ValueError) as exc:  # ValueError: a broken headers.toml
            raise click.ClickException(str(exc)) from None
        try:
            save_optypes(home, entries, Path(file).name)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(report.render())
        click.echo(f"已保存 {len(entries)} 个手术操作类型 → {home / 'catalogs.sqlite'}")

    @main.command("group")
    @click.option("--region", help="Region code of the catalog (default: the data home's default region).")
    @click.option("--year", type=int, help="Catalog year (default: the newest).")
    @click.option(
        "--input",
        "input_path",
        required=True,
        type=click.Path(exists=True, dir_okay=False),
        help="cases.csv or cases.jsonl",
    )
    @click.option(
        "--output", "output_path", required=True, type=click.Path(dir_okay=False), help="out.csv or out.jsonl"
    )
    @click.option(
        "--rules", "rules_path", type=click.Path(exists=True, dir_okay=False), help="Extra region rules TOML."
    )
    @click.option(
        "--workers",
        type=int,
        default=None,
        help="Worker processes (default: CPU count, at most 4; 1 = in-process).",
    )
    @click.option(
        "--errors",
        "errors_path",
        type=click.Path(dir_okay=False),
        help="Write bad rows (line, reason) as CSV.",
    )
    @click.option(
        "--no-terminology",
        is_flag=True,
        help="Check code format only: no 医保版 table check, no 国临版 mapping (not for settlement lists).",
    )
    @click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
    @click.pass_context
    def group_cmd(
        ctx, region, year, input_path, output_path, rules_path, workers, errors_path, no_terminology, progress
    ):
        """Group (and price) every case of a CSV/JSONL file; bad rows are reported, the rest processed."""
        import tqdm as tqdm_module
        from tqdm import tqdm

        tqdm_module.tqdm.monitor_interval = 0  # no monitor thread: worker processes are forked

        from dip_engine import load_catalogs, load_optype_table
        from dip_engine.batch import CHUNK, CaseError, count_lines, group_file
        from dip_engine.engine import Engine
        from dip_engine.rules import RulesError, load_rules
        from dip_engine.store import StoreError

        home = home_from(ctx)
        start = time.perf_counter()
        try:
            catalog = load_catalogs(home).get(region, year)
            rules = load_rules(catalog.region, home, Path(rules_path) if rules_path else None)
        except (KeyError, RulesError, StoreError) as exc:
            raise click.ClickException(str(exc).strip("'\"")) from None
        term = None
        if not no_terminology:
            from dip_engine.engine import terminology_for

            term = terminology_for(catalog, home)
            if term is None:
                click.echo(
                    "提示：未导入医保版术语库，只检查编码格式，不核对编码是否在医保版编码表中、不做国临版映射"
                    "（dip-cds data import-terminology …）",
                    err=True,
                )
        engine = Engine(catalog, term, rules, load_optype_table(home, sample=catalog.is_sample), home)
        total = count_lines(Path(input_path)) - (
            1 if Path(input_path).suffix.lower() in (".csv", ".txt") else 0
        )
        if workers is None and total < 2 * CHUNK:
            workers = 1  # a small file is done before worker processes would have started
        bar = tqdm(
            total=total,
            unit="例",
            disable=(not progress) if progress is not None else None,
            desc=catalog.label,
        )
        try:
            summary = group_file(engine, Path(input_path), Path(output_path), workers, bar.update)
        except CaseError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            bar.close()
        for line, reason in summary.errors[:20]:
            click.echo(f"第 {line} 行: {reason}", err=True)
        if len(summary.errors) > 20:
            click.echo(f"… 另有 {len(summary.errors) - 20} 行错误", err=True)
        if errors_path:
            import csv

            with open(errors_path, "w", encoding="utf-8", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["line", "reason"])
                w.writerows(summary.errors)
        elapsed = time.perf_counter() - start
        types = ", ".join(f"{k} {v}" for k, v in summary.group_types.most_common())
        click.echo(
            f"{catalog.label}: {summary.written} 例已处理（{types}），{len(summary.errors)} 行错误，"
            f"用时 {elapsed:.1f} 秒 → {output_path}",
            err=True,
        )
