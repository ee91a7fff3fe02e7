# CPU image of `medclass serve`. Build, run and deploy: docs/deployment.md.
#   docker build -t medclass:cpu .
#   docker run --rm -p 8000:8000 -v "$PWD/runs:/models:ro" -v medclass-data:/data medclass:cpu
ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtual environment holding torch (CPU) and medclass[serve]; only the venv goes on
FROM ${PYTHON_IMAGE} AS build
# Within pyproject's ranges (torch>=2.2,<3; torchvision>=0.17,<1); change both together, they are released in pairs.
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
# The CPU wheels: PyPI's Linux torch pulls in the CUDA libraries (several GB) that a CPU host never loads.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
# Pinned for the next install: should a dependency ask for another torch, pip then fails here instead of quietly
# replacing the CPU build with PyPI's CUDA one (==X matches the index's X+cpu wheels).
RUN printf 'torch==%s\ntorchvision==%s\n' "$TORCH_VERSION" "$TORCHVISION_VERSION" > /opt/torch-pins.txt
WORKDIR /src
# Only what the package build reads; .dockerignore keeps runs, venvs and audit logs out of the context.
COPY pyproject.toml README.md ./
COPY src ./src
# Not editable: the runtime stage copies the venv, not /src. onnxruntime (--backend onnx) is a core dependency.
# psycopg[binary]: the driver of a postgresql+psycopg:// audit database; it bundles libpq, so no apt packages.
RUN pip install -c /opt/torch-pins.txt ".[serve]" "psycopg[binary]>=3.1"

# ---- runtime
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="medclass serve (CPU)" \
      org.opencontainers.image.description="REST API over medclass runs; a research tool, not a medical device" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed uid/gid, so a host folder for /data can be prepared with `chown 10001:10001 DIR`.
RUN groupadd --system --gid 10001 medclass \
    && useradd --system --uid 10001 --gid medclass --create-home --home-dir /home/medclass medclass \
    && mkdir -p /models /data \
    && chown medclass:medclass /data
COPY --from=build /opt/venv /opt/venv
# Threads: torch sizes its pool from the host's cores, not the container's CPU limit, and a pool larger than the
# limit is throttled. 2 suits a 2-CPU container; set these to the CPUs you give each replica (docs/deployment.md).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    OMP_NUM_THREADS=2 \
    MKL_NUM_THREADS=2 \
    OPENBLAS_NUM_THREADS=2 \
    MEDCLASS_AUDIT_DB=/data/audit.sqlite
USER medclass
# Relative paths (e.g. `medclass log audit.sqlite`) then land on the data volume.
WORKDIR /data
# The audit log lives here; an anonymous volume keeps it across restarts of one container if nothing is mounted.
# Runs are mounted read-only at /models: no VOLUME for them, an empty one would only hide a forgotten mount.
VOLUME ["/data"]
EXPOSE 8000
# No curl in slim: ask /health with Python. Non-2xx (503 while models load or after a failed load) raises: unhealthy.
# start-period leaves time for loading large models before failures count.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# ENTRYPOINT is the CLI, so `docker run IMAGE log /data/audit.sqlite` also works; to change a serve flag, give the
# whole serve command. No API key here: pass MEDCLASS_API_KEY at run time (from a secret). The audit log moves to
# PostgreSQL with -e MEDCLASS_AUDIT_DB=postgresql+psycopg://... (no need to repeat the command).
ENTRYPOINT ["medclass"]
CMD ["serve", "--models-dir", "/models", "--host", "0.0.0.0", "--port", "8000"]
