# wsguard's container image: a static-libc-only binary on distroless `cc`
# (glibc, libgcc_s; no shell, no package manager), running as the
# distroless `nonroot` user (65532).
#
#     docker build -t wsguard:0.1.0 .
#
# JWKS/discovery over HTTPS needs no CA bundle in the image: the binary
# carries the webpki (Mozilla) roots. A private CA is mounted and named
# by `ca_file` (auth.providers / upstream).
#
# Checked without a container by .ci/sidecar.sh: hadolint, this file's
# build steps run on the host (bookworm, as here), the binary's libraries
# and GLIBC_ symbol versions against the runtime base.

# The toolchain CI builds with, on Debian 12 (bookworm): its glibc (2.36)
# is the runtime base's.
FROM rust:1.95.0-slim-bookworm AS builder
# aws-lc-sys and mimalloc build C with the cc crate: gcc and make only
# (the slim image has gcc; no cmake, clang or Go needed).
WORKDIR /src

# Dependencies first, against stub targets: this layer is rebuilt only
# when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
COPY bench/Cargo.toml bench/Cargo.toml
RUN mkdir -p src bench/src/bin \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs bench/src/lib.rs \
    && for bin in loadgen echo benchtool; do echo 'fn main() {}' > "bench/src/bin/$bin.rs"; done \
    && cargo build --release --locked -p wsguard

# The sources (config/ too: the example key is compiled in).
COPY src src
COPY config config
# The demo page and the client library, embedded in the binary (include_bytes!).
COPY clients/js/dist clients/js/dist
COPY clients/demo/index.html clients/demo/style.css clients/demo/
COPY clients/demo/dist clients/demo/dist
# COPY keeps the files' own times, which may be older than the stubs'.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p wsguard

FROM gcr.io/distroless/cc-debian12:nonroot
# The image's labels: set SOURCE to where your copy of the repository lives.
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/wsguard/wsguard
LABEL org.opencontainers.image.title="wsguard" \
      org.opencontainers.image.description="Authenticating WebSocket reverse proxy: first-message auth, JWT verification, identity headers, in-place token refresh" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /src/target/release/wsguard /usr/local/bin/wsguard
COPY config/wsguard.toml /etc/wsguard/wsguard.toml
COPY config/keys/example-es256.pub.pem /etc/wsguard/keys/example-es256.pub.pem
# The proxy (listener.bind) and the admin listener (admin.bind).
EXPOSE 8080 9901
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/wsguard"]
CMD ["--config", "/etc/wsguard/wsguard.toml"]
