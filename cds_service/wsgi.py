"""WSGI entry point: ``gunicorn cds_service.wsgi:app`` (settings from TOML + env, home from env)."""

from cds_service.app import create_app

app = create_app()
