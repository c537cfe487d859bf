# syntax=docker/dockerfile:1
#
# Image of the lightsail-gui-operator controller, the one the Helm chart runs:
#
#   docker build -t lightsail-gui-operator:0.1.0 .
#
# The binary is linked dynamically against glibc (libc, libgcc_s); TLS is rustls with aws-lc-rs
# compiled in, so no OpenSSL is needed at run time, only CA certificates. The build stage and the
# runtime stage are therefore both Debian 12 (bookworm): the same glibc 2.36 the binary was linked
# against, in distroless/cc (glibc, libgcc, CA certificates, no shell, no package manager).
# Building on a newer Debian would link symbols the runtime's glibc lacks.
#
# Without Docker, scripts/image builds the same image (umoci, no daemon): tests/image.rs keeps the
# two in agreement on user, binary path, entrypoint, command and exposed port.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# Only what the binary needs; tests, charts and docs stay out of the build context's cache key.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace's other member (the simulator, a test tool) must be present for cargo to read the
# workspace; only the operator's binary is built.
COPY simulator/Cargo.toml ./simulator/Cargo.toml
COPY simulator/src ./simulator/src
# `cargo auditable build` embeds the binary's dependency list (every crate linked in) in a .dep-v0
# section: the SBOM the release attests is read from it (syft finds no crate in the image without
# it). The version is the one scripts/image installs (tools/cargo-auditable/version.env).
COPY tools/cargo-auditable/version.env ./tools/cargo-auditable/version.env
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    . ./tools/cargo-auditable/version.env \
    && cargo install --locked --version "=$CARGO_AUDITABLE_VERSION" cargo-auditable
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo auditable build --release --locked --bin lightsail-gui-operator \
    && install -D -m 0755 target/release/lightsail-gui-operator /out/lightsail-gui-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/lightsail-gui-operator /usr/local/bin/lightsail-gui-operator
# Numeric, so that the kubelet can verify runAsNonRoot without reading /etc/passwd; the chart
# runs as the same user.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/lightsail-gui-operator"]
CMD ["run"]
