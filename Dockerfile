# syntax=docker/dockerfile:1
# Suanli's image: one image, four roles (docker/entrypoint.sh: web, worker, beat,
# migrate). docs/deploy.md describes the topology; compose.yaml runs it on one machine.

# --- build: the virtualenv with the locked dependencies, static files, translations ---
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /srv/suanli
COPY pyproject.toml requirements.lock ./
# The project's runtime dependencies (not the dev extras: test tools, browsers, the
# private PostgreSQL) at exactly the versions of requirements.lock.
RUN python -m venv /opt/venv \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/runtime.in \
 && /opt/venv/bin/pip install --constraint requirements.lock --requirement /tmp/runtime.in
COPY . .
# Production settings need keys and hosts to load; these exist only for the build.
RUN DJANGO_DEBUG=0 DJANGO_SECRET_KEY=build-only-not-a-secret DJANGO_ALLOWED_HOSTS=build \
    AUDIT_CHAIN_KEY=build-only-not-a-secret \
    /opt/venv/bin/python manage.py compiletranslations \
 && DJANGO_DEBUG=0 DJANGO_SECRET_KEY=build-only-not-a-secret DJANGO_ALLOWED_HOSTS=build \
    AUDIT_CHAIN_KEY=build-only-not-a-secret \
    /opt/venv/bin/python manage.py collectstatic --noinput \
 && rm -rf var/media tests/e2e

# --- runtime: no build tools, not root ---
FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=portal.settings \
    DJANGO_DEBUG=0 \
    LOG_FORMAT=json \
    MEDIA_ROOT=/srv/suanli/var/media
RUN groupadd --system --gid 10001 suanli \
 && useradd --system --uid 10001 --gid suanli --home-dir /srv/suanli --shell /usr/sbin/nologin suanli
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=root:root /srv/suanli /srv/suanli
# Only uploaded documents are written, under MEDIA_ROOT (a volume in production), and the
# audit chain's anchors, under AUDIT_ANCHOR_DIR (another volume, SECURITY.md).
RUN mkdir -p /srv/suanli/var/media /srv/suanli/var/audit-anchors \
 && chown -R suanli:suanli /srv/suanli/var/media /srv/suanli/var/audit-anchors
WORKDIR /srv/suanli
USER suanli
EXPOSE 8000
ENTRYPOINT ["/srv/suanli/docker/entrypoint.sh"]
CMD ["web"]
