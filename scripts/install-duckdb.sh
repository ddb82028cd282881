#!/usr/bin/env bash
# DuckDB for the fleet tests and docs/fleet.md's example queries: the `duckdb` Python package
# from PyPI in a project-local virtual environment, .tools/duckdb-venv (never system-wide).
# Idempotent: does nothing when the pinned version is already there. Needs Debian's python3 and
# python3-venv (installed when missing, as root).
#
# Usage: scripts/install-duckdb.sh      then: .tools/duckdb-venv/bin/python -c 'import duckdb'
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.tools/duckdb-venv"
version="1.5.6"
py=/usr/bin/python3

log() { printf 'install-duckdb: %s\n' "$*" >&2; }

if [ -x "$venv/bin/python" ] &&
  [ "$("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)' 2>/dev/null)" = "$version" ]; then
  exit 0
fi
if ! [ -x "$py" ] || ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    log "need root to install Debian packages: python3 python3-venv"; exit 1
  fi
  log "installing Debian packages: python3 python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3 python3-venv >/dev/null
fi
log "installing duckdb $version into $venv"
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "duckdb==$version"
log "duckdb $("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)') ready"
