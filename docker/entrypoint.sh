#!/bin/sh
# The image's one entrypoint: `web`, `worker [celery worker options]`, `beat`, `migrate`,
# or any command. compose.yaml and docs/deploy.md show each in use.
set -eu

metrics_dir_fresh() {
    # Prometheus's per-process files of an earlier run would be added to this one's.
    if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
        rm -rf "$PROMETHEUS_MULTIPROC_DIR"
        mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    fi
}

mode="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$mode" in
web)
    # Migrations run once per deploy, before the new code serves (docs/deploy.md);
    # compose's single web container does it itself when asked.
    if [ "${MIGRATE_ON_START:-0}" = "1" ]; then
        python manage.py migrate --noinput
    fi
    exec gunicorn -c python:portal.gunicorn_conf portal.wsgi "$@"
    ;;
worker)
    # e.g. `worker -Q ingest --concurrency 4`: the queues come from the command.
    metrics_dir_fresh
    exec celery -A portal worker --without-mingle "$@"
    ;;
beat)
    # Exactly one beat per deployment: two would send every periodic task twice.
    exec celery -A portal beat --schedule /tmp/celerybeat-schedule "$@"
    ;;
migrate)
    exec python manage.py migrate --noinput "$@"
    ;;
*)
    exec "$mode" "$@"
    ;;
esac
