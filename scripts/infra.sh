#!/usr/bin/env bash
# Install, start and stop the real infrastructure Taskmill runs on, without Docker:
# Apache Kafka (KRaft, from Maven Central jars), the task store (FerretDB v2, the MongoDB
# wire protocol, built from the Go module proxy, on PostgreSQL 15 from Debian with the
# DocumentDB extension built by infra/documentdb/build.sh) and MariaDB (Debian), all on
# 127.0.0.1 (PostgreSQL on a Unix socket only); `install` also installs Chromium and
# ChromeDriver (Debian) for the dashboard's browser tests.
#
#   scripts/infra.sh install          fetch and build what is missing (cached in .local/,
#                                     Debian packages with apt)
#   scripts/infra.sh start            start the three servers and wait until they answer,
#                                     then load the sample data
#   scripts/infra.sh stop             stop them (data stays in .local/data)
#   scripts/infra.sh start|stop|kill SERVER...
#                                     only these (kafka, ferretdb, mariadb, postgres);
#                                     kill is SIGKILL; starting ferretdb starts postgres
#   scripts/infra.sh env              print the addresses as shell assignments
#   scripts/infra.sh psql ARG...      psql as the store's PostgreSQL admin (unaligned, e.g.
#                                     -c 'SELECT …'), on its socket
#
# Ports come from KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_CONTAINER_PORT (the listener for
# containers, see infra/kafka/server.properties.in), FERRETDB_PORT and MARIADB_PORT, and
# pids, logs and data from TASKMILL_STATE (default .local): the fault tests run private
# servers that way.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

KAFKA_LIBS=$LOCAL/kafka/libs
FERRETDB_BIN=$LOCAL/bin/ferretdb
MARIADB_SOCKET=$RUN_DIR/mariadb.sock
PG_BIN=/usr/lib/postgresql/15/bin   # DocumentDB is built for PostgreSQL 15
DOCUMENTDB_BUILD=$LOCAL/documentdb
PG_SOCKET_DIR=$RUN_DIR/postgres
POSTGRES_PORT=${POSTGRES_PORT:-5432}   # names the socket file; PostgreSQL has no TCP listener
MYSQL_PASSWORD_FILE=$LOCAL/mysql-password
PY=$ROOT/.venv/bin/python

install_python() {
  ensure_uv
  (cd "$ROOT" && uv sync --locked --all-packages --quiet)
}

# The jars of infra/kafka/pom.xml, fetched again when it changes (a new Kafka version).
install_kafka() {
  local want; want=$(sha256sum "$ROOT/infra/kafka/pom.xml" | cut -c1-16)
  [ "$(cat "$KAFKA_LIBS/.complete" 2>/dev/null)" = "$want" ] && return 0
  command -v java >/dev/null || die "java (17+) is required for Kafka"
  log "resolving Kafka jars from Maven Central into $KAFKA_LIBS"
  rm -rf "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/infra/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS"
  echo "$want" >"$KAFKA_LIBS/.complete"
}

