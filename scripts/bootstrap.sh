#!/usr/bin/env bash
# Installs everything `make run` and `make test` need on a fresh machine:
# the Debian packages the tests start for real, then a venv from the lock file.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
# Debian packages whose programs the suite starts as real processes.
SYSTEM_PACKAGES=(${SYSTEM_PACKAGES:-redis-server})

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "bootstrap: installing system packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
echo "bootstrap: installing Python packages from requirements.lock"
"$VENV/bin/python" -m pip install -q --upgrade pip setuptools
"$VENV/bin/python" -m pip install -q -r requirements.lock
# xds-protos ships an old copy of opentelemetry/proto and google/rpc that shadows
# the real ones and breaks the OTLP exporter (grpc/grpc#42926): put the real ones back.
"$VENV/bin/python" -m pip install -q --force-reinstall --no-deps \
    "$(grep -E '^opentelemetry-proto==' requirements.lock)" \
    "$(grep -E '^googleapis-common-protos==' requirements.lock)"
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
echo "bootstrap: done"
