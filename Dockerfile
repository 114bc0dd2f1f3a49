# Voicio's production image: `voicio run` in webhook mode, as deployed by fly.toml.
# Both stages use the same base so the venv's interpreter path stays valid.

FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
RUN python -m venv /opt/venv

# Only what hatchling needs to build the wheel (README.md is the project's readme).
COPY pyproject.toml README.md ./
COPY migrations/ migrations/
COPY voicio/ voicio/

RUN pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install /wheels/voicio-*.whl


FROM python:3.11.14-slim-bookworm

# Debian's ffmpeg is not version-pinned: bookworm's security updates should
# reach the image on every rebuild, and the suite only ships one version.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

# Fixed ids so volume ownership and security policies do not drift between builds.
RUN groupadd --gid 10001 voicio \
    && useradd --uid 10001 --gid voicio --create-home --shell /usr/sbin/nologin voicio

COPY --from=builder /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8080

# Numeric, so runtimes can tell it is not root without reading /etc/passwd.
USER 10001:10001
WORKDIR /home/voicio
EXPOSE 8080

CMD ["voicio", "run"]
