#!/usr/bin/env bash
# Run every test on the real infrastructure: unit, integration and end-to-end.
# Starts Kafka, FerretDB and MariaDB with infra.sh unless KAFKA_BOOTSTRAP_SERVERS and
# MONGO_URI are already set (then that running stack is reused). Extra arguments go to
# pytest. Under CI=true a service that cannot be reached fails the run, never skips.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] && [ -n "${MONGO_URI:-}" ]; then
  log "reusing the stack at Kafka $KAFKA_BOOTSTRAP_SERVERS, MongoDB $MONGO_URI"
else
  "$ROOT/scripts/infra.sh" start
  eval "$("$ROOT/scripts/infra.sh" env)"
fi
cd "$ROOT"
uv run --locked ruff check .
exec uv run --locked pytest "$@"
