#!/usr/bin/env bash
# `make stack` / `make stack-stop`: the production-like local stack — production settings against
# PostgreSQL and RabbitMQ, gunicorn, two Celery workers, one beat and the Flower SuperLink that
# assistant apps' SuperNodes connect to, each in the background with a pid file and a log in
# var/stack/. See infra/RUNBOOK.md.
#
#     bash infra/stack.sh start|stop|status
#
# Environment (defaults in brackets): PORT [8080]; the database as two roles (see the runbook):
# DATABASE_OWNER_URL [postgres://flourish_owner:…@127.0.0.1:5432/flourish] runs the migrations,
# DATABASE_URL [postgres://flourish_app:…@127.0.0.1:5432/flourish] is what the web server and
# workers use (passwords generated once, kept in var/stack/), both created through
# DATABASE_ADMIN_URL [postgres://postgres@127.0.0.1:5432/postgres] when they do not exist yet
# (infra/db_roles.py); CELERY_BROKER_URL
# [amqp://guest:guest@127.0.0.1:5672//], DJANGO_ALLOWED_HOSTS [127.0.0.1,localhost],
# DJANGO_SECRET_KEY [generated once, kept in var/stack/secret-key], FLOWER_PORT [9092: the
# SuperLink's Fleet, Control and runtime APIs on 127.0.0.1].
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
VAR_DIR="${FLOURISH_VAR_DIR:-var}"
STACK_DIR="$VAR_DIR/stack"
PORT="${PORT:-8080}"
FLOWER_PORT="${FLOWER_PORT:-9092}"
SERVICES=(web worker1 worker2 beat superlink)
STOP_TIMEOUT=30
START_TIMEOUT=90

die() { echo "stack: $*" >&2; exit 1; }
say() { echo "stack: $*"; }

pid_file() { echo "$STACK_DIR/$1.pid"; }
log_file() { echo "$STACK_DIR/$1.log"; }

# The pid recorded for a service, if that process is still alive and is what we started (a stale
# pid file whose number was reused by an unrelated process does not count).
running_pid() {
    local file pid args
    file="$(pid_file "$1")"
    [[ -f "$file" ]] || return 1
    pid="$(cat "$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    args="$(ps -p "$pid" -o args= 2>/dev/null)" || return 1
    [[ "$args" == *gunicorn* || "$args" == *celery* || "$args" == *flower-superlink* ]] || return 1
    echo "$pid"
}

# Each service runs in its own session (setsid), so its process group (the service and its child
# processes) is ours to signal as a whole; only ever treat as a group one whose leader is the
# recorded pid. Prints the target for kill: "-PID" for such a group, else "PID".
kill_target() {
    local pgid
    pgid="$(ps -p "$1" -o pgid= 2>/dev/null | tr -d ' ')"
    if [[ "$pgid" == "$1" ]]; then echo "-$1"; else echo "$1"; fi
}

launch() {
    local name="$1"
    shift
    if command -v setsid >/dev/null; then
        setsid "$@" >>"$(log_file "$name")" 2>&1 </dev/null &
    else
        nohup "$@" >>"$(log_file "$name")" 2>&1 </dev/null &
    fi
    echo $! >"$(pid_file "$name")"
}

service_command() {
    case "$1" in
        # The control socket lives with the stack's state, not in the home directory.
        web) echo "$BIN/gunicorn config.wsgi:application --bind 127.0.0.1:$PORT --workers 2 --control-socket $STACK_DIR/gunicorn.ctl" ;;
        # No -Q: each worker consumes every declared queue, the short tasks' and the analyses'
        # (CELERY_TASK_QUEUES in config/settings/base.py).
        worker1 | worker2) echo "$BIN/celery -A config worker -n $1@%h -c 2 -l INFO" ;;
        beat) echo "$BIN/celery -A config beat -l INFO --schedule $STACK_DIR/celerybeat-schedule" ;;
        # No --database: the SuperLink keeps its state, message contents included, in memory.
        # Its ServerApp tasks are forked from a SuperExec that has imported them
        # (federated.superexec), as federated.deployment.superlink_start starts it.
        superlink) echo "$BIN/python -m federated.superexec serverapp --runtime-api-address 127.0.0.1:$FLOWER_PORT -- $BIN/flower-superlink --insecure --disable-runtime-dependency-installation --host 127.0.0.1 --port $FLOWER_PORT --isolation process" ;;
    esac
}

