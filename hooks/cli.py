"""``dip-cds demo-fhir``: serve the demo FHIR data set (fictional patients) for integrators."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    if "demo-fhir" not in main.commands:
        main.add_command(demo_fhir_command)


@click.command("demo-fhir")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8081, show_default=True, type=click.IntRange(0, 65535), help="0 = any free port."
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Directory of FHIR JSON files (resources or Bundles) to serve instead of the built-in demo set.",
)
@click.option("--base-path", default="", help="Serve under this path, e.g. /fhir (default: the root).")
@click.option(
    "--log-requests", is_flag=True, help="Print one line per request (off: URLs carry patient ids)."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 32),
    help="More than 1: serve with gunicorn worker processes (for load tests) instead of one threaded process.",
)
def demo_fhir_command(
    host: str, port: int, data_dir: str | None, base_path: str, log_requests: bool, workers: int
) -> None:
    """Serve the demo FHIR R4 data set (fictional patients) read/search-only, for the CDS Hooks Sandbox
    and integration tests: GET [type]/[id], GET [type]?params, POST [type]/_search, GET metadata."""
    from hooks.demo_fhir import DemoDataError, create_app, make_server, serve_with_gunicorn

    try:
        app = create_app(data_dir, base_path=base_path)
    except DemoDataError as exc:
        raise click.ClickException(f"cannot load FHIR data: {exc}") from exc
    if workers > 1:
        if port == 0:
            raise click.ClickException("--workers needs an explicit --port")
        click.echo(
            f"demo FHIR server (演示数据, fictional) at http://{host}:{port}{app.config['FHIR_BASE_PATH']}"
        )
        serve_with_gunicorn(data_dir, base_path, host, port, workers)
        return
    try:
        server = make_server(app, host, port, log_requests=log_requests)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
    store = app.config["FHIR_STORE"]
    counts = ", ".join(f"{len(items)} {rtype}" for rtype, items in sorted(store.by_type.items()))
    prefix = app.config["FHIR_BASE_PATH"]
    click.echo(
        f"demo FHIR server (演示数据, fictional) at http://{host}:{server.server_port}{prefix} — {counts}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
