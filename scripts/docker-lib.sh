# Shared by scripts/docker-*.sh (sourced): image names, the worker's source hash, a BuildKit build.
# The tests compute the same names and hash (test/docker/images.ts); change both together.

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

# The local base: Debian bookworm plus this host's Node (its version in the tag, so a new Node
# makes a new base).
base_image() {
  echo "emo-dir-base:bookworm-node$(node -p process.versions.node)"
}

worker_image() {
  echo "emo-dir-worker:cpu"
}

# sha256 over `sha256sum` lines of the files the worker image is built from, in byte order.
source_hash() {
  { find src -type f; printf '%s\n' package.json package-lock.json tsconfig.json containers/Dockerfile.cpu containers/worker.ts; } \
    | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
}

# `build_image <context> [docker build options...]` with BuildKit (only the stages the build
# arguments select are built) on the host network (a RUN step gets no bridge here). BuildKit
# comes from the buildx plugin, or from a docker client older than 23 (Debian bookworm's
# docker.io) with DOCKER_BUILDKIT=1; the 23+ client without buildx only has the legacy builder.
build_image() {
  local context=$1
  shift
  if docker buildx version >/dev/null 2>&1; then
    docker buildx build --load --network host "$@" "$context"
    return
  fi
  local client major
  for client in docker /usr/bin/docker; do
    command -v "$client" >/dev/null 2>&1 || continue
    major=$("$client" --version | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
    if [ -n "$major" ] && [ "$major" -lt 23 ]; then
      DOCKER_BUILDKIT=1 "$client" build --network host "$@" "$context"
      return
    fi
  done
  die "building needs BuildKit: the buildx plugin (Debian trixie: docker-buildx) or a docker client older than 23 (Debian bookworm: docker.io)"
}
