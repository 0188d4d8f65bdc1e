# One image for every service: api, workers, beat, flower, migrate and (demo profile) fakezoom.
# The service is chosen by the command, e.g. `activity-insights worker --queues connection_tests`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Sources under /app win over anything installed, so Alembic finds migrations/ next to them.
    PYTHONPATH=/app

WORKDIR /app

# Dependencies first, exactly as locked (`make lock` writes requirements.lock from
# pyproject.toml): a build today gets the versions the tests ran with, each file checked
# against its hash. They change less often than the code, so this layer stays cached.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY pyproject.toml README.md ./

COPY alembic.ini ./
COPY migrations ./migrations
COPY worker ./worker
COPY api ./api
COPY fakezoom ./fakezoom
# Editable: the console script imports the code in /app (with its migrations), not a copy.
RUN pip install --no-deps -e . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /data && chown app /data

USER app
# /data holds Flower's and beat's state files where compose mounts a named volume on it; no
# VOLUME here, which would give every other service an anonymous volume of its own.
EXPOSE 8000 5555

ENTRYPOINT []
CMD ["activity-insights", "--help"]
