# syntax=docker/dockerfile:1
# ib-kubernetes image: a release build on the Rust image, copied into a distroless base that has only
# glibc, CA certificates and a non-root user. `make image` passes the version arguments.

ARG RUST_IMAGE=rust:1.95-bookworm
# Debian 12 with glibc and libgcc, matching the bookworm builder; :nonroot runs as uid 65532.
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS builder
ARG VERSION=master
ARG COMMIT="unknown commit"
ARG DATE="unknown date"
WORKDIR /src
COPY . .
# The version variables are read at compile time by the binary (src/cli.rs). Without default features
# the binary leaves out the test bed (`demo`, `sim` and the emulators; tests/product_binary.rs).
RUN IB_KUBERNETES_VERSION="${VERSION}" IB_KUBERNETES_COMMIT="${COMMIT}" IB_KUBERNETES_DATE="${DATE}" \
        cargo build --release --locked --package ib-kubernetes --bin ib-kubernetes --no-default-features \
    && cp target/release/ib-kubernetes /ib-kubernetes

FROM ${BASE_IMAGE}
ARG VERSION=master
ARG COMMIT="unknown commit"
ARG DATE="unknown date"
LABEL org.opencontainers.image.title="ib-kubernetes" \
      org.opencontainers.image.description="InfiniBand GUID and partition-key controller for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}"
COPY --from=builder /ib-kubernetes /ib-kubernetes
# Exec plugins are looked up here (DAEMON_SM_PLUGIN_PATH). Empty: the built-in ufm and noop serve, and a
# plugin mounted here overrides them (docs/plugins.md). WORKDIR creates the directory without a shell.
WORKDIR /plugins
WORKDIR /
USER 65532:65532
ENTRYPOINT ["/ib-kubernetes"]
