# The README's commands. Every target bootstraps what it needs from a bare machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv uses the machine's Python (3.11 or newer, per requires-python), never a downloaded build.
# Pick one with UV_PYTHON=3.12 when several are installed.
export UV_PYTHON_DOWNLOADS := never
export PYTHONDONTWRITEBYTECODE := 1

UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --locked --quiet

.PHONY: help bootstrap serve token test lint typecheck pytest bench bench-tools plan migrate postgres-binaries wrk oidc-provider dom

help: ## list every target with what it does
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /\1|/' | \
	  awk -F'|' '{ printf "make %-18s %s\n", $$1, $$2 }'

# uv from PyPI: into the user's site, or (a Debian Python that refuses user installs, PEP 668) into a
# private virtualenv under .tools/. Either way $(UV) ends up pointing at it.
$(UV):
	@command -v python3 >/dev/null || { echo "python3 (3.11 or newer) is required" >&2; exit 1; }
	@mkdir -p $(dir $(UV))
	python3 -m pip install --user --quiet uv 2>/dev/null \
	  || { python3 -m venv .tools && .tools/bin/pip install --quiet uv && ln -sf "$(CURDIR)/.tools/bin/uv" $(UV); }
	@test -x $(UV) || ln -sf "$$(command -v uv)" $(UV)

# uv installs packages without compiling them to bytecode, and this Makefile keeps Python from writing
# any (PYTHONDONTWRITEBYTECODE, above): without the compile step every `backend-iac plan` or `doctor`
# would compile Pulumi and azure-native from source again (about 4 s). `uv sync --compile-bytecode`
# compiles the whole environment ("Compile Python files to bytecode after installation", uv sync --help);
# done once per uv.lock, as a second pass costs about a second even when nothing changed.
bootstrap: $(UV) ## install uv if missing and sync the locked environment (.venv), compiled to bytecode
	@$(UV) sync --locked --quiet
	@[ .venv/.bytecode-compiled -nt uv.lock ] || \
	  { $(UV) sync --locked --quiet --compile-bytecode && touch .venv/.bytecode-compiled; }

serve: bootstrap ## run the service locally as App Service runs it (SQLite, development tokens; APP_ENV is honoured)
	@mkdir -p var
	@echo "Serving on http://127.0.0.1:$${PORT:-8000} with the embedded SQLite database (var/backend-iac.sqlite3)."
	@echo "Call it with a development token:"
	@echo "  TOKEN=\$$(make -s token)"
	@echo "  curl -H \"Authorization: Bearer \$$TOKEN\" -d '{\"name\":\"first\"}' -H 'content-type: application/json' http://127.0.0.1:$${PORT:-8000}/api/v1/items"
	APP_ENV=$${APP_ENV:-development} GUNICORN_CMD_ARGS="--bind 127.0.0.1:$${PORT:-8000}" \
	  $(RUN) python -m service.serve

token: bootstrap ## mint a development bearer token for make serve (prints only the token)
	@$(RUN) python -m service.dev_keys mint

migrate: bootstrap ## apply the database schema migrations to DATABASE_URL
	$(RUN) python -m service.db.migrations

postgres-binaries: ## install Debian's postgresql server binaries when missing (the test suite starts its own server)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  echo "Installing PostgreSQL (Debian package) for the test suite"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq postgresql >/dev/null; }

wrk: ## install wrk (Debian) when missing, for make bench
	@command -v wrk >/dev/null || { \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq wrk >/dev/null; }

# The real OpenID provider the interoperability tests start (panva's oidc-provider, npm), installed exactly
# as locked (npm ci) from tests/support/oidc_provider/package-lock.json; Node.js from Debian where missing.
OIDC_PROVIDER := tests/support/oidc_provider
oidc-provider: $(OIDC_PROVIDER)/node_modules/.package-lock.json ## install the OpenID provider the interoperability tests start (npm ci)

$(OIDC_PROVIDER)/node_modules/.package-lock.json: $(OIDC_PROVIDER)/package.json $(OIDC_PROVIDER)/package-lock.json
	@command -v npm >/dev/null || { \
	  echo "Installing Node.js and npm (Debian packages) for the OpenID provider interoperability tests"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq nodejs npm >/dev/null; }
	cd $(OIDC_PROVIDER) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# jsdom (npm, exactly as locked), the DOM in which the tests render /docs and /redoc with their scripts.
DOM := tests/support/dom
dom: $(DOM)/node_modules/.package-lock.json ## install jsdom, the DOM the API docs pages are rendered in by the tests (npm ci)

$(DOM)/node_modules/.package-lock.json: $(DOM)/package.json $(DOM)/package-lock.json | oidc-provider
	cd $(DOM) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

lint: bootstrap ## ruff check and ruff format --check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: bootstrap ## mypy --strict on service, stack, backend_iac and policy
	$(RUN) mypy

pytest: bootstrap postgres-binaries oidc-provider dom ## the test suite only (PYTEST_ARGS passes options, e.g. PYTEST_ARGS='-k auth')
	$(RUN) pytest $(PYTEST_ARGS)

test: lint typecheck pytest ## set up and run the whole test suite (lint, types, tests on SQLite and PostgreSQL)

bench: bootstrap postgres-binaries wrk ## benchmark the service against bare FastAPI apps (wrk on loopback) and check the targets
	$(RUN) python -m bench.run

bench-tools: bootstrap ## time the offline tools (mock evaluation, plan, doctor) against their budgets
	$(RUN) python -m bench.offline_tools

plan: bootstrap ## print the dev stack's resources, policy verdict and cost estimate, offline
	$(RUN) backend-iac plan --stack dev
