# syntax=docker/dockerfile:1
# restaurant-review as a container: deploy/azure.sh up --container builds it with `az acr build`.
# Build stage: the Rust toolchain on Debian 12 bookworm.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && install -d -m 0755 /out/data \
    && cp target/release/restaurant-review /out/restaurant-review

# Runtime: glibc and CA certificates, no shell, no package manager, no build tools; the
# `nonroot` user (uid 65532). Same Debian 12 as the build stage, so glibc matches.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/restaurant-review /usr/local/bin/restaurant-review
# A writable data directory (SQLite and photos when no Azure settings are given).
COPY --from=build --chown=65532:65532 /out/data /data
ENV PORT=8000 DATA_DIR=/data
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/restaurant-review"]
