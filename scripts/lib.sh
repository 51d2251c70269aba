# Helpers shared by the stack scripts: paths, background processes, waiting.
# Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL=${TASKMILL_LOCAL:-$ROOT/.local}
# Where running servers keep pids, logs and data; tests point it elsewhere to run
# private servers beside the shared ones (with other ports).
STATE=${TASKMILL_STATE:-$LOCAL}
RUN_DIR=$STATE/run
LOG_DIR=$STATE/log
DATA_DIR=$STATE/data
mkdir -p "$RUN_DIR" "$LOG_DIR" "$DATA_DIR"

KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_CONTAINER_PORT=${KAFKA_CONTAINER_PORT:-9094}
FERRETDB_PORT=${FERRETDB_PORT:-27017}
MARIADB_PORT=${MARIADB_PORT:-3306}
API_PORT=${API_PORT:-8000}

log() { printf '[taskmill] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ensure_uv: uv at the version the repository pins (.uv-version), from PyPI if missing.
ensure_uv() {
  command -v uv >/dev/null || python3 -m pip install --quiet "uv==$(cat "$ROOT/.uv-version")"
}

# is_running NAME: the process recorded in NAME's pid file is alive.
is_running() {
  local pid_file=$RUN_DIR/$1.pid
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

# start_bg NAME CMD...: run CMD detached, pid in .local/run, output in .local/log.
start_bg() {
  local name=$1; shift
  if is_running "$name"; then
    log "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"
    return 0
  fi
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  log "$name started (pid $!, log $LOG_DIR/$name.log)"
}

# stop_bg NAME [GRACE_S]: SIGTERM, wait, then SIGKILL.
stop_bg() {
  local name=$1 grace=${2:-20} pid_file=$RUN_DIR/$1.pid pid
  [ -f "$pid_file" ] || return 0
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((grace * 10))); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop in ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "$name stopped"
  fi
  rm -f "$pid_file"
}

# wait_for DESCRIPTION TIMEOUT_S NAME CMD...: poll CMD until it succeeds, while
# process NAME stays alive.
wait_for() {
  local what=$1 timeout=$2 name=$3; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$name" ] && ! is_running "$name"; then
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      die "$name exited before $what; its log is $LOG_DIR/$name.log"
    fi
    [ $SECONDS -lt $deadline ] || die "timed out after ${timeout}s waiting for $what"
    sleep 0.2
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
