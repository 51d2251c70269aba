#!/usr/bin/env bash
# Run the benchmarks (bench/run.py) on the real infrastructure: starts Kafka, FerretDB and
# MariaDB with infra.sh unless KAFKA_BOOTSTRAP_SERVERS and MONGO_URI are set, installs the
# bench dependency group (Celery, redis-py, py-spy) and redis-server (Debian) for the
# Celery comparison. Arguments go to bench/run.py (e.g. --quick, --tasks 5000).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if ! command -v redis-server >/dev/null; then
  log "installing redis-server from Debian (the Celery comparison's broker)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
cd "$ROOT"
uv sync --locked --all-packages --group bench --quiet
if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] && [ -n "${MONGO_URI:-}" ]; then
  log "reusing the stack at Kafka $KAFKA_BOOTSTRAP_SERVERS, MongoDB $MONGO_URI"
else
  "$ROOT/scripts/infra.sh" start
  eval "$("$ROOT/scripts/infra.sh" env)"
fi
exec uv run --locked --group bench python -m bench.run "$@"
