#!/usr/bin/env bash
# Start and stop Taskmill's own processes against the infrastructure of infra.sh:
# the api (gunicorn), the dispatcher and one process of each worker.
#
#   scripts/app.sh start     start them in the background, return once /readyz is 200
#   scripts/app.sh stop      stop them (SIGTERM, then SIGKILL after the grace period)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

TOKEN_FILE=$LOCAL/auth-token
VENV=$ROOT/.venv/bin

auth_token() {
  if [ -n "${AUTH_TOKEN:-}" ]; then
    printf '%s' "$AUTH_TOKEN"
    return
  fi
  [ -f "$TOKEN_FILE" ] || (umask 077; "$VENV/python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$TOKEN_FILE")
  cat "$TOKEN_FILE"
}

start() {
  eval "$("$ROOT/scripts/infra.sh" env)"
  export TASKMILL_CONFIG=${TASKMILL_CONFIG:-$ROOT/config/config.yaml}
  export TASKMILL_API_URL=http://127.0.0.1:$API_PORT
  GIVEN_TOKEN=${AUTH_TOKEN:-}
  AUTH_TOKEN=$(auth_token)
  export AUTH_TOKEN

  API_BIND=127.0.0.1:$API_PORT PROMETHEUS_MULTIPROC_DIR=$RUN_DIR/prometheus-api \
    start_bg api "$VENV/gunicorn" -c python:taskmill_api.gunicorn_conf taskmill_api.wsgi:app
  wait_for "the api's /readyz on :$API_PORT" 60 api \
    curl -sf -o /dev/null "http://127.0.0.1:$API_PORT/readyz"
  start_bg dispatcher "$VENV/python" -m taskmill_dispatcher --metrics-port 9101
  start_bg worker-aaa "$VENV/python" -m taskmill_worker_aaa --metrics-port 9102
  start_bg worker-bbb "$VENV/python" -m taskmill_worker_bbb --metrics-port 9103

  cat <<INFO

Taskmill is up.
  api         http://127.0.0.1:$API_PORT   (/readyz, /metrics, /api/openapi.json)
  dispatcher  metrics http://127.0.0.1:9101/metrics
  workers     aaa metrics :9102, bbb metrics :9103
  Kafka 127.0.0.1:$KAFKA_PORT, FerretDB (MongoDB protocol) 127.0.0.1:$FERRETDB_PORT, MariaDB 127.0.0.1:$MARIADB_PORT
  pids in $RUN_DIR, logs in $LOG_DIR
INFO
  if [ -n "$GIVEN_TOKEN" ]; then
    printf '  token: the AUTH_TOKEN of your environment\n'
  else
    printf '  token: export AUTH_TOKEN=%s   (made once, kept in %s)\n' "$AUTH_TOKEN" "$TOKEN_FILE"
  fi
  printf '  try:   curl -s -X POST -H "Authorization: $AUTH_TOKEN" http://127.0.0.1:%s/api/service_task\n\n' "$API_PORT"
}

stop() {
  stop_bg worker-aaa 30; stop_bg worker-bbb 30; stop_bg dispatcher 30; stop_bg api 30
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
