# Figure2: one image holding the three binaries (authorization-server, resource-server,
# client); each docker-compose.yml service chooses its entrypoint.
#
#   docker build -t figure2 .
#
# The base images are build arguments, so that a machine without an image registry can
# pass images of its own (scripts/compose-test.sh shows another route, with binaries
# built on the host and docker/Dockerfile.prebuilt):
#
#   docker build --build-arg RUST_IMAGE=local/rust --build-arg RUNTIME_IMAGE=local/bookworm -t figure2 .
#
# Plain Dockerfile syntax: the classic builder and BuildKit both build it.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p figure2-authorization-server -p figure2-resource-server -p figure2-client \
 && mkdir -p /out/usr/local/bin /out/etc/figure2 \
 && cp target/release/authorization-server target/release/resource-server target/release/client /out/usr/local/bin/ \
 && cp config/demo.toml /out/etc/figure2/demo.toml

FROM ${RUNTIME_IMAGE}
# curl for the health checks (skipped when the base image has it), and an unprivileged
# user owning /data, where the authorization server keeps its SQLite file.
RUN if ! command -v curl >/dev/null 2>&1; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && useradd --system --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin figure2 \
 && mkdir -p /data && chown figure2:figure2 /data
ENV FIGURE2_CONFIG=/etc/figure2/demo.toml \
    FIGURE2_DATABASE=/data/figure2.db \
    RUST_LOG=info \
    NO_COLOR=1
WORKDIR /data
EXPOSE 8080 8081
CMD ["authorization-server"]
USER figure2
# Last: the layer that changes with every build (files stay root's, whatever USER says).
COPY --from=build /out/ /
