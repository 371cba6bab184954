#!/usr/bin/env bash
# `make demo`: the embedded platform — SQLite, a file-system broker, a Celery worker with beat and
# the web server, all on this machine with no other server. The pages are up as soon as the quick
# part of the seeding is done; the simulated cohort is recorded behind them (once: later runs
# reuse it). Ctrl-C stops everything it started and exits with status 0.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-8000}"
BIN=.venv/bin
export DJANGO_SETTINGS_MODULE=config.settings.local
VAR_DIR="${FLOURISH_VAR_DIR:-var}"
# Links in e-mails start with the address this demo listens on.
export FLOURISH_SITE_URL="${FLOURISH_SITE_URL:-http://127.0.0.1:$PORT}"
# config.settings.local writes every e-mail to a file here.
export EMAIL_FILE_PATH="${EMAIL_FILE_PATH:-$VAR_DIR/mail}"
mkdir -p "$VAR_DIR" "$EMAIL_FILE_PATH"

servers=()
worker=""
seeder=""
stop() {
    trap - INT TERM EXIT
    local started=("${servers[@]}" ${seeder:+"$seeder"})
    if ((${#started[@]})); then
        echo "Stopping the demo…"
        kill -TERM "${started[@]}" 2>/dev/null || true
        # The worker first finishes its task (a warm shutdown), and an analysis takes minutes.
        # After a short grace its pool process is killed (it does not stop mid-task): the task,
        # acknowledged late, goes back to the queue, and beat's sweep re-queues a run whose
        # heartbeat stopped (analytics.tasks.analysis_runs_sweep), so the next start finishes it.
        if [[ -n "$worker" ]]; then
            for _ in $(seq 1 20); do
                kill -0 "$worker" 2>/dev/null || break
                sleep 0.5
            done
            pkill -KILL -P "$worker" 2>/dev/null || true
        fi
        wait "${started[@]}" 2>/dev/null || true
    fi
}
trap stop EXIT
# Ctrl-C is how a demo ends: a clean shutdown, not an error.
trap 'stop; exit 0' INT
trap 'stop; exit 143' TERM

base="http://127.0.0.1:$PORT"
alive() {
    for pid in "${servers[@]}"; do
        kill -0 "$pid" 2>/dev/null || { echo "A demo process exited; see $VAR_DIR/*.log" >&2; exit 1; }
    done
}
# Asked in bash itself: a Python process per try would take the CPU the servers start with.
healthy() {
    { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null || return 1
    printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    local status=""
    read -r -t 10 status <&3 || true
    exec 3>&-
    [[ "$status" == *" 200 "* ]]
}

# The web server starts while seed_demo migrates and seeds: it reads the database only once a
# request comes, and the first one comes after seeding. (migrate runs the system checks.)
"$BIN/python" manage.py runserver "127.0.0.1:$PORT" --noreload --skip-checks \
    >"$VAR_DIR/web.log" 2>&1 &
servers+=($!)
# Migrates, then the quick part: the trial, one login per role, this run's participant link.
seeded="$("$BIN/python" manage.py seed_demo)"
value() { printf '%s\n' "$seeded" | sed -n "s/^$1=//p"; }
for _ in $(seq 1 600); do
    healthy && break
    alive
    sleep 0.5
done
healthy || { echo "The web server did not answer; see $VAR_DIR/web.log" >&2; exit 1; }

# The work behind the pages starts once they are up. One worker for every queue (no -Q): the
# short tasks' and the analyses'.
"$BIN/celery" -A config worker --beat -l INFO -c 1 \
    --schedule "$VAR_DIR/celerybeat-schedule" >"$VAR_DIR/worker.log" 2>&1 &
worker=$!
servers+=("$worker")
if [[ "$(value cohort)" == pending ]]; then
    "$BIN/python" manage.py seed_demo --cohort >"$VAR_DIR/seed.log" 2>&1 &
    seeder=$!
    results="Results: the simulated cohort is being recorded ($VAR_DIR/seed.log), then the worker
analyses it; the dashboard shows its results once that run has finished."
else
    results="Results: on the dashboard (the worker analysed the simulated cohort on an earlier run)."
fi

cat <<INFO

Flourish demo is running at $base (logs in $VAR_DIR/web.log and $VAR_DIR/worker.log).

Sign in at $base/accounts/login/ as one of these (each sees the demo trial only):
  Coordinator of the demo trial:  $(value coordinator)    admin: $base/admin/
  Ethics board member:            $(value oversight)    oversight: $base/dashboards/oversight/
  Analyst of the demo trial:      $(value analyst)    dashboard: $base/dashboards/demo/

Participant survey (a new participant each run):
  $base$(value survey)
E-mails the platform sends (invitations, notifications), one file per batch:
  $EMAIL_FILE_PATH/
$results
Health: $base/healthz

Superuser, apart from the roles (sees every trial, other-lab's too): $(value superuser)

Press Ctrl-C to stop.
INFO
wait -n "${servers[@]}"
echo "A demo process exited; see $VAR_DIR/*.log" >&2
exit 1
