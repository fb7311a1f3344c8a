#!/bin/sh
# The container's entry point: one image, the role by the first argument (docs/deployment.md).
set -eu
# Prometheus multiprocess files belong to this container's processes only: start empty.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    rm -rf "${PROMETHEUS_MULTIPROC_DIR:?}"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
role="${1:-web}"
[ "$#" -gt 0 ] && shift
case "$role" in
    web)       exec gunicorn -c deploy/gunicorn.conf.py portal.wsgi "$@" ;;
    worker)    exec python manage.py rqworker operations notifications default --with-scheduler "$@" ;;
    scheduler) exec python manage.py rqcron portal.cron "$@" ;;
    migrate)   exec python manage.py migrate --noinput "$@" ;;
    recover)   exec python manage.py recover_operations "$@" ;;
    manage)    exec python manage.py "$@" ;;
    *)         exec "$role" "$@" ;;
esac