configure() {
    [[ -x "$BIN/python" ]] || die "no virtual environment in .venv; run \`make\` first."
    mkdir -p "$STACK_DIR"
    local key_file="$STACK_DIR/secret-key"
    if [[ ! -s "$key_file" ]]; then
        (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(64))' >"$key_file")
        say "generated a new DJANGO_SECRET_KEY in $key_file"
    fi
    chmod 600 "$key_file"

    export DJANGO_SETTINGS_MODULE=config.settings.production
    export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-$(cat "$key_file")}"
    local role password
    for role in owner app; do
        password="$STACK_DIR/db-$role-password"
        if [[ ! -s "$password" ]]; then
            (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_hex(24))' >"$password")
        fi
    done
    export DATABASE_ADMIN_URL="${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    export DATABASE_OWNER_URL="${DATABASE_OWNER_URL:-postgres://flourish_owner:$(cat "$STACK_DIR/db-owner-password")@127.0.0.1:5432/flourish}"
    export DATABASE_URL="${DATABASE_URL:-postgres://flourish_app:$(cat "$STACK_DIR/db-app-password")@127.0.0.1:5432/flourish}"
    DATABASE_APP_ROLE="$("$BIN/python" -c 'import os, psycopg.conninfo as c; print(c.conninfo_to_dict(os.environ["DATABASE_URL"])["user"])')"
    export DATABASE_APP_ROLE
    export CELERY_BROKER_URL="${CELERY_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672//}"
    export DJANGO_ALLOWED_HOSTS="${DJANGO_ALLOWED_HOSTS:-127.0.0.1,localhost}"
    # Served over plain HTTP on loopback: no HTTPS redirect, no secure-only cookies, no HSTS.
    export DJANGO_SECURE_SSL_REDIRECT=0
    export DJANGO_SESSION_COOKIE_SECURE=0
    export DJANGO_CSRF_COOKIE_SECURE=0
    export DJANGO_SECURE_HSTS_SECONDS=0
    # The workers submit release windows here; `flwr run` is found by name and the ServerApp
    # imports the project. As federated.deployment.process_environment: tasks are asked for
    # twice a second, and Flower reports nothing to its telemetry service.
    export FLOWER_SUPERLINK="127.0.0.1:$FLOWER_PORT"
    export FLWR_SUPEREXEC_TASK_POLL_INTERVAL="${FLWR_SUPEREXEC_TASK_POLL_INTERVAL:-0.5}"
    export FLWR_TELEMETRY_ENABLED=0
    export PATH="$PWD/$BIN:$PATH"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
}

# Create the owner and application roles and the database when they do not exist yet.
ensure_database() {
    "$BIN/python" infra/db_roles.py || die "cannot prepare the database through DATABASE_ADMIN_URL (see above)."
}

port_in_use() {
    "$BIN/python" -c 'import socket, sys; sys.exit(socket.socket().connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$PORT"
}

still_running() {
    running_pid "$1" >/dev/null && return 0
    echo "stack: $1 exited; last lines of $(log_file "$1"):" >&2
    tail -n 20 "$(log_file "$1")" >&2
    return 1
}

