#!/usr/bin/env bash
# Start and stop Taskmill's own processes against the infrastructure of infra.sh:
# the api (gunicorn), the dispatcher and one process of each worker.
#
#   scripts/app.sh start     start them in the background, return once /readyz is 200
#   scripts/app.sh stop      stop them (SIGTERM, then SIGKILL after the grace period)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

TOKENS=$LOCAL/tokens
VENV=$ROOT/.venv/bin
MADE=()  # the tokens this start made (printed once)

# local_token VAR FILE: export VAR, the token in the environment, else the one kept in
# FILE, else a new one (kept there, owner-only, and printed once).
local_token() {
  local var=$1 file=$2
  if [ -z "${!var:-}" ]; then
    if [ ! -f "$file" ]; then
      mkdir -p "$(dirname "$file")"
      (umask 077; "$VENV/python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$file")
      MADE+=("$var")
    fi
    printf -v "$var" '%s' "$(cat "$file")"
  fi
  export "${var?}"
}

start() {
  eval "$("$ROOT/scripts/infra.sh" env)"
  export TASKMILL_CONFIG=${TASKMILL_CONFIG:-$ROOT/config/config.yaml}
  export TASKMILL_API_URL=http://127.0.0.1:$API_PORT
  # The shipped config's tokens: AUTH_TOKEN (admin), CLIENT_TOKEN, and a worker token per
  # service. The api gets them all (it checks them); each worker only its own.
  local_token AUTH_TOKEN "$LOCAL/auth-token"
  local var
  for var in CLIENT_TOKEN WORKER_TOKEN_AAA WORKER_TOKEN_BBB; do
    local_token "$var" "$TOKENS/$var"
  done

  API_BIND=127.0.0.1:$API_PORT PROMETHEUS_MULTIPROC_DIR=$RUN_DIR/prometheus-api \
    start_bg api "$VENV/gunicorn" -c python:taskmill_api.gunicorn_conf taskmill_api.wsgi:app
  wait_for "the api's /readyz on :$API_PORT" 60 api \
    curl -sf -o /dev/null "http://127.0.0.1:$API_PORT/readyz"
  local others=(-u AUTH_TOKEN -u CLIENT_TOKEN -u WORKER_TOKEN_AAA -u WORKER_TOKEN_BBB)
  start_bg dispatcher env "${others[@]}" "$VENV/python" -m taskmill_dispatcher --metrics-port 9101
  start_bg worker-aaa env "${others[@]}" WORKER_TOKEN="$WORKER_TOKEN_AAA" \
    "$VENV/python" -m taskmill_worker_aaa --metrics-port 9102
  start_bg worker-bbb env "${others[@]}" WORKER_TOKEN="$WORKER_TOKEN_BBB" \
    "$VENV/python" -m taskmill_worker_bbb --metrics-port 9103

  cat <<INFO

Taskmill is up.
  api         http://127.0.0.1:$API_PORT   (/readyz, /metrics, /api/openapi.json)
  dashboard   http://127.0.0.1:$API_PORT/ui   (sign in with CLIENT_TOKEN or AUTH_TOKEN)
  dispatcher  metrics http://127.0.0.1:9101/metrics
  workers     aaa metrics :9102, bbb metrics :9103
  Kafka 127.0.0.1:$KAFKA_PORT, FerretDB (MongoDB protocol) 127.0.0.1:$FERRETDB_PORT, MariaDB 127.0.0.1:$MARIADB_PORT
  pids in $RUN_DIR, logs in $LOG_DIR
  tokens: AUTH_TOKEN (admin) in $LOCAL/auth-token; CLIENT_TOKEN (client), WORKER_TOKEN_AAA
          and WORKER_TOKEN_BBB (workers) in $TOKENS/ (or the ones of your environment)
INFO
  for var in "${MADE[@]}"; do
    printf '  made:  export %s=%s\n' "$var" "${!var}"
  done
  [ -f "$TOKENS/CLIENT_TOKEN" ] && printf '  try:   export CLIENT_TOKEN=$(cat %s/CLIENT_TOKEN)\n' "$TOKENS"
  printf '         curl -s -X POST -H "Authorization: $CLIENT_TOKEN" http://127.0.0.1:%s/api/service_task\n\n' "$API_PORT"
}

stop() {
  stop_bg worker-aaa 30; stop_bg worker-bbb 30; stop_bg dispatcher 30; stop_bg api 30
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
