# Multi-stage image of the emotion service with the default model inside.
#   docker build -t emotion-service:local .
#   docker run --rm -p 8080:8080 emotion-service:local
# Build stage: Swift toolchain + the -dev packages the package links against.
# Base images are pinned to exact releases (the toolchain and Debian point release this project is
# built and tested with); Deploy/verify-image.sh assembles the runtime stage without Docker.
FROM swift:6.3.1-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libopenblas-dev libsndfile1-dev libsoxr-dev libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies first so that source edits do not invalidate this layer.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
COPY Benchmarks ./Benchmarks
RUN swift build -c release --static-swift-stdlib --product emotion-server \
 && swift build -c release --static-swift-stdlib --product emotion \
 && mkdir -p /out && cp .build/release/emotion-server .build/release/emotion /out/

# Runtime stage: only the shared libraries the binaries need, a non-root user, the model.
FROM debian:12.11-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libopenblas0-pthread libsndfile1 libsoxr0 libssl3 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 emotion \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/emotion emotion \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/emotion/state
COPY --from=build /out/emotion-server /out/emotion /usr/local/bin/
COPY Models /opt/emotion/Models
ENV EMOTION_HOST=0.0.0.0 \
    EMOTION_PORT=8080 \
    EMOTION_MODEL=/opt/emotion/Models/default \
    EMOTION_STATE_DIR=/var/lib/emotion/state
# The state directory exists in the image owned by the service user, so a named volume mounted
# there starts with that owner (an absent directory would mount root-owned: every snapshot EACCES).
VOLUME /var/lib/emotion/state
USER 10001:10001
WORKDIR /var/lib/emotion
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${EMOTION_PORT}/healthz" || exit 1
# SIGTERM drains: stop accepting, finish in-flight turns, write sessions to EMOTION_STATE_DIR.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/emotion-server"]
