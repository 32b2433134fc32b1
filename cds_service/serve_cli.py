"""``dip-cds serve``: the production server (gunicorn, run programmatically).

Worker class ``gevent`` by default: each connection is a greenlet, so clients that are slow to
send their headers or body (or idle keep-alive connections) wait without holding a worker — with
``sync`` workers two such clients block a two-worker service, ``/healthz`` included. Headers must
arrive within ``--keepalive`` seconds and the body within ``server.body_timeout_seconds``
(:mod:`cds_service.body` reads it completely before the app runs, then admits
``server.max_concurrent_requests`` hook calls per worker at a time, so their prefetch deadlines do
not run while they wait for each other's CPU). FHIR reads yield while they wait.

Each worker builds its own app after the fork (own HTTP session, DB engine, thread pool) and
pre-loads the reference data before taking requests. Prometheus runs in multiprocess mode with
a fresh temp dir so ``/metrics`` sums all workers.

JWT replay protection must be shared by all workers: with ``security.jwt = "required"`` and more
than one worker, a ``security.redis_url`` is mandatory and the command refuses to start without it.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from typing import Any

import click

from cds_service.config import ConfigError, check_bind, load_settings

WORKER_CLASSES = ("gevent", "sync", "gthread")


def _gunicorn_app(factory: Any, options: dict[str, Any]) -> Any:
    from gunicorn.app.base import BaseApplication

    class DipCdsServer(BaseApplication):
        def __init__(self) -> None:
            self.options = options
            super().__init__()

        def load_config(self) -> None:
            for key, value in self.options.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return factory()

    return DipCdsServer()


def _post_worker_init(worker: Any) -> None:
    from cds_service.app import preload

    app = worker.wsgi
    if hasattr(app, "extensions"):
        preload(app)
    # The reference data just loaded lives as long as the worker: keep its objects out of every
    # garbage collection. Without this a full collection walks them all, and a hook call parsing a
    # large prefetch triggers one every few requests (tens of ms; the p99 of yb-audit-order-sign).
    gc.collect()
    gc.freeze()


def _child_exit(_server: Any, worker: Any) -> None:
    from cds_service import metrics

    metrics.worker_exited(worker.pid)


def register(main: click.Group) -> None:
    @main.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
    @click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
    @click.option(
        "--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker processes."
    )
    @click.option(
        "--worker-class",
        type=click.Choice(WORKER_CLASSES),
        default=None,
        help="gunicorn worker class [default: gevent; gthread when --threads > 1]. sync and gthread "
        "let slow clients hold a worker: only behind a buffering reverse proxy.",
    )
    @click.option(
        "--threads",
        default=1,
        show_default=True,
        type=click.IntRange(1, 64),
        help="Threads per worker (gthread only).",
    )
    @click.option(
        "--keepalive",
        default=5,
        show_default=True,
        type=click.IntRange(1, 300),
        help="Seconds to wait for the next request (and, with gevent, for a request's headers).",
    )
    @click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        envvar="DIP_CDS_CONFIG",
        help="TOML config (default: env DIP_CDS_CONFIG, else <home>/config.toml if present).",
    )
    @click.option(
        "--timeout", default=30, show_default=True, type=click.IntRange(1, 600), help="Worker timeout (s)."
    )
    @click.pass_context
    def serve(
        ctx: click.Context,
        host: str,
        port: int,
        workers: int,
        worker_class: str | None,
        threads: int,
        keepalive: int,
        config_file: str | None,
        timeout: int,
    ) -> None:
        """Run the CDS Hooks service (GET /cds-services) with gunicorn."""
        from cds_service.cli import home_from

        home = home_from(ctx)
        try:
            settings = load_settings(config_file, home=home)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            check_bind(settings, host)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        sec = settings.security
        if sec.jwt == "required" and workers > 1 and not sec.redis_url:
            raise click.ClickException(
                "security.jwt = 'required' with --workers > 1 needs security.redis_url: the JWT replay "
                "(jti) cache must be shared by all workers. Set DIP_CDS_SECURITY__REDIS_URL or use --workers 1."
            )
        worker_class = worker_class or ("gthread" if threads > 1 else "gevent")
        if threads > 1 and worker_class != "gthread":
            raise click.ClickException("--threads > 1 needs --worker-class gthread")
        metrics_dir = tempfile.mkdtemp(prefix="dip-cds-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # before any worker imports prometheus_client
        click.echo(
            f"dip-cds serving http://{host}:{port}/cds-services (home {home}, config {settings.source}, "
            f"JWT {sec.jwt}, {workers} {worker_class} worker(s)"
            + (f" x {threads} thread(s))" if worker_class == "gthread" else ")"),
            err=True,
        )

        def factory() -> Any:
            from cds_service.app import create_app

            return create_app(settings=settings, home=home, bind_host=host)

        options = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": worker_class,
            "worker_connections": 1000,  # gevent: connections per worker (each one a greenlet)
            "timeout": timeout,
            "graceful_timeout": 10,
            "keepalive": keepalive,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "preload_app": False,
            "post_worker_init": _post_worker_init if settings.server.preload_data else None,
            "child_exit": _child_exit,
            "proc_name": "dip-cds",
        }
        try:
            _gunicorn_app(factory, options).run()
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