install_ferretdb() {
  local stamp=$LOCAL/bin/ferretdb.src-sha
  local want; want=$(cat "$ROOT"/infra/ferretdb/{go.mod,go.sum,*.go} | sha256sum | cut -c1-16)
  [ -x "$FERRETDB_BIN" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  command -v go >/dev/null || die "go is required to build FerretDB"
  log "building FerretDB v2 from the Go module proxy into $FERRETDB_BIN"
  mkdir -p "$LOCAL/bin"
  (cd "$ROOT/infra/ferretdb" && CGO_ENABLED=0 go build -mod=readonly -o "$FERRETDB_BIN" .)
  echo "$want" >"$stamp"
}

# PostgreSQL 15 with DocumentDB, rebuilt when its sources, recipe or patches change, or when
# PostgreSQL's folders lack it (a fresh machine with an old .local/).
install_documentdb() {
  local stamp=$DOCUMENTDB_BUILD/installed.sha
  local want; want=$(cat "$ROOT"/infra/documentdb/{sources.txt,build.sh,patches/*} | sha256sum | cut -c1-16)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x "$PG_BIN/postgres" ] &&
    [ -f /usr/share/postgresql/15/extension/documentdb_extended_rum.control ] && return 0
  log "building DocumentDB for PostgreSQL 15 into $DOCUMENTDB_BUILD (about two minutes)"
  "$ROOT/infra/documentdb/build.sh" "$DOCUMENTDB_BUILD"
  echo "$want" >"$stamp"
}

# The dashboard's browser tests drive Debian's Chromium through its ChromeDriver (Selenium
# is told where both are: it downloads nothing).
install_browser() {
  command -v chromium >/dev/null && command -v chromedriver >/dev/null && return 0
  log "installing Chromium and ChromeDriver from Debian (the dashboard's browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
}

install_mariadb() {
  command -v mariadbd >/dev/null && command -v mariadb >/dev/null && return 0
  log "installing MariaDB from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mariadb-server mariadb-client >/dev/null
}

start_kafka() {
  local dir=$DATA_DIR/kafka props=$RUN_DIR/kafka.properties
  sed -e "s|@LOG_DIR@|$dir|" -e "s|@PORT@|$KAFKA_PORT|" -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|" \
    -e "s|@CONTAINER_PORT@|$KAFKA_CONTAINER_PORT|" \
    "$ROOT/infra/kafka/server.properties.in" >"$props"
  if [ ! -f "$dir/meta.properties" ]; then
    mkdir -p "$dir"
    local cluster_id; cluster_id=$(java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid)
    java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$props" >/dev/null
  fi
  start_bg kafka java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.xml" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$props"
}

# PostgreSQL refuses to run as root; under root it runs as `postgres` (setpriv execs, so
# the recorded pid is PostgreSQL's own).
AS_POSTGRES=()
[ "$(id -u)" = 0 ] && AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups)
psql_admin() { "$PG_BIN/psql" -h "$PG_SOCKET_DIR" -p "$POSTGRES_PORT" -U postgres -d postgres -qAt "$@"; }

# The cluster includes the settings of infra/documentdb/postgresql.conf.in, rendered at
# every start (so a changed setting applies at the next start).
start_postgres() {
  local dir=$DATA_DIR/postgres
  mkdir -p "$dir" "$PG_SOCKET_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir" "$PG_SOCKET_DIR" && chmod 700 "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    "${AS_POSTGRES[@]}" "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      >"$LOG_DIR/postgres-initdb.log" 2>&1 || die "initdb failed; see $LOG_DIR/postgres-initdb.log"
  fi
  sed -e "s|@SOCKET_DIR@|$PG_SOCKET_DIR|g" -e "s|@PORT@|$POSTGRES_PORT|g" \
    "$ROOT/infra/documentdb/postgresql.conf.in" >"$dir/taskmill.conf"
  grep -q "^include 'taskmill.conf'" "$dir/postgresql.conf" || echo "include 'taskmill.conf'" >>"$dir/postgresql.conf"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir/taskmill.conf"
  start_bg postgres "${AS_POSTGRES[@]}" "$PG_BIN/postgres" -D "$dir"
}

postgres_ready() { "$PG_BIN/pg_isready" -q -h "$PG_SOCKET_DIR" -p "$POSTGRES_PORT"; }

# DocumentDB lives in the `postgres` database (pg_cron, which it needs, runs in one only),
# and pg_stat_statements beside it (bench.profile reads what the store's commands cost).
create_documentdb() {
  psql_admin -v ON_ERROR_STOP=1 -c 'SET client_min_messages = warning' \
    -c 'CREATE EXTENSION IF NOT EXISTS documentdb CASCADE' \
    -c 'CREATE EXTENSION IF NOT EXISTS documentdb_extended_rum' \
    -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' >/dev/null ||
    die "cannot create the DocumentDB extensions; see $LOG_DIR/postgres.log"
}

start_ferretdb() {
  if ! is_running postgres; then
    start_postgres
    wait_for "PostgreSQL on $PG_SOCKET_DIR" 60 postgres postgres_ready
  fi
  create_documentdb
  start_bg ferretdb env DO_NOT_TRACK=1 "$FERRETDB_BIN" -listen "127.0.0.1:$FERRETDB_PORT" \
    -state-dir "$DATA_DIR/ferretdb" \
    -postgresql-url "postgres://postgres@/postgres?host=$PG_SOCKET_DIR&port=$POSTGRES_PORT" \
    ${FERRETDB_PPROF:+-pprof "$FERRETDB_PPROF"}
}

start_mariadb() {
  local dir=$DATA_DIR/mariadb
  if [ ! -d "$dir/mysql" ]; then
    mariadb-install-db --datadir="$dir" --user=root --auth-root-authentication-method=socket \
      --skip-test-db >"$LOG_DIR/mariadb-install.log" 2>&1
  fi
  start_bg mariadb mariadbd --no-defaults --datadir="$dir" --user=root \
    --socket="$MARIADB_SOCKET" --port="$MARIADB_PORT" --bind-address=127.0.0.1 \
    --pid-file="$RUN_DIR/mariadbd.pid" --log-error="$LOG_DIR/mariadb-server.log" \
    --innodb-buffer-pool-size=64M
}

kafka_ready() {
  "$PY" - "$KAFKA_PORT" <<'PY'
import sys
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}"}).list_topics(timeout=2)
PY
}

ferretdb_ready() {
  "$PY" -c "import pymongo,sys; pymongo.MongoClient('127.0.0.1', int(sys.argv[1]), serverSelectionTimeoutMS=1000).admin.command('ping')" "$FERRETDB_PORT"
}

mariadb_ready() { mariadb-admin --no-defaults --socket="$MARIADB_SOCKET" ping; }

mysql_password() {
  [ -f "$MYSQL_PASSWORD_FILE" ] || (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(18))' >"$MYSQL_PASSWORD_FILE")
  cat "$MYSQL_PASSWORD_FILE"
}

# The application's account on MariaDB: read-only on the sample database.
setup_mariadb_user() {
  local password; password=$(mysql_password)
  mariadb --no-defaults --socket="$MARIADB_SOCKET" <<SQL
CREATE DATABASE IF NOT EXISTS taskmill_sample CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'taskmill'@'127.0.0.1' IDENTIFIED BY '$password';
ALTER USER 'taskmill'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT SELECT ON taskmill_sample.* TO 'taskmill'@'127.0.0.1';
SQL
}

# Load the sample data the example workers read (idempotent).
load_sample_data() {
  "$PY" "$ROOT/scripts/sample_data.py" mysql | mariadb --no-defaults --socket="$MARIADB_SOCKET"
  SOURCE_MONGO_URI=mongodb://127.0.0.1:$FERRETDB_PORT/ SOURCE_MONGO_DBNAME=taskmill_sample \
    "$PY" "$ROOT/scripts/sample_data.py" source mongo
  log "sample data loaded (MongoDB taskmill_sample.users, MariaDB taskmill_sample.*)"
}

print_env() {
  cat <<ENV
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
export KAFKA_CONTAINER_SERVERS=10.0.2.2:$KAFKA_CONTAINER_PORT
export MONGO_URI=mongodb://127.0.0.1:$FERRETDB_PORT/
export SOURCE_MONGO_URI=mongodb://127.0.0.1:$FERRETDB_PORT/
export SOURCE_MYSQL_HOST=127.0.0.1
export SOURCE_MYSQL_PORT=$MARIADB_PORT
export SOURCE_MYSQL_USER=taskmill
export SOURCE_MYSQL_PASSWORD=$(mysql_password)
export TASKMILL_MARIADB_SOCKET=$MARIADB_SOCKET
export TASKMILL_POSTGRES_SOCKET=$PG_SOCKET_DIR
ENV
}

SERVERS=(kafka ferretdb mariadb postgres)

# start_server NAME: start one server and wait until it answers.
start_server() {
  case $1 in
    kafka) start_kafka; wait_for "Kafka on :$KAFKA_PORT" 120 kafka kafka_ready ;;
    ferretdb) start_ferretdb; wait_for "FerretDB on :$FERRETDB_PORT" 60 ferretdb ferretdb_ready ;;
    mariadb) start_mariadb; wait_for "MariaDB on :$MARIADB_PORT" 60 mariadb mariadb_ready ;;
    postgres) start_postgres; wait_for "PostgreSQL on $PG_SOCKET_DIR" 60 postgres postgres_ready ;;
    *) die "unknown server $1 (one of ${SERVERS[*]})" ;;
  esac
}

stop_server() {
  case $1 in
    kafka) stop_bg kafka 30 ;;
    ferretdb) stop_bg ferretdb 10 ;;
    mariadb) stop_bg mariadb 30 ;;
    postgres) stop_bg postgres 30 ;;
    *) die "unknown server $1 (one of ${SERVERS[*]})" ;;
  esac
}

kill_server() {
  local pid_file=$RUN_DIR/$1.pid
  [ -f "$pid_file" ] || return 0
  kill -KILL "$(cat "$pid_file")" 2>/dev/null || true
  rm -f "$pid_file"
  log "$1 killed"
}

command=${1:-}; shift || true
case $command in
  install)
    install_python; install_kafka; install_documentdb; install_ferretdb; install_mariadb; install_browser ;;
  start)
    if [ $# -gt 0 ]; then
      for server in "$@"; do start_server "$server"; done
      exit 0
    fi
    start_kafka; start_ferretdb; start_mariadb
    wait_for "Kafka on :$KAFKA_PORT" 120 kafka kafka_ready
    wait_for "FerretDB on :$FERRETDB_PORT" 60 ferretdb ferretdb_ready
    wait_for "MariaDB on :$MARIADB_PORT" 60 mariadb mariadb_ready
    setup_mariadb_user
    load_sample_data
    log "infrastructure ready: Kafka 127.0.0.1:$KAFKA_PORT, FerretDB 127.0.0.1:$FERRETDB_PORT, MariaDB 127.0.0.1:$MARIADB_PORT" ;;
  stop)
    [ $# -gt 0 ] || set -- mariadb ferretdb postgres kafka
    for server in "$@"; do stop_server "$server"; done ;;
  kill)
    for server in "$@"; do kill_server "$server"; done ;;
  env)
    print_env ;;
  psql)
    psql_admin -w "$@" ;;
  *)
    echo "usage: $0 install|start [SERVER...]|stop [SERVER...]|kill SERVER...|env|psql ARG..." >&2; exit 2 ;;
esac
