# A stand-in for the official python:3.11-slim-bookworm, for machines that reach no
# container registry (scripts/images.sh builds it on a Debian bookworm made by debootstrap).
# Differences from the official image: CPython is Debian's 3.11 package (3.11.2 with
# Debian's patches, not python.org's 3.11.14 built in /usr/local), pip is Debian's, and
# the system's certificate authorities are the building host's (so that pip and uv reach
# PyPI through whatever TLS the host's network needs). Only for local builds and tests.
ARG DEBIAN_IMAGE=localhost/taskmill-debian:bookworm
FROM ${DEBIAN_IMAGE}
ENV LANG=C.UTF-8 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# Debian bookworm's own python3.11, whatever its current point release (a stand-in, not pinned).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3-pip python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python3.11 \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python3 \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python \
    && ln -s /usr/bin/pip3 /usr/local/bin/pip \
    && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
COPY host-ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
