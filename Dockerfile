# kurento-emulator: a drop-in for the kurento/kurento-media-server image (ecosystem.md section 1).
#   docker build -t kurento-emulator .
#   docker run -d --name kurento --network host kurento-emulator
#   docker run -d -p 8888:8888/tcp -p 40000-40099:40000-40099/udp kurento-emulator
#
# Two stages, so that the image runs the compiled media forwarding loop
# (emulator/media/fastpath/_forward.c) without carrying a compiler: the builder (the same base, so
# the wheel fits the runtime's Python) installs gcc and builds a wheel of the project; the runtime
# stage installs that wheel. One RUN that installs gcc, builds and purges it would keep the
# compiler out too, but `apt-get purge --auto-remove` decides for itself what else goes, and any
# source change would fetch the compiler again; a discarded stage leaves nothing behind, and its
# apt layer stays cached.

FROM python:3.11-slim AS builder
# Unpinned: python:3.11-slim moves between Debian point releases (and releases), whose archives
# drop the old versions, so a pin would break the build; these packages (and apt's lists) stay in
# this stage and never reach the image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY protocol ./protocol
COPY emulator ./emulator
# Only the project: its dependencies are binary wheels the runtime stage gets from PyPI.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

# Logs go to stdout unbuffered (docker logs), as KMS's do.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The official image's variables, read directly by the server (no /etc rewriting, so no root).
# Empty means unset, as in entrypoint.sh. KMS_UID is not needed: use `docker run --user`.
ENV KMS_MIN_PORT="" \
    KMS_MAX_PORT="" \
    KMS_MTU="" \
    KMS_STUN_IP="" \
    KMS_STUN_PORT="" \
    KMS_TURN_URL="" \
    KMS_EXTERNAL_IPV4="" \
    KMS_EXTERNAL_IPV6="" \
    KMS_NETWORK_INTERFACES="" \
    KMS_ICE_TCP="" \
    KMS_PEM_CERTIFICATE_RSA="" \
    KMS_PEM_CERTIFICATE_ECDSA="" \
    GST_DEBUG=""

COPY --from=builder /wheels /wheels
# The import fails the build if the wheel has no compiled loop (setup.py makes it optional, so a
# builder without a compiler would otherwise give an image that quietly runs the Python loop).
RUN pip install --no-cache-dir /wheels/kurento_emulator-*.whl \
    && python -c "import emulator.media.fastpath._forward" \
    && groupadd --system --gid 10001 kurento \
    && useradd --system --uid 10001 --gid kurento --home-dir /nonexistent \
       --shell /usr/sbin/nologin kurento \
    && install -d -o kurento -g kurento /var/lib/kurento

# Same layout as KMS: bind-mount your own /etc/kurento to replace these files.
COPY docker/BaseRtpEndpoint.conf.ini /etc/kurento/modules/kurento/BaseRtpEndpoint.conf.ini

# Unprivileged user "kurento" (numeric, so Kubernetes' runAsNonRoot can check it).
USER 10001:10001
# Writable working folder: relative paths such as capture_dir ("captures") land here.
WORKDIR /var/lib/kurento
EXPOSE 8888/tcp 8433/tcp 8890/tcp 40000-40099/udp

# A JSON-RPC ping over the server's own WebSocket (port, path and token from the same settings).
HEALTHCHECK --start-period=15s --interval=30s --timeout=5s --retries=3 \
    CMD ["kurento-emulator-healthcheck", "--timeout", "3"]

STOPSIGNAL SIGTERM
CMD ["kurento-emulator"]
