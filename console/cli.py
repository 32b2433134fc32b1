"""``dip-cds console …`` (users, migrations, retention, loading batch outputs) and ``dip-cds demo-traffic``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from console.settings import ConsoleSettings


def _console(ctx: click.Context):
    from cds_service.cli import home_from
    from cds_service.config import ConfigError, load_settings
    from console.service import Console, service_database_url

    home = home_from(ctx)
    try:
        core = load_settings(home=home)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return Console(ConsoleSettings(), home, service_database_url(core, home))


def register(main: click.Group) -> None:
    @main.group("console")
    def console_group() -> None:
        """The 医保办 console: users, its database, loading audit and settlement outputs."""

    @console_group.command("create-user")
    @click.argument("username")
    @click.option("--role", type=click.Choice(["ybb", "dept_head", "readonly"]), required=True,
                  help="ybb = 医保办 (everything), dept_head = 科室主任 (own department), readonly = 只读.")  # fmt: skip
    @click.option("--department", help="Department code a dept_head sees (as the HIS sends it).")
    @click.option("--display-name", help="Name shown in the console.")
    @click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
    @click.option("--proxy-only", is_flag=True, help="No password: signs in through the reverse proxy only.")
    @click.pass_context
    def create_user(ctx, username, role, department, display_name, password_stdin, proxy_only) -> None:
        """Add a console user (or change an existing one's role, department and password)."""
        from console import auth

        console = _console(ctx)
        console.prepare()
        if proxy_only:
            password = None
        elif password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = click.prompt("密码 / password", hide_input=True, confirmation_prompt=True)
        try:
            user = auth.create_user(console.engine, username, role, password, department, display_name)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(
            f"user {user.username}: {user.role_label}"
            + (f" ({user.department_code})" if user.department_code else "")
        )

    @console_group.command("migrate")
    @click.pass_context
    def migrate_cmd(ctx) -> None:
        """Apply the console's migrations, store spooled assessments of stopped processes, purge."""
        from console.db import current_revision

        console = _console(ctx)
        recovered = console.prepare()
        click.echo(
            f"console database at revision {current_revision(console.engine)}; spool files recovered: {recovered}"
        )

    @console_group.command("purge")
    @click.option(
        "--days", type=click.IntRange(1), help="Retention in days (default: [console] retention_days)."
    )
    @click.pass_context
    def purge_cmd(ctx, days) -> None:
        """Delete closed stays older than the retention period."""
        from console.retention import purge

        console = _console(ctx)
        console.prepare()
        counts = purge(
            console.engine, days or console.settings.retention_days, console.settings.session_max_hours
        )
        click.echo(f"purged {counts['stays']} closed stays, {counts['sessions']} old sessions")

    for kind in ("audit", "settle"):

        @console_group.command(f"load-{kind}")
        @click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
        @click.option("--label", help="Name shown in the console (default: the folder's name).")
        @click.pass_context
        def load(ctx, folder, label, kind=kind) -> None:
            from console.imports import LoadError, load_audit, load_settle

            console = _console(ctx)
            console.prepare()
            try:
                if kind == "audit":
                    result = load_audit(
                        console.engine, folder.resolve(), "cli", console.settings.zone(), label
                    )
                else:
                    result = load_settle(console.engine, folder.resolve(), "cli", label)
            except LoadError as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(f"loaded {kind} output {folder}: {result}")

        load.__doc__ = f"Load a `dip-cds {kind}` output folder into the console."

    @main.command("demo-traffic")
    @click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="The running service.")
    @click.option("--days", default=7, show_default=True, type=click.IntRange(1, 60))
    @click.option(
        "--beds", default=30, show_default=True, type=click.IntRange(1, 500), help="Stays admitted."
    )
    @click.option("--seed", default=20261203, show_default=True, type=int)
    @click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 32))
    def demo_traffic(url, days, beds, seed, workers) -> None:
        """Replay a ward's simulated week of hook and plugin calls (and card feedback) against a running service."""
        from console.demo_traffic import replay

        summary = replay(url.rstrip("/"), days=days, beds=beds, seed=seed, workers=workers)
        click.echo(
            f"sent {summary['calls']} calls ({summary['plugin']} of them plugin checks; {summary['failed']} "
            f"failed) and {summary['feedback']} feedback items for {summary['stays']} stays"
        )
        if summary["failed"]:
            raise SystemExit(1)
