# Confab's image: every binary, the sample configurations, a non-root user.
#
#   make image    (scripts/image.sh: podman, bases from scripts/image-base.sh)
#
# Two stages. "build" compiles the release binaries on the build base (the
# same Debian as the run stage, plus a compiler and libclang for RocksDB)
# with the host's Rust toolchain, crate cache and target directory mounted
# at the paths the host uses (`podman build -v`, see scripts/image.sh): the
# dependencies are cached there, and what the host has built already is not
# compiled again. "run" is the minimal Debian base with the binaries (their
# debug information stripped: RocksDB's alone is 400 MB; symbol names stay,
# so a backtrace still names functions), the configurations in /etc/confab
# and a user of its own.
ARG BUILD_BASE=localhost/confab-build:bookworm
ARG RUN_BASE=localhost/confab-debian:bookworm

FROM ${BUILD_BASE} AS build
ARG SRC
ARG TARGET_DIR
ARG CARGO_HOME
ARG RUSTUP_HOME
ENV CARGO_HOME=${CARGO_HOME} RUSTUP_HOME=${RUSTUP_HOME} CARGO_TARGET_DIR=${TARGET_DIR} \
    PATH=${CARGO_HOME}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN test -f "$SRC/Cargo.toml" && test -x "$CARGO_HOME/bin/cargo" \
    || { echo "build the image with make image (scripts/image.sh): it mounts the source and the toolchain" >&2; exit 1; }
RUN cd "$SRC" && cargo build --release --locked --bins \
    && mkdir -p /out \
    && for b in confab-router confab-gateway confab-persist confabctl confab-chat confab-bench; do \
         cp "$TARGET_DIR/release/$b" /out/; \
       done \
    && strip --strip-debug /out/*

FROM ${RUN_BASE}
COPY --from=build /out/ /usr/local/bin/
COPY etc/router.toml etc/gateway.toml etc/persist.toml /etc/confab/
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/confab --create-home confab \
    && /usr/local/bin/confabctl --version >/dev/null
USER confab
WORKDIR /var/lib/confab
# The plain HTTP port of whichever service runs here: 9101 router, 9201
# gateway (internal metrics port), 9301 persist.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9101/healthz || curl -fsS http://127.0.0.1:9201/healthz \
        || curl -fsS http://127.0.0.1:9301/healthz || exit 1
EXPOSE 7101 9101 8101 7201 8201 9201 7301 9301
CMD ["confabctl", "--help"]
