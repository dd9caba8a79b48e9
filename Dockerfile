# photo-ingest: the production image.
#
# Two stages. The builder makes the project's wheel and a virtual environment holding it and its runtime
# dependencies at the exact versions and hashes of config/requirements.lock (`make lock`). The runtime stage
# copies only that environment onto the slim Python base: no compiler, no build tools, no pip inside it.
#
#   docker build -t photo-ingest .
#   docker run --rm --read-only --tmpfs /tmp --env-file config/example.env photo-ingest          # the worker
#   docker run --rm --read-only --tmpfs /tmp --env-file config/example.env photo-ingest check    # preflight
#
# `python -m venv` and `python -m pip` are used rather than a system `pip install`, so the same file builds on
# the official image and on a Debian base whose system Python is externally managed (`make image-check`).

# Architecture-neutral: the digest is the tag's multi-platform index, every wheel in the lock exists for x86_64 and
# aarch64 (manylinux), and nothing below names an architecture, so `--platform linux/arm64` builds a Graviton image
# (docs/deploy.md, "arm64").
# The base, pinned by digest: a tag moves under you, a digest does not. To take a newer base (a Python patch
# release, Debian security updates), read the tag's current index digest with
# `docker buildx imagetools inspect python:3.11-slim-bookworm` (or `crane digest python:3.11-slim-bookworm`),
# put it here, and run `make image-check`. That check builds on a local stand-in of the base, passed as
# `--build-arg BASE_IMAGE=...`, since it cannot pull.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# Build tools at fixed versions, in their own environment that never reaches the runtime stage.
RUN python -m venv /opt/build \
    && /opt/build/bin/python -m pip install "setuptools==80.9.0" "wheel==0.45.1"

# pyproject.toml names README.md as the long description; `README.m[d]` copies it when present and does not
# fail the build when it is not (setuptools then builds the wheel without one).
COPY pyproject.toml README.m[d] ./
COPY service/ service/
RUN /opt/build/bin/python -m pip wheel --no-build-isolation --no-deps --wheel-dir /wheels .

# Released wheels only (nothing compiles), each checked against the lock's hashes, then the project's own wheel
# without its dependencies (they are all in the lock); pip and setuptools then leave the environment, since
# nothing is installed at run time. pip still byte-compiles what it installs, so a read-only root filesystem
# costs no start-up time.
COPY config/requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --require-hashes --only-binary=:all: --no-deps -r /tmp/requirements.lock \
    && /opt/venv/bin/python -m pip install --no-deps --no-index /wheels/*.whl \
    && /opt/venv/bin/python -m pip uninstall --yes pip setuptools


FROM ${BASE_IMAGE}

# The release, pyproject.toml's `version`, passed by `make image-check` (and your build: --build-arg
# VERSION=$(make -s print-version)); `photo-ingest --version` in the image reads the same pyproject.
ARG VERSION=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.title="photo-ingest" \
      org.opencontainers.image.description="S3 -> SQS -> DynamoDB ingest worker" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH="/opt/venv/bin:${PATH}"

WORKDIR /app

# A fixed numeric uid/gid, so `runAsNonRoot`-style policies and the task definition's `user` can name it.
RUN groupadd --gid 10001 photo-ingest \
    && useradd --uid 10001 --gid photo-ingest --no-create-home --no-log-init --home-dir /nonexistent \
       --shell /usr/sbin/nologin photo-ingest

COPY --from=builder /opt/venv /opt/venv

# The root filesystem may be read-only: nothing in the image is writable by the worker (/app, its working
# directory, belongs to root). The only file it writes is the heartbeat, HEALTH_FILE=/tmp/photo-ingest.health,
# and /tmp is a tmpfs (`docker run --tmpfs /tmp`) or, on Fargate, where tmpfs is not offered, an ephemeral
# bind mount. ECS copies a VOLUME's content and mode into a bind mount at the same path, so that mount keeps
# /tmp's mode 1777 and the non-root user can write its heartbeat there.
VOLUME ["/tmp"]
USER 10001:10001

STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-I", "-m", "service.ops.liveness"]

# Exec form: photo-ingest is PID 1 and receives SIGTERM itself; the worker drains, then exits 0.
ENTRYPOINT ["photo-ingest"]
CMD ["run"]
