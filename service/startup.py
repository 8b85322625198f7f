"""The single start command App Service runs, and the other names the platform and the tools share.

The stack sets it as the web app's startup command, the packaging step checks the artifact against it,
and `make serve` runs it locally: one definition, read from here by all three. A leaf module: it imports
nothing, so the stack and the offline tools read it without loading the app.
"""

from typing import Final

ASGI_APP: Final = "service.main:app"
GUNICORN_CONFIG: Final = "python:service.gunicorn_conf"
STARTUP_COMMAND: Final = f"gunicorn --config {GUNICORN_CONFIG} {ASGI_APP}"

# The liveness path: the service answers it, the stack points App Service's health check at it, and
# `backend-iac verify` probes it first.
HEALTH_PATH: Final = "/healthz"

# The build information file `backend-iac package` writes at the artifact's root, beside the `service`
# package, and `/version` reads.
BUILD_INFO_FILE: Final = "build_info.json"

# App Service's front end drops a request it has waited on for 230 s, whatever the app does.
FRONT_END_TIMEOUT_SECONDS: Final = 230

# The app setting that turns Application Insights on (service.telemetry reads it; the stack sets it).
TELEMETRY_CONNECTION_STRING_SETTING: Final = "APPLICATIONINSIGHTS_CONNECTION_STRING"
