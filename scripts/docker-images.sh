#!/usr/bin/env bash
# Builds the images the Docker tests run, on a machine that reaches no image registry:
#   1. the base, emo-dir-base:bookworm-node<version>: Debian bookworm from Debian's mirror
#      (`debootstrap --variant=minbase`) with this host's `node` binary copied in, imported with
#      `docker import`. Built once; --rebuild-base builds it again.
#   2. the worker, emo-dir-worker:cpu: containers/Dockerfile.cpu itself, on that base
#      (NODE_IMAGE) with node_modules installed here on the host from package-lock.json
#      (DEPS_FROM=context), because inside a build the npm registry's TLS chain is not trusted.
#      Labelled with a hash of its sources; the tests refuse an image built from other sources.
# Containers and builds use the host network only (the engine may run with --bridge=none).
#
# usage: scripts/docker-images.sh [--rebuild-base]     (needs a running engine and root for debootstrap)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/docker-lib.sh
source scripts/docker-lib.sh

rebuild_base=false
for arg in "$@"; do
  case "$arg" in
    --rebuild-base) rebuild_base=true ;;
    *) echo "usage: $0 [--rebuild-base]" >&2; exit 2 ;;
  esac
done

docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed); start one: bash scripts/docker-engine.sh start"

base=$(base_image)
worker=$(worker_image)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/emo-dir-images.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

started=$SECONDS
if $rebuild_base || ! docker image inspect "$base" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap)"
  mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  echo "docker-images: debootstrap --variant=minbase bookworm from $mirror" >&2
  debootstrap --variant=minbase bookworm "$scratch/rootfs" "$mirror" >"$scratch/debootstrap.log" 2>&1 \
    || { tail -20 "$scratch/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # Node from this host (a single binary; libstdc++ and libgcc come with minbase's apt).
  install -D -m 0755 "$(command -v node)" "$scratch/rootfs/usr/local/bin/node"
  rm -rf "$scratch/rootfs/var/cache/apt/archives/"*.deb "$scratch/rootfs/var/lib/apt/lists/"*
  tar -C "$scratch/rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$base" >/dev/null
  rm -rf "$scratch/rootfs"
  echo "docker-images: built $base in $((SECONDS - started)) s" >&2
else
  echo "docker-images: $base is there" >&2
fi

# The worker's build context: exactly what Dockerfile.cpu copies (its allowlist), plus a
# production node_modules. The Dockerfile is copied into the context without its .dockerignore,
# which (rightly, for users) keeps node_modules out of a context.
step=$SECONDS
context="$scratch/context"
mkdir -p "$context/containers"
cp package.json package-lock.json tsconfig.json "$context/"
cp -R src "$context/src"
cp containers/worker.ts containers/Dockerfile.cpu "$context/containers/"
(cd "$context" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >&2)
# tfjs-node(-gpu) need libtensorflow, which their install scripts download: not here. Without them
# the engine picks WASM (src/engine/backend.ts).
rm -rf "$context/node_modules/@tensorflow/tfjs-node" "$context/node_modules/@tensorflow/tfjs-node-gpu"
echo "docker-images: context with production node_modules in $((SECONDS - step)) s" >&2

step=$SECONDS
build_image "$context" -f "$context/containers/Dockerfile.cpu" -t "$worker" \
  --build-arg NODE_IMAGE="$base" --build-arg DEPS_FROM=context \
  --label "org.emo-dir.source-hash=$(source_hash)"
echo "docker-images: built $worker in $((SECONDS - step)) s (all images: $((SECONDS - started)) s)" >&2
