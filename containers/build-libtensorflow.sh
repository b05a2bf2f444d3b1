#!/usr/bin/env bash
# Builds libtensorflow (the C library @tensorflow/tfjs-node-gpu binds to) from TensorFlow's source
# with native kernels (SASS) for every GPU the Batch compute environment may offer:
#   T4 sm_75, A10G sm_86, L4 sm_89, H100 sm_90  (plus sm_80 for A100).
# Google's libtensorflow 2.18.0 GPU build (containers/Dockerfile's default) carries SASS for
# sm_60/70/80/89 and only PTX for compute_90, so an H100 JIT-compiles its kernels; an image built
# on this script's output runs natively on all four.
#
#   BUILDER_IMAGE=tensorflow/build:2.18-python3.11@sha256:<digest> containers/build-libtensorflow.sh
#
# then build the worker image with the printed --build-arg values (the tarball must be served over
# https, e.g. from the bucket). Needs Docker and a large x86-64 build host (no GPU: TensorFlow's
# hermetic CUDA toolchain is downloaded by Bazel, checked against the hashes in TensorFlow's
# repository); expect hours on 32 cores with 64+ GB of memory.
#
# BUILDER_IMAGE must be pinned by digest: TensorFlow's SIG Build image for the release (it has the
# clang-18 toolchain and the /dt9 sysroot that `--config=release_gpu_linux` expects). Get the
# digest with `docker buildx imagetools inspect tensorflow/build:2.18-python3.11`.
#
# NOT RUN where this repository is developed (no Docker registry, no GitHub or Google access);
# README "GPU stack" says what was checked and what was not.
set -euo pipefail

TF_VERSION="${TF_VERSION:-2.18.0}"
CAPABILITIES="${CAPABILITIES:-sm_75,sm_80,sm_86,sm_89,sm_90}"
OUT="${OUT:-$PWD/dist}"
BUILDER_IMAGE="${BUILDER_IMAGE:-}"

if [[ ! "${BUILDER_IMAGE}" =~ @sha256:[0-9a-f]{64}$ ]]; then
  echo "build-libtensorflow: BUILDER_IMAGE must be an image pinned by digest (…@sha256:<64 hex>), got '${BUILDER_IMAGE}'" >&2
  exit 2
fi

name="libtensorflow-gpu-linux-x86_64-${TF_VERSION}-${CAPABILITIES//,/-}.tar.gz"
mkdir -p "${OUT}"
docker run --rm -v "${OUT}:/out" -e TF_VERSION="${TF_VERSION}" -e CAPABILITIES="${CAPABILITIES}" -e NAME="${name}" "${BUILDER_IMAGE}" bash -euo pipefail -c '
  git clone --depth 1 --branch "v${TF_VERSION}" https://github.com/tensorflow/tensorflow /src
  cd /src
  git rev-parse HEAD > "/out/${NAME}.commit"
  bazel build --config=release_gpu_linux \
    --repo_env=HERMETIC_CUDA_COMPUTE_CAPABILITIES="${CAPABILITIES}" \
    //tensorflow/tools/lib_package:libtensorflow
  cp bazel-bin/tensorflow/tools/lib_package/libtensorflow.tar.gz "/out/${NAME}"
'
sha256=$(sha256sum "${OUT}/${name}" | cut -d' ' -f1)
echo "${sha256}  ${name}" > "${OUT}/${name}.sha256"
echo "built ${OUT}/${name} from tensorflow $(cat "${OUT}/${name}.commit") for ${CAPABILITIES}"
echo "docker build -f containers/Dockerfile \\"
echo "  --build-arg LIBTENSORFLOW_URL=https://<where you host it>/${name} \\"
echo "  --build-arg LIBTENSORFLOW_SHA256=${sha256} \\"
echo "  --build-arg LIBTENSORFLOW_VERSION=${TF_VERSION} -t emo-dir-worker ."
