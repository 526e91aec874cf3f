# orgsync container image. Build: docker build -t orgsync .
# Run:  docker run -d --name orgsync --init -p 9090:9090 -v orgsync-state:/var/lib/orgsync \
#         -e ORGSYNC__ORGS__A__PASSWORD=... (or *_FILE=/run/secrets/...) orgsync
# Try:  docker run --rm -it orgsync demo
#
# Stage 1 compiles with the same command as CI (cargo build --locked), in release mode.
# Dependencies are compiled in their own layer from the manifests alone (empty sources stand in
# for ours), so editing orgsync's code does not rebuild them.
FROM rust:1-bookworm AS builder
WORKDIR /src

COPY Cargo.toml Cargo.lock ./
COPY crates/sfsim/Cargo.toml crates/sfsim/Cargo.toml
# Every target the manifests name must exist for cargo to read them: stand-ins, built and then
# thrown away.
RUN mkdir -p src benches crates/sfsim/src crates/sfsim/benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs crates/sfsim/src/lib.rs \
    && echo 'fn main() {}' > crates/sfsim/src/main.rs \
    && for bench in benches/sync_vs_template.rs crates/sfsim/benches/db_throughput.rs \
        crates/sfsim/benches/http_throughput.rs; do echo 'fn main() {}' > "$bench"; done \
    && cargo build --release --locked -p orgsync \
    && rm -rf src benches crates/sfsim/src crates/sfsim/benches

COPY . .
# The stand-ins' build outputs are older than the real sources; touch makes sure cargo sees
# the real ones as changed.
RUN touch src/main.rs src/lib.rs crates/sfsim/src/lib.rs crates/sfsim/src/main.rs \
    && cargo build --release --locked -p orgsync \
    && install -D -m 0755 target/release/orgsync /out/orgsync

# Stage 2: a slim runtime with the CA certificates Salesforce's TLS needs.
FROM debian:bookworm-slim
# Unpinned on purpose: the image should pick up Debian's security updates when rebuilt.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 orgsync \
    && useradd --system --uid 10001 --gid orgsync --home-dir /var/lib/orgsync \
        --shell /usr/sbin/nologin orgsync \
    && install -d -o orgsync -g orgsync -m 0700 /var/lib/orgsync

COPY --from=builder /out/orgsync /usr/local/bin/orgsync
# The repository's config/ is baked in; mount a folder over /etc/orgsync to replace it (it
# needs only <env>.toml: the defaults are built into the binary), or set single keys with
# ORGSYNC__SECTION__KEY variables (they win over the files).
COPY config/ /etc/orgsync/

ENV ORGSYNC_CONFIG_DIR=/etc/orgsync \
    ORGSYNC_ENV=prod \
    ORGSYNC__STATE__URL=sqlite:///var/lib/orgsync/orgsync.db \
    ORGSYNC__LOG__FORMAT=json

# The state store (links, watermarks, failures): keep it across container upgrades.
VOLUME ["/var/lib/orgsync"]
WORKDIR /var/lib/orgsync
USER 10001:10001

# http.port: Outbound Messaging listener, /healthz, /metrics, /status.
EXPOSE 9090

# The listener answers /healthz in every trigger mode. The slim image has no curl: bash's
# /dev/tcp sends the request (port 9090, the default http.port; change it here if you move it).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["/usr/local/bin/orgsync"]
CMD ["run"]
