# syntax=docker/dockerfile:1
# The AEGIS image: the `aegis` binary alone on a distroless base, running as a non-root user.
# Build: docker build -t aegis:0.1.0 .   (see deploy/README.md; no container runtime runs in
# this repository's CI, which checks this file with a Dockerfile parser instead.)

# Build stage: the pinned toolchain (rust-toolchain.toml), dependencies cached apart from the
# sources so that a code change does not fetch every crate again.
FROM docker.io/library/rust:1.95.0-bookworm AS build
WORKDIR /src
COPY rust-toolchain.toml Cargo.toml Cargo.lock ./
COPY crates crates
COPY xtask xtask
COPY tests tests
# The mock world and demo incidents are compiled into the binary (`aegis analyze --mock`).
COPY examples examples
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p aegis-cli \
    && install -D -m 0755 target/release/aegis /out/aegis

# Runtime stage: glibc, CA certificates and nothing else; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/aegis /usr/local/bin/aegis
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/aegis"]
CMD ["operator", "run", "--leader-elect"]
