#!/usr/bin/env bash
# Runs deploy/Dockerfile's steps without Docker (no engine where it was written): a fresh venv from
# requirements.txt, the code copied without the ignored files, collectstatic as at build time, then each role of
# deploy/entrypoint.sh against SQLite and Redis. Usage: PYTHON=python3.13 REDIS_URL=redis://127.0.0.1:6379/<n> deploy/check_image_steps.sh
set -eux
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
W="$(mktemp -d)"
trap 'kill "${WEB:-}" 2>/dev/null || true; rm -rf "$W"' EXIT
PY="${PYTHON:-python3.13}"
$PY -m venv $W/venv
$W/venv/bin/pip install -q -r $ROOT/requirements.txt 2>&1 | grep -v "WARNING: Location" || true
mkdir $W/app
cd "$ROOT" && tar --exclude=.git --exclude=.venv --exclude=var --exclude=staticfiles --exclude=__pycache__ --exclude=.hypothesis --exclude=.ruff_cache --exclude=.env -cf - . | tar -xf - -C $W/app
cd $W/app
export PATH=$W/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 DJANGO_SETTINGS_MODULE=portal.settings \
  STATIC_ROOT=$W/app/staticfiles SLIPWAY_VAR_DIR=$W/var PROMETHEUS_MULTIPROC_DIR=$W/prometheus LOG_FORMAT=json PORT=8433
env -u PROMETHEUS_MULTIPROC_DIR SECRET_KEY=collectstatic-only DATABASE_URL=sqlite:///$W/build.sqlite3 python manage.py collectstatic --noinput --verbosity 0
rm -f $W/build.sqlite3
ls staticfiles | head; test -f staticfiles/staticfiles.json
ls $W/app/*.db 2>/dev/null && { echo "metrics files leaked into the app dir"; exit 1; } || true
export SECRET_KEY=image-check-secret-0123456789abcdefghijklmnopqrstuvwxyz DATABASE_URL=sqlite:///$W/run.sqlite3 \
  REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/12}" ALLOWED_HOSTS=localhost,127.0.0.1 SECURE_SSL_REDIRECT=0
sh deploy/entrypoint.sh migrate --verbosity 0
sh deploy/entrypoint.sh web --bind 127.0.0.1:8433 & WEB=$!
for i in $(seq 1 50); do curl -fsS -H "Host: localhost" http://127.0.0.1:8433/healthz && break; sleep 0.3; done
echo; curl -sS -H "Host: localhost" http://127.0.0.1:8433/readyz; echo
curl -sS -o /dev/null -w "static %{http_code}\n" -H "Host: localhost" http://127.0.0.1:8433/static/$(python -c "import json;print(next(v for k,v in json.load(open('staticfiles/staticfiles.json'))['paths'].items() if k.endswith('.css')))")
curl -sS -H "Host: localhost" http://127.0.0.1:8433/metrics | grep -c "^slipway_"
kill $WEB; wait $WEB || true
sh deploy/entrypoint.sh worker --burst
timeout 5 sh deploy/entrypoint.sh scheduler || test $? = 124
sh deploy/entrypoint.sh recover
echo IMAGE-CHECK-OK
