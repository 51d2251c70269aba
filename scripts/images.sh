#!/usr/bin/env bash
# Build the four service images from their Dockerfiles (the same files, unmodified):
# with Docker when a Docker engine answers, else with podman from Debian. podman needs no
# registry: its base is a stand-in for python:3.11-slim-bookworm (infra/images/
# python-base.Dockerfile) on a Debian bookworm made by debootstrap, rebuilt only when its
# recipe or the host's certificate authorities change.
#
#   scripts/images.sh build [SERVICE...]   build the images (all four by default):
#                                          taskmill-<service>:$TASKMILL_IMAGE_TAG [dev]
#   scripts/images.sh engine               print the engine used: docker or podman
#   scripts/images.sh sizes                print each image's size
#
# The image tests (tests/deploy/test_images.py) run podman's images; on a machine with
# Docker, build for them with TASKMILL_IMAGE_ENGINE=podman.
# With podman, CONTAINERS_CONF is infra/images/containers.conf (see its comments); the
# builds use the host's network (no bridge network is available without iptables).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SERVICES=(api dispatcher worker-aaa worker-bbb)
TAG=${TASKMILL_IMAGE_TAG:-dev}
IMAGES=$LOCAL/images
DEBIAN_IMAGE=localhost/taskmill-debian:bookworm
PYTHON_IMAGE=localhost/taskmill-python:3.11-bookworm
HOST_CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/infra/images/containers.conf}

# TASKMILL_IMAGE_ENGINE=podman|docker chooses; else Docker when its engine answers.
engine() {
  if [ -n "${TASKMILL_IMAGE_ENGINE:-}" ]; then
    echo "$TASKMILL_IMAGE_ENGINE"
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    echo docker
  else
    echo podman
  fi
}

install_podman() {
  command -v podman >/dev/null && command -v debootstrap >/dev/null && return 0
  log "installing podman and debootstrap from Debian (no Docker engine here)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends podman buildah runc slirp4netns netavark \
    aardvark-dns debootstrap uidmap catatonit >/dev/null
}

# The mirror apt already uses (debootstrap fetches bookworm from it).
debian_mirror() {
  local found
  found=$(grep -hoE '^(URIs:|deb) +http[^ ]*/debian/?( |$)' /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}') || true
  echo "${found:-http://deb.debian.org/debian}"
}

# slim ROOTFS: as Debian's -slim images are: no downloaded packages, package lists,
# documentation, manuals or translations, now or from later installs.
slim() {
  cat >"$1/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
  rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* "$1"/usr/share/man/* \
    "$1"/usr/share/info/* "$1"/usr/share/locale/*
  find "$1/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
}

# The stand-in base: Debian bookworm (debootstrap, minbase) imported as an image, then
# python-base.Dockerfile on it with the host's certificate authorities.
podman_base() {
  local stamp=$IMAGES/base.sha want mirror
  mirror=$(debian_mirror)
  want=$( (cat "$ROOT/infra/images/python-base.Dockerfile"; echo "$mirror"; cat "$HOST_CA") |
    sha256sum | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && podman image exists "$PYTHON_IMAGE"; then
    return 0
  fi
  mkdir -p "$IMAGES"
  if ! podman image exists "$DEBIAN_IMAGE"; then
    local rootfs=$IMAGES/rootfs started=$SECONDS
    log "making Debian bookworm with debootstrap from $mirror (a minute or two)"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$IMAGES/debootstrap.log" 2>&1 ||
      die "debootstrap failed; see $IMAGES/debootstrap.log"
    slim "$rootfs"
    tar --numeric-owner -C "$rootfs" -c . | podman import - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$rootfs"
    log "$DEBIAN_IMAGE imported in $((SECONDS - started)) s"
  fi
  local context=$IMAGES/base-context
  rm -rf "$context" && mkdir -p "$context"
  cp "$ROOT/infra/images/python-base.Dockerfile" "$context/Dockerfile"
  cp "$HOST_CA" "$context/host-ca-certificates.crt"
  log "building the stand-in Python base $PYTHON_IMAGE"
  logged "$IMAGES/build-python-base.log" podman build --format docker --network=host --pull=never \
    --build-arg DEBIAN_IMAGE="$DEBIAN_IMAGE" -t "$PYTHON_IMAGE" "$context"
  echo "$want" >"$stamp"
}

# logged LOG CMD...: run CMD with its output in LOG; on failure show the end of it and stop.
logged() {
  local file=$1; shift
  "$@" >"$file" 2>&1 || { tail -n 30 "$file" >&2; die "failed: $* (whole log: $file)"; }
}

build() {
  local which=("$@") service started
  [ ${#which[@]} -gt 0 ] || which=("${SERVICES[@]}")
  mkdir -p "$IMAGES"
  case $(engine) in
    docker)
      for service in "${which[@]}"; do
        started=$SECONDS
        logged "$IMAGES/build-$service.log" \
          docker build -f "$ROOT/services/$service/Dockerfile" -t "taskmill-$service:$TAG" "$ROOT"
        log "taskmill-$service:$TAG built by docker in $((SECONDS - started)) s"
      done ;;
    podman)
      install_podman
      podman_base
      for service in "${which[@]}"; do
        started=$SECONDS
        logged "$IMAGES/build-$service.log" podman build --format docker --network=host --pull=never \
          --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" \
          -f "$ROOT/services/$service/Dockerfile" -t "localhost/taskmill-$service:$TAG" "$ROOT"
        log "taskmill-$service:$TAG built by podman in $((SECONDS - started)) s"
      done
      podman image prune -f --filter until=24h >/dev/null ;;  # build stages of a day ago (newer ones are the cache)
  esac
  sizes "${which[@]}"
}

sizes() {
  local which=("$@") service tool
  [ ${#which[@]} -gt 0 ] || which=("${SERVICES[@]}")
  tool=$(engine)
  for service in "${which[@]}"; do
    printf '  %-28s %s MB\n' "taskmill-$service:$TAG" \
      "$("$tool" image inspect --format '{{.Size}}' "taskmill-$service:$TAG" | awk '{printf "%.0f", $1 / 1e6}')"
  done
}

command=${1:-build}; shift || true
case $command in
  build) build "$@" ;;
  engine) engine ;;
  sizes) sizes "$@" ;;
  *) echo "usage: $0 build [SERVICE...]|engine|sizes [SERVICE...]" >&2; exit 2 ;;
esac
