# The redstream image: redstream-consumer (the default) and redstream-producer, installed from
# the project's own .deb on Debian 12, running as an unprivileged user.
#
#   docker build -t redstream:latest .          (docker compose up -d --build does this)
#   docker run --rm redstream:latest --version
#   docker run -d -p 8083:8083 -e REDSTREAM_REDIS_PASSWORD=... \
#       -v "$PWD/docker/redstream.conf:/etc/redstream/redstream.conf:ro" redstream:latest
#
# Two stages on the same base:
#   build    compiles with the Debian 12 -dev packages and makes the .deb with CPack, exactly
#            as on a build host (scripts/install-deps.sh lists the same packages);
#   runtime  installs that .deb with apt, which pulls in the runtime libraries the package
#            declares (dpkg-shlibdeps computed them), plus curl for the HEALTHCHECK.
# The image thus holds what a Debian server holds after `apt-get install ./redstream_*.deb`:
# /usr/bin/redstream-consumer, /usr/bin/redstream-producer, the example configuration in
# /etc/redstream/redstream.conf (mount your own over it), the man pages, and a systemd unit
# that nothing uses here.
#
# Only plain Dockerfile instructions are used (no RUN --mount, no syntax directive), so the
# classic builder of Debian's docker-compose 1.29 builds it as well as BuildKit does.

############################### build ###############################

FROM debian:bookworm-slim AS build

ARG DEBIAN_FRONTEND=noninteractive

# The build dependencies of scripts/install-deps.sh without the test-only ones (cmocka,
# redis-server, node), plus dpkg-dev (dpkg-shlibdeps) and file, which CPack's DEB generator
# uses to compute the package's Depends.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libhiredis-dev libconfig-dev libmicrohttpd-dev libcurl4-openssl-dev libjansson-dev \
        libsystemd-dev \
        dpkg-dev file; \
    rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The whole context: .dockerignore leaves out VCS data, build directories, node_modules, the
# tests and the compose files, so this layer changes only with what goes into the package.
COPY . /src

# Configure for /usr like a Debian package, build without the tests, and package. The .deb
# is then copied to /pkg under its canonical name redstream_<version>_<arch>.deb, picked by
# its Package field (not by the file name CPack chose), so the runtime stage finds exactly
# one file; its contents are listed in the build log.
RUN set -eux; \
    cmake -S /src -B /src/build \
        -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX=/usr \
        -DREDSTREAM_TESTS=OFF; \
    cmake --build /src/build -j"$(nproc)"; \
    cd /src/build; \
    cpack -G DEB -B /src/build/cpack; \
    mkdir /pkg; \
    for deb in /src/build/cpack/*.deb; do \
        if [ "$(dpkg-deb -f "$deb" Package)" = redstream ]; then \
            cp "$deb" "/pkg/redstream_$(dpkg-deb -f "$deb" Version)_$(dpkg-deb -f "$deb" Architecture).deb"; \
        fi; \
    done; \
    test "$(find /pkg -name 'redstream_*.deb' | wc -l)" -eq 1; \
    dpkg-deb --info /pkg/redstream_*.deb; \
    dpkg-deb --contents /pkg/redstream_*.deb | tee /tmp/contents; \
    grep -q ' \./usr/bin/redstream-consumer$' /tmp/contents; \
    grep -q ' \./usr/bin/redstream-producer$' /tmp/contents; \
    grep -q ' \./etc/redstream/redstream\.conf$' /tmp/contents

############################## runtime ##############################

FROM debian:bookworm-slim AS runtime

ARG DEBIAN_FRONTEND=noninteractive

LABEL org.opencontainers.image.title="redstream" \
      org.opencontainers.image.description="Redis Streams worker service: redstream-consumer and redstream-producer" \
      org.opencontainers.image.base.name="debian:bookworm-slim"

COPY --from=build /pkg/ /tmp/redstream-pkg/

# The user comes first, with a fixed uid/gid (999, in Debian's system range 100..999), so
# that files mounted into the container (a password_file must be readable by its owner only)
# can be given to it on the host, and so that a package maintainer script that runs
# `adduser --system redstream` finds a system user and leaves it alone. No login shell, no
# home directory.
# apt resolves the package's Depends (hiredis, libconfig, libmicrohttpd, libcurl, jansson,
# libsystemd) from Debian's archive; curl runs the HEALTHCHECK; ca-certificates lets the
# http handler and the trace exporter verify https servers.
RUN set -eux; \
    groupadd --system --gid 999 redstream; \
    useradd --system --uid 999 --gid redstream --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "redstream service" redstream; \
    apt-get update; \
    cd /tmp/redstream-pkg; \
    apt-get install -y --no-install-recommends ./redstream_*.deb curl ca-certificates; \
    cd /; \
    rm -rf /var/lib/apt/lists/* /tmp/redstream-pkg; \
    redstream-consumer --version; \
    redstream-producer --version; \
    redstream-consumer --check-config -c /etc/redstream/redstream.conf >/dev/null

USER redstream:redstream

# The health server (health.port). It must listen on more than loopback to be published:
# docker/redstream.conf sets health.address = "0.0.0.0"; the packaged default is 127.0.0.1,
# which this HEALTHCHECK reaches but a published port does not.
EXPOSE 8083

# /healthz fails when a stream's reader is stuck or cannot reach Redis for
# health.liveness_timeout_ms (30 s by default). The URL assumes health.port = 8083.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["curl", "-fsS", "--max-time", "2", "-o", "/dev/null", "http://127.0.0.1:8083/healthz"]

# SIGTERM stops the readers, lets the workers finish what is queued (at most
# workers.shutdown_timeout_ms), flushes the acks and exits 0. Give the container a stop timeout
# above that (docker-compose.yaml: stop_grace_period 30s).
STOPSIGNAL SIGTERM

ENTRYPOINT ["redstream-consumer"]
CMD ["-c", "/etc/redstream/redstream.conf"]
