#!/usr/bin/env bash
# `make demo`: the embedded platform — SQLite, a file-system broker, a Celery worker with beat and
# the web server, all on this machine with no other server. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-8000}"
BIN=.venv/bin
export DJANGO_SETTINGS_MODULE=config.settings.local
VAR_DIR="${FLOURISH_VAR_DIR:-var}"
mkdir -p "$VAR_DIR"

pids=()
stop() {
    trap - INT TERM EXIT
    if ((${#pids[@]})); then
        echo "Stopping the demo…"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$BIN/python" manage.py migrate --noinput -v 0
seeded="$("$BIN/python" manage.py seed_demo)"

# One worker for every queue (no -Q): the short tasks' and the analyses'.
"$BIN/celery" -A config worker --beat -l INFO -c 1 \
    --schedule "$VAR_DIR/celerybeat-schedule" >"$VAR_DIR/worker.log" 2>&1 &
pids+=($!)
"$BIN/python" manage.py runserver "127.0.0.1:$PORT" --noreload >"$VAR_DIR/web.log" 2>&1 &
pids+=($!)

base="http://127.0.0.1:$PORT"
for _ in $(seq 1 120); do
    if "$BIN/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "$base/healthz" 2>/dev/null; then
        break
    fi
    for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || { echo "A demo process exited; see $VAR_DIR/*.log" >&2; exit 1; }
    done
    sleep 0.5
done

value() { printf '%s\n' "$seeded" | sed -n "s/^$1=//p"; }
cat <<INFO

Flourish demo is running (logs in $VAR_DIR/web.log and $VAR_DIR/worker.log).

  Admin (coordinator):   $base/admin/              login $(value login)
  Dashboard (analyst):   $base/dashboards/demo/    login $(value analyst)
  Participant survey:    $base$(value survey)
  Health:                $base/healthz

Press Ctrl-C to stop.
INFO
wait -n "${pids[@]}"
echo "A demo process exited; see $VAR_DIR/*.log" >&2
exit 1
