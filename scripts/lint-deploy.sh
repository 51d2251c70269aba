#!/usr/bin/env bash
# `make lint-deploy`: validate the Dockerfiles, docker-compose.yml and every Kubernetes
# overlay offline (see scripts/lint_deploy.py). Builds kustomize from the Go module proxy
# the first time (pinned in infra/deploy-tools/go.mod), into .local/bin.
#
#   scripts/lint-deploy.sh [--root DIR]      DIR: another copy of the repository to check
set -euo pipefail
source "$(dirname "$0")/lib.sh"

KUSTOMIZE=$LOCAL/bin/kustomize
TOOLS=$ROOT/infra/deploy-tools

if [ ! -x "$KUSTOMIZE" ] || [ "$TOOLS/go.sum" -nt "$KUSTOMIZE" ]; then
  command -v go >/dev/null || die "go is required to build kustomize"
  log "building kustomize ($(grep -m1 'kustomize/v5 v' "$TOOLS/go.mod" | awk '{print $2}'))"
  mkdir -p "$LOCAL/bin"
  (cd "$TOOLS" && CGO_ENABLED=0 go build -mod=readonly -o "$KUSTOMIZE" sigs.k8s.io/kustomize/kustomize/v5)
fi
cd "$ROOT"
ensure_uv
uv sync --locked --all-packages --quiet
exec uv run --locked python scripts/lint_deploy.py --kustomize "$KUSTOMIZE" "$@"
