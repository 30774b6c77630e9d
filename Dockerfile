# syntax=docker/dockerfile:1.7
# Operator image: a static (musl) `flotilla` binary on distroless/static, non-root, nothing
# else in the image (no shell, no package manager). Works with a read-only root filesystem:
# the process writes nothing but an optional scratch dir at /tmp (the chart mounts an emptyDir).
#
#   docker buildx build -t registry.example.com/platform/flotilla:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 ...   (each built natively/emulated)
#
# TLS roots come from the image's /etc/ssl/certs (rustls-platform-verifier); extra CAs for a
# registry go in the ReplicationPolicy's caSecretRef.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# musl-tools: C toolchain for ring (rustls' crypto) on the musl target.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN rustup target add "$(uname -m)-unknown-linux-musl"
# Only what the build needs (BuildKit sends just these paths of the context).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY bench ./bench
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
 && cargo build --release --locked --bin flotilla --target "$target" \
 && cp "target/$target/release/flotilla" /flotilla \
 && /flotilla --version

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="flotilla" \
      org.opencontainers.image.description="Kubernetes operator for CNCF Distribution registry fleets and OCI artifact replication"
COPY --from=build /flotilla /usr/local/bin/flotilla
# 65532 = distroless "nonroot"; the chart's securityContext runs as the same ids.
USER 65532:65532
# 8080: /healthz /readyz /metrics; 8081: registry notifications (POST /v1/events).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/flotilla"]
CMD ["run"]
