"""The single start command App Service runs.

The stack sets it as the web app's startup command, the packaging step checks the artifact against it,
and `make serve` runs it locally: one definition, read from here by all three.
"""

from typing import Final

ASGI_APP: Final = "service.main:app"
GUNICORN_CONFIG: Final = "python:service.gunicorn_conf"
STARTUP_COMMAND: Final = f"gunicorn --config {GUNICORN_CONFIG} {ASGI_APP}"

# App Service's front end drops a request it has waited on for 230 s, whatever the app does.
FRONT_END_TIMEOUT_SECONDS: Final = 230
