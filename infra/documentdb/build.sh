#!/usr/bin/env bash
# Build the local task store's engine: Microsoft's DocumentDB PostgreSQL extension (the
# tag FerretDB v2.5.0 is made for) with its extended RUM index access method (the one
# that serves sorts from compound indexes), and the build dependencies Debian 12 lacks
# or has too old (libbson 1.28, pg_cron 1.6, pgvector 0.8), for PostgreSQL 15 from Debian.
#
#   infra/documentdb/build.sh BUILD_DIR      (as root: installs Debian packages and the
#                                            extensions into PostgreSQL 15's own folders)
#
# Sources: the archives of infra/documentdb/sources.txt, from TASKMILL_VENDOR (default
# ../shared/vendor beside the repository) when it has them, checked against their sha256,
# else downloaded from upstream by pinned tag; either way the unpacked tree is checked
# against its pinned hash before anything is built, then infra/documentdb/patches/ are
# applied (each says what it fixes). Cold: about two minutes on 2 cores.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:?usage: build.sh BUILD_DIR}
VENDOR=${TASKMILL_VENDOR:-$HERE/../../../shared/vendor}
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
log() { printf '[taskmill] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Debian packages, pinned so that nothing already installed is upgraded: bookworm-security's
# rum wants a newer postgresql-15 than the one installed, so rum and pcre2 are pinned to
# bookworm's, and the server headers to the server's own version. systemtap-sdt-dev: the
# extended RUM includes PostgreSQL's probes.h.
install_packages() {
  local wanted=(postgresql-15 postgresql-server-dev-15 libpcre2-dev libintelrdfpmath-dev
                postgresql-15-postgis-3 postgresql-15-rum cmake pkg-config systemtap-sdt-dev patch)
  # dpkg-query fails for a package it has never heard of: read its answer whole first
  # (under pipefail, `dpkg-query | grep` would take that failure for "all installed").
  local states; states=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${wanted[@]}" 2>&1 || true)
  grep -vq ' ii ' <<<"$states" || return 0
  log "installing PostgreSQL 15 and DocumentDB's build dependencies from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
  local server; server=$(dpkg-query -W -f='${Version}' postgresql-15)
  apt-get install -y -qq --no-upgrade --no-install-recommends \
    "postgresql-server-dev-15=$server" \
    libpcre2-dev=10.42-1 libpcre2-16-0=10.42-1 libpcre2-32-0=10.42-1 libpcre2-posix3=10.42-1 \
    libintelrdfpmath-dev postgresql-15-postgis-3 postgresql-15-rum=1.3.13-1+b1 \
    cmake pkg-config systemtap-sdt-dev patch >/dev/null
}

# PostgreSQL's libpq-be.h includes gssapi/gssapi.h; installing libkrb5-dev would upgrade
# the krb5 runtime libraries, so only its headers are unpacked into the build folder.
krb5_headers() {
  [ -f "$BUILD/deps/krb5/usr/include/mit-krb5/gssapi/gssapi.h" ] && return 0
  mkdir -p "$BUILD/debs" && rm -f "$BUILD"/debs/*.deb
  (cd "$BUILD/debs" && apt-get download libkrb5-dev krb5-multidev comerr-dev >/dev/null 2>&1 &&
   for f in *.deb; do dpkg -x "$f" "$BUILD/deps/krb5"; done)
}

tree_hash() {
  (cd "$1" && find . -type f -not -path '*/test/*' -not -path '*/tests/*' -print0 |
   LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)
}

# unpack NAME: the checked source tree of NAME in $BUILD/src/NAME.
unpack() {
  local name=$1 url archive_sha tree_sha archive
  read -r _ url archive_sha tree_sha < <(grep "^$name " "$HERE/sources.txt")
  archive=$VENDOR/$name.tar.gz
  if [ -f "$archive" ]; then
    echo "$archive_sha  $archive" | sha256sum -c --quiet - || die "$archive does not match its sha256"
  else
    archive=$BUILD/downloads/$name.tar.gz
    mkdir -p "$BUILD/downloads"
    if [ ! -f "$archive" ]; then
      log "downloading $url ($name.tar.gz is not in $VENDOR)"
      curl -fsSL -o "$archive.part" "$url" && mv "$archive.part" "$archive" ||
        die "cannot download $url: put $name.tar.gz in $VENDOR or point TASKMILL_VENDOR at a folder that has it"
    fi
  fi
  rm -rf "$BUILD/src/$name" && mkdir -p "$BUILD/src/$name"
  tar -xzf "$archive" -C "$BUILD/src/$name" --strip-components=1
  [ "$(tree_hash "$BUILD/src/$name")" = "$tree_sha" ] ||
    die "the unpacked $name is not the pinned source tree (infra/documentdb/sources.txt)"
}

pg_make() {  # pg_make DIR: build and install a PGXS extension
  local copt="-I$BUILD/deps/krb5/usr/include/mit-krb5"
  make -C "$1" -j"$(nproc)" with_llvm=no PG_CONFIG=$PG_CONFIG COPT="$copt" >>"$BUILD/build.log" 2>&1
  make -C "$1" install with_llvm=no PG_CONFIG=$PG_CONFIG COPT="$copt" >>"$BUILD/build.log" 2>&1
}

install_packages
mkdir -p "$BUILD/src" "$BUILD/deps/lib/pkgconfig"
: >"$BUILD/build.log"
krb5_headers
trap 'log "build failed; its output is in $BUILD/build.log"' ERR

# libbson 1.28, static and position-independent (Debian 12's 1.23 lacks BSON_SUBTYPE_SENSITIVE).
unpack mongo-c-driver-1.28.0-libbson
mkdir -p "$BUILD/src/mongo-c-driver-1.28.0-libbson/_build"
(cd "$BUILD/src/mongo-c-driver-1.28.0-libbson/_build" &&
 cmake -DENABLE_MONGOC=OFF -DENABLE_TESTS=OFF -DENABLE_EXAMPLES=OFF -DENABLE_STATIC=ON \
   -DENABLE_SHARED=OFF -DENABLE_MAN_PAGES=OFF -DENABLE_HTML_DOCS=OFF -DCMAKE_C_FLAGS=-fPIC \
   -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$BUILD/deps" .. >>"$BUILD/build.log" 2>&1 &&
 make -j"$(nproc)" install >>"$BUILD/build.log" 2>&1)

# Debian's Intel decimal library, found by DocumentDB through pkg-config.
cat >"$BUILD/deps/lib/pkgconfig/intelmathlib.pc" <<'PC'
Name: intelmathlib
Description: Intel Decimal Floating-Point Math Library (Debian libintelrdfpmath-dev)
Version: 2.0 Update 2
Cflags:
Libs: -l:libbidgcc000.a
PC
export PKG_CONFIG_PATH=$BUILD/deps/lib/pkgconfig

unpack pgvector-0.8.0 && pg_make "$BUILD/src/pgvector-0.8.0"
unpack pg_cron-1.6.3 && pg_make "$BUILD/src/pg_cron-1.6.3"
unpack documentdb-0.106.0-ferretdb-2.5.0
for fix in "$HERE"/patches/*.patch; do  # fixes of our own, each saying what and why
  patch -s -d "$BUILD/src/documentdb-0.106.0-ferretdb-2.5.0" -p1 <"$fix" >>"$BUILD/build.log"
done
for part in pg_documentdb_core pg_documentdb internal/pg_documentdb_extended_rum; do
  pg_make "$BUILD/src/documentdb-0.106.0-ferretdb-2.5.0/$part"
done
log "DocumentDB built and installed into PostgreSQL 15 ($($PG_CONFIG --pkglibdir))"