wait_healthy() {
    local url="http://127.0.0.1:$PORT/healthz" deadline=$((SECONDS + START_TIMEOUT)) name
    while ((SECONDS < deadline)); do
        for name in "${SERVICES[@]}"; do
            still_running "$name" || return 1
        done
        if [[ "$("$BIN/python" - "$url" <<'PY' 2>/dev/null
import sys
import urllib.request

try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
except Exception as error:
    print(getattr(error, "code", 0))
PY
)" == 200 ]]; then
            return 0
        fi
        sleep 1
    done
    echo "stack: $url did not answer 200 within ${START_TIMEOUT}s; see $STACK_DIR/web.log" >&2
    return 1
}

# Wait until both workers log that they are consuming, looking only at what this start appended.
wait_workers() {
    local deadline=$((SECONDS + START_TIMEOUT)) name waiting offset
    while ((SECONDS < deadline)); do
        waiting=0
        for name in worker1 worker2; do
            still_running "$name" || return 1
            offset="offset_$name"
            tail -c "+$((${!offset:-0} + 1))" "$(log_file "$name")" | grep "@.* ready\.$" >/dev/null || waiting=1
        done
        ((waiting)) || return 0
        sleep 1
    done
    echo "stack: the workers were not ready within ${START_TIMEOUT}s; see $STACK_DIR/worker*.log" >&2
    return 1
}

print_urls() {
    local base="http://127.0.0.1:$PORT"
    cat <<INFO

Flourish stack is running (logs and pid files in $STACK_DIR/).

  Site:     $base/
  Admin:    $base/admin/
  Health:   $base/healthz
  Flower:   SuperNodes connect to 127.0.0.1:$FLOWER_PORT (flower-supernode --insecure --superlink …)

Stop it with \`make stack-stop\` (or \`bash infra/stack.sh stop\`).
INFO
}

start() {
    local name running=() stopped=()
    for name in "${SERVICES[@]}"; do
        if running_pid "$name" >/dev/null; then running+=("$name"); else stopped+=("$name"); fi
    done
    if ((${#running[@]})); then
        ((${#stopped[@]})) && die "partly running (${running[*]} up, ${stopped[*]} down); run \`bash infra/stack.sh stop\` first."
        say "already running."
        status
        return 0
    fi

    configure
    port_in_use && die "something already listens on 127.0.0.1:$PORT; set PORT to a free port."
    ensure_database
    say "migrating the database as the owner role"
    DATABASE_URL="$DATABASE_OWNER_URL" "$BIN/python" manage.py migrate --noinput -v 1
    say "collecting static files"
    "$BIN/python" manage.py collectstatic --noinput -v 0

    rm -f "$STACK_DIR"/*.pid
    for name in "${SERVICES[@]}"; do
        printf -v "offset_$name" '%d' "$(wc -c 2>/dev/null <"$(log_file "$name")" || echo 0)"
        # shellcheck disable=SC2046  # the command is split into words on purpose
        launch "$name" $(service_command "$name")
        say "started $name (pid $(cat "$(pid_file "$name")"), log $(log_file "$name"))"
    done

    if ! { wait_healthy && wait_workers; }; then
        say "stopping what was started"
        stop
        exit 1
    fi
    print_urls
}

stop() {
    local name pid targets=() names=() deadline
    for name in "${SERVICES[@]}"; do
        if pid="$(running_pid "$name")"; then
            # TERM to the main process only: it shuts its children down cleanly itself.
            targets+=("$(kill_target "$pid")")
            kill -TERM "$pid" 2>/dev/null || true
            names+=("$name")
        fi
    done
    if ((${#targets[@]} == 0)); then
        say "not running."
    else
        say "sent TERM to ${names[*]}; waiting up to ${STOP_TIMEOUT}s"
        deadline=$((SECONDS + STOP_TIMEOUT))
        local i alive target
        # Wait for each service and, where it has its own group, for all of its child processes.
        while ((SECONDS < deadline)); do
            alive=0
            for target in "${targets[@]}"; do
                kill -0 -- "$target" 2>/dev/null && alive=1
            done
            ((alive)) || break
            sleep 0.5
        done
        for i in "${!targets[@]}"; do
            target="${targets[$i]}"
            if kill -0 -- "$target" 2>/dev/null; then
                say "${names[$i]} (pid ${target#-}) still running after ${STOP_TIMEOUT}s; sending KILL"
                kill -KILL -- "$target" 2>/dev/null || true
            fi
        done
        say "stopped."
    fi
    for name in "${SERVICES[@]}"; do
        rm -f "$(pid_file "$name")"
    done
}

status() {
    local name pid down=0
    for name in "${SERVICES[@]}"; do
        if pid="$(running_pid "$name")"; then
            printf '%-8s running  pid %-7s %s\n' "$name" "$pid" "$(ps -p "$pid" -o args=)"
        else
            printf '%-8s stopped\n' "$name"
            down=1
        fi
    done
    return "$down"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: bash infra/stack.sh start|stop|status" >&2; exit 2 ;;
esac
