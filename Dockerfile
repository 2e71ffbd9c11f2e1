# The site (web and qcluster services of docker-compose.yml): one image, two commands.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Grafana runs with this uid/gid too: it reads the WAL database in place, which
# means using the -shm file the site creates (see grafana/provisioning/datasources).
ARG APP_UID=1000
RUN groupadd --gid "${APP_UID}" app \
    && useradd --uid "${APP_UID}" --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

# pg_dump and pg_restore for backups of a site on PostgreSQL (docs/SCALING.md); Debian
# bookworm's are version 15, which dump a PostgreSQL 15 server (a newer server needs newer ones).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

# Everything else the site needs; .dockerignore keeps out the virtualenv, data,
# tests, docs and secrets.
COPY . ./
# data/ holds the secret key, logs and local backups; data/db the database,
# which Grafana also mounts (two volumes in docker-compose.yml).
RUN mkdir -p data/db && chown -R app:app data

USER app
EXPOSE 8000
CMD ["python", "-m", "monitorsite.serve"]
