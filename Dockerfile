# kurento-emulator: a drop-in for the kurento/kurento-media-server image (ecosystem.md section 1).
#   docker build -t kurento-emulator .
#   docker run -d --name kurento --network host kurento-emulator
#   docker run -d -p 8888:8888/tcp -p 40000-40099:40000-40099/udp kurento-emulator
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

WORKDIR /opt/kurento-emulator
COPY pyproject.toml setup.py README.md ./
COPY protocol ./protocol
COPY emulator ./emulator
# gcc only for the build: the compiled forwarding loop (emulator/media/fastpath/_forward.c);
# without it the server would fall back to the Python loop. Unpinned: the base image's Debian
# release decides the versions, and the compiler is gone from the final layer.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
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
