"""``dip-cds settle`` and ``dip-cds synth``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click


def _print_report(report) -> None:
    result = report.result
    c = result.counts
    click.echo(f"目录: {report.catalog_label}")
    click.echo(
        f"病例: 读入 {c['rows_in']}, 拒收 {c['rejected']} (其中重复 {c['duplicates']}), 本期结算 {c['settled']} "
        f"(DIP {c['dip']}, 非DIP {c['outside']}: 其中结算清单质控退回 {c.get('qc_rejected', 0)}, "
        f"不予支付 {c.get('withheld', 0)}), 非本期 {c['out_of_period']}"
    )
    for plan in result.plans:
        pv = "—" if plan.point_value is None else f"{plan.point_value:.6f}"
        click.echo(f"{plan.label}: 点值 {pv} 元/分 ({plan.problem or plan.point_value_source})")
    click.echo("对账检查:")
    for check in result.reconciliation:
        click.echo(f"  [{'通过' if check['ok'] else '不通过'}] {check['check']}: {check['detail']}")
    for problem in result.notices:
        click.echo(f"  注意: {problem}")
    t = report.timings
    split = ", ".join(
        f"{label} {t[key]:.2f}s"
        for key, label in (
            ("engine_load_s", "载入目录"),
            ("read_s", "读取"),
            ("group_wall_s", "读取+分组(并行)"),
            ("worker_cpu_s", "分组CPU合计"),
            ("aggregate_s", "汇总"),
            ("report_s", "报告"),
            ("total_s", "合计"),
        )
        if key in t
    )
    click.echo(f"用时: {split}")
    if report.chunks_resumed:
        click.echo(f"断点续跑: {report.chunks_resumed}/{report.chunks_total} 个数据块沿用检查点")
    click.echo("输出: " + ", ".join(str(p) for p in report.outputs))


def register(main: click.Group) -> None:
    @main.command("settle")
    @click.option(
        "--region", help="统筹区编码 (the catalog to group with; default: the data home's default)."
    )
    @click.option("--period", required=True, help="Settlement year, e.g. 2025.")
    @click.option(
        "--month", help="Monthly pre-settlement (月度预结算) for YYYY-MM, at the 年初点值 × prepayment ratio."
    )
    @click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), help="settle.toml (funds, budgets…)."
    )
    @click.option(
        "--input",
        "inputs",
        multiple=True,
        required=True,
        type=click.Path(dir_okay=False),
        help="CSV/JSONL/XLSX; repeatable.",
    )
    @click.option("--output", required=True, type=click.Path(file_okay=False), help="Output directory.")
    @click.option("--engine", type=click.Choice(["embedded", "spark"]), default="embedded", show_default=True)
    @click.option("--workers", type=int, help="Grouping processes (default: all cores).")
    @click.option("--chunk-size", type=int, help="Cases per checkpointed chunk (default from config, 50000).")
    @click.option("--no-progress", is_flag=True, help="No progress bar.")
    @click.option(
        "--clean-checkpoint",
        is_flag=True,
        help="Delete the chunk checkpoints after a run whose checks all pass.",
    )
    @click.pass_context
    def settle(
        ctx, region, period, month, config_path, inputs, output, engine, workers, chunk_size, no_progress,
        clean_checkpoint,
    ):  # fmt: skip
        """Settle a period's 结算清单: group every case, point value, payments, reports, reconciliation."""
        from cds_service.cli import home_from
        from settlement.config import ConfigError, load_config
        from settlement.inputs import InputError
        from settlement.run import RunOptions, run_settlement

        if not re.fullmatch(r"\d{4}", period):
            raise click.BadParameter("period must be a year, e.g. 2025", param_hint="--period")
        if month and not (re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month) and month.startswith(period)):
            raise click.BadParameter("month must be YYYY-MM within --period", param_hint="--month")
        if workers is not None and workers < 1:
            raise click.BadParameter("must be ≥ 1", param_hint="--workers")
        try:
            config = load_config(config_path)
            opts = RunOptions(
                inputs=[Path(p) for p in inputs],
                output=Path(output),
                config=config,
                period=period,
                month=month,
                region=region or config.region,
                home=home_from(ctx),
                engine=engine,
                workers=workers,
                progress=not no_progress and sys.stderr.isatty(),
                chunk_size=chunk_size,
                clean_checkpoint=clean_checkpoint,
            )
            report = run_settlement(opts)
        except (ConfigError, InputError) as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyError as exc:
            raise click.ClickException(f"unknown region or catalog: {exc}") from exc
        except ModuleNotFoundError as exc:
            if engine == "spark" and exc.name and exc.name.split(".")[0] in ("pyspark", "pandas", "pyarrow"):
                raise click.ClickException(
                    "--engine spark needs the spark extra: pip install -e '.[spark]' (and Java 17)"
                ) from exc
            raise
        _print_report(report)
        if not report.result.ok:
            raise click.ClickException("对账检查未全部通过 (reconciliation failed), see report.html")

    @main.command("synth")
    @click.option("--region", help="Catalog to draw groups from (default: the data home's default).")
    @click.option("--cases", type=click.IntRange(1, 50_000_000), required=True)
    @click.option("--hospitals", type=click.IntRange(1, 100_000), default=20, show_default=True)
    @click.option("--seed", type=int, default=1, show_default=True)
    @click.option("--period", default="2025", show_default=True)
    @click.option("--month", help="Put every discharge in this month (YYYY-MM).")
    @click.option(
        "--output", type=click.Path(dir_okay=False), default="synthetic-cases.csv", show_default=True
    )
    @click.option("--progress/--no-progress", default=True)
    @click.pass_context
    def synth(ctx, region, cases, hospitals, seed, period, month, output, progress):
        """Generate SYNTHETIC 结算清单 cases (labelled as such) from a DIP catalog."""
        from cds_service.cli import home_from
        from dip_engine import load_catalogs
        from dip_engine.engine import terminology_for
        from settlement.synth import write_synth

        home = home_from(ctx)
        try:
            catalog = load_catalogs(home).get(region)
        except KeyError as exc:
            raise click.ClickException(f"unknown region: {exc}") from exc
        meta = write_synth(
            Path(output), catalog, cases, hospitals, seed, period, month, progress and sys.stderr.isatty(),
            terminology=terminology_for(catalog, home),
        )  # fmt: skip
        click.echo(
            f"wrote {meta['cases']} synthetic cases ({meta['catalog']}, seed {seed}) to {output} (+ .meta.json)"
        )
