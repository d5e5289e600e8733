# syntax=docker/dockerfile:1
#
# attrgate container image.
#   docker build -t attrgate .
#   docker run --rm -p 8080:8080 \
#     -v "$PWD/attrgate.yaml:/etc/attrgate/attrgate.yaml:ro" \
#     -v attrgate-audit:/var/lib/attrgate/audit \
#     -e ATTRGATE_AUDIT_HMAC_KEY -e AWS_REGION attrgate
# The config is not baked in: mount it at /etc/attrgate/attrgate.yaml. Inside
# the container it must listen on 0.0.0.0:8080, point policy_file at
# /etc/attrgate/policies/... (or a mounted policy), and write the audit log
# under /var/lib/attrgate/audit (a volume in production: the log is the record).

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# Only what the release build reads; tests/ and the dev scripts stay out, so
# editing them does not rebuild the image. (If Cargo.toml ever declares a
# build script, add `COPY build.rs ./` here.)
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY policies ./policies
COPY openapi ./openapi
# Cargo.toml declares the benchmark target, so its file must exist for any build.
COPY benches ./benches

# The same build as the README's: --locked keeps Cargo.lock authoritative.
# The caches speed up rebuilds; the binary is copied out of the cached
# target dir because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin attrgate \
    && install -m 0755 target/release/attrgate /usr/local/bin/attrgate

# ---- runtime ----------------------------------------------------------------
# Same Debian release as the builder, so the binary's glibc matches.
FROM debian:bookworm-slim

# ca-certificates: TLS to Cognito and to the issuers' JWKS endpoints.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 attrgate \
    && useradd --system --uid 10001 --gid attrgate --no-create-home \
        --home-dir /var/lib/attrgate --shell /usr/sbin/nologin attrgate \
    && install -d -o attrgate -g attrgate -m 0750 /var/lib/attrgate /var/lib/attrgate/audit \
    && install -d -m 0755 /etc/attrgate

COPY --from=builder /usr/local/bin/attrgate /usr/local/bin/attrgate
COPY policies /etc/attrgate/policies

WORKDIR /var/lib/attrgate
EXPOSE 8080
# Numeric, so that Kubernetes' runAsNonRoot can check it; 10001 is `attrgate`.
USER 10001:10001
ENTRYPOINT ["attrgate"]
CMD ["serve", "--config", "/etc/attrgate/attrgate.yaml"]
