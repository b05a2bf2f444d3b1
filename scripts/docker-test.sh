#!/usr/bin/env bash
# `npm run test:docker`: the Docker tests alone, for real. Builds the images first
# (scripts/docker-images.sh: the local base once, the worker from this tree), then runs the test
# files whose path contains `docker` with EMO_DIR_REQUIRE_DOCKER=1, so a missing engine or image
# fails them instead of skipping. Needs a running engine: `eval "$(bash scripts/docker-engine.sh start)"`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/docker-lib.sh
source scripts/docker-lib.sh

docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed); start one with: eval \"\$(bash scripts/docker-engine.sh start)\""
started=$SECONDS
bash scripts/docker-images.sh
echo "test:docker: images ready in $((SECONDS - started)) s" >&2
started=$SECONDS
status=0
EMO_DIR_REQUIRE_DOCKER=1 node scripts/run-tests.mjs docker "$@" || status=$?
echo "test:docker: Docker tests took $((SECONDS - started)) s" >&2
exit "$status"
