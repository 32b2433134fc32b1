"""``dip-cds data import-prices FILE``: load a hospital price list into the data home."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    data_group = main.commands.get("data")
    if not isinstance(data_group, click.Group) or "import-prices" in data_group.commands:
        return
    data_group.add_command(import_prices_command)


@click.command("import-prices")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--sheet", default=None, help="XLSX sheet name (default: the first sheet).")
@click.pass_context
def import_prices_command(ctx: click.Context, file: str, sheet: str | None) -> None:
    """Import a price list (CSV/TSV/XLSX: item code, name, unit price, 费用类别, unit).

    Replaces the data home's price list; a file with any bad line is rejected as a whole and
    every bad line is reported with its number.
    """
    from cds_service.cli import home_from
    from costing.categories import category_names
    from costing.prices import DB_NAME, PriceImportError, import_prices

    home = home_from(ctx)
    try:
        report = import_prices(home, file, sheet=sheet)
    except PriceImportError as exc:
        raise click.ClickException(f"price list rejected: {exc}") from exc
    names = category_names()
    click.echo(f"imported {report.item_count} price items from {report.source} into {home / DB_NAME}")
    for code, count in report.categories.items():
        click.echo(f"  {code} {names.get(code, '')}: {count}")
