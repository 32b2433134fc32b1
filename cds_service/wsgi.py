"""WSGI entry point: ``gunicorn cds_service.wsgi:app`` (settings from TOML + env, home from env).

The reference data is loaded here, when the server imports the app (``server.preload_data``), as
``dip-cds serve`` does when a worker starts: the first request does not pay for it.
"""

from cds_service.app import STATE_KEY, create_app, preload

app = create_app()
if app.extensions[STATE_KEY].settings.server.preload_data:
    preload(app)
