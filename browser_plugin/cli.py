"""``dip-cds demo-his`` (the demo 医生工作站 with the panel) and ``dip-cds plugin …`` (the extension build)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import click


def register(main: click.Group) -> None:
    if "demo-his" not in main.commands:
        main.add_command(demo_his_command)
    if "plugin" not in main.commands:
        main.add_command(plugin_group)


def _serve(app, host: str, port: int):
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, code="-", size="-") -> None:  # URLs of the FHIR data carry patient ids
            pass

    try:
        return make_server(host, port, app, threaded=True, request_handler=Quiet)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc


@click.command("demo-his")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (keep loopback: demo only).",
)
@click.option(
    "--port", default=8090, show_default=True, type=click.IntRange(1, 65535), help="The demo HIS pages."
)
@click.option(
    "--service-url",
    default=None,
    help="A running dip-cds service whose [plugin] allowed_origins lists this HIS; default: start one here.",
)
@click.option(
    "--service-port", default=8080, show_default=True, type=click.IntRange(1, 65535),
    help="Port of the service started here (without --service-url).",
)  # fmt: skip
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False),
    help="HIS signing key (EC P-384 PEM) for page tokens.",
)
@click.option(
    "--iss",
    default="https://his.demo.example.cn",
    show_default=True,
    help="Issuer of the HIS's JWTs (with --key).",
)
@click.option("--kid", default="demo-his", show_default=True, help="Key id of the HIS's JWTs (with --key).")
@click.pass_context
def demo_his_command(
    ctx: click.Context,
    host: str,
    port: int,
    service_url: str | None,
    service_port: int,
    key: str | None,
    iss: str,
    kid: str,
) -> None:
    """Serve a fictional 医生工作站 (demo data only) with the DIP-CDS panel.

    http://HOST:PORT/workstation/ has the panel by script tag; /plain/ is the same page without it,
    for the browser extension. The demo FHIR data is served at /fhir.
    """
    from browser_plugin.demo_his import HisSigner, create_demo_his
    from browser_plugin.settings import PluginSettings

    signer = HisSigner(Path(key).read_bytes(), iss, kid) if key else None
    his_origin = f"http://{host}:{port}"
    servers = []
    if service_url is None:
        from cds_service.app import create_app, preload
        from cds_service.cli import home_from
        from cds_service.config import ConfigError, load_settings

        home = home_from(ctx)
        try:
            settings = load_settings(home=home)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        plugin = settings.section("plugin", PluginSettings)
        plugin = dataclasses.replace(plugin, allowed_origins=(*plugin.allowed_origins, his_origin))
        domains = {**settings.domains, "plugin": plugin}
        service = create_app(settings=dataclasses.replace(settings, domains=domains), home=home)
        preload(service)
        servers.append(_serve(service, host, service_port))
        service_url = f"http://{host}:{service_port}"
    servers.append(_serve(create_demo_his(service_url, signer), host, port))
    for server in servers[:-1]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    click.echo(
        f"demo HIS (演示数据，虚构) at {his_origin}/workstation/ (panel) and {his_origin}/plain/ (for the extension)"
    )
    click.echo(f"dip-cds service: {service_url}")
    try:
        servers[-1].serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.server_close()


@click.group("plugin")
def plugin_group() -> None:
    """The browser plugin: build the browser extension for HIS pages a hospital cannot edit."""


@plugin_group.command("build-extension")
@click.option("--output", type=click.Path(file_okay=False), default="dist/extension", show_default=True)
@click.option(
    "--key",
    type=click.Path(dir_okay=False),
    help="The hospital's RSA key (PEM; created if missing, keep it): fixes the extension id and signs the .crx.",
)
@click.option("--update-url", help="Where the hospital serves updates.xml (policy and .crx location).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="The extension's configuration (JSON, as the options page exports it) to push by policy.",
)
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False),
    help="Extension sources (default: browser-extension/).",
)
@click.option(
    "--unpacked",
    is_flag=True,
    help="Write the unpacked extension (for chrome://extensions → 加载已解压的扩展程序).",
)
def build_extension_command(
    output: str,
    key: str | None,
    update_url: str | None,
    config_file: str | None,
    source: str | None,
    unpacked: bool,
) -> None:
    """Build the browser extension: the .zip; with --key also the signed .crx, updates.xml and the
    enterprise policy JSON (force-install, host limits, managed configuration)."""
    import json

    from browser_plugin.extension import SOURCE_DIR, ExtensionBuildError, build

    config = None
    if config_file:
        try:
            config = json.loads(Path(config_file).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"{config_file}: not JSON ({exc})") from None
    try:
        written = build(
            Path(output),
            key_path=Path(key) if key else None,
            update_url=update_url,
            config=config,
            source=Path(source) if source else SOURCE_DIR,
            unpacked=unpacked,
        )
    except ExtensionBuildError as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(str(path))
