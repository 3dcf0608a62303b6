# vipps-sandbox: both environments of the Vipps MobilePay sandbox in one container.
#   docker build -t vipps-sandbox .
#   docker run --rm -p 8080:8080 -p 8081:8081 -e VIPPS_SANDBOX_ADMIN_TOKEN=change-me vipps-sandbox
# Test environment (apitest) on 8080, production (api) on 8081. Bound to 0.0.0.0, so the control
# plane (/_sandbox/) needs 'Authorization: Bearer <admin token>' (generated and printed if not set).

# The base of both stages: the official image by default; any image with python3 (and its venv module)
# works, e.g. CI builds on a Debian base made locally (--build-arg PYTHON_IMAGE=localhost/...).
ARG PYTHON_IMAGE=python:3.11-slim

# -- build: install the package and its dependencies into a venv -----------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sandbox ./sandbox
COPY fixtures ./fixtures
COPY scenarios ./scenarios
# pip and setuptools are needed only here: dropped from the venv, they leave the image 25 MB smaller.
# Then the server's import once, as root and isolated (-I: not the sandbox/ of /src), so that the
# package's __pycache__ holds its dataclasses' compiled methods (sandbox/core/dataclass_code.py): the non-root user
# cannot write there, and every start would compile them.
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && /opt/venv/bin/python -I -c "from sandbox import cli; cli.load_server()"

# -- runtime: the venv only, as a non-root user ------------------------------------------------------
FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
RUN groupadd --system --gid 10001 sandbox \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin sandbox \
    && mkdir -p /data /ca \
    && chown 10001:10001 /data /ca \
    && chmod 0755 /ca
# /ca: the sandbox's CA for --tls-port (vipps-sandbox-ca.pem, mode 0644; its key 0600, for uid 10001 and root
# only). A volume mounted there starts with this owner and mode: other containers mount it to trust the CA.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    VIPPS_SANDBOX_PORT=8080 \
    VIPPS_SANDBOX_PROD_PORT=8081 \
    VIPPS_SANDBOX_CA_DIR=/ca
# Optional: VIPPS_SANDBOX_FIXTURE=/data/fixture.json (a file in the volume) and
# VIPPS_SANDBOX_ADMIN_TOKEN=<token> for the control plane; VIPPS_SANDBOX_RATE_LIMITS=1 for the documented
# ePayment rate limits; VIPPS_SANDBOX_ALLOWED_HOSTS=<service name> when other containers call it by name.
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; [u.urlopen(f'http://127.0.0.1:{os.environ[v]}/_sandbox/health', timeout=2) for v in ('VIPPS_SANDBOX_PORT', 'VIPPS_SANDBOX_PROD_PORT')]"]
CMD ["vipps-sandbox", "serve", "--host", "0.0.0.0"]
