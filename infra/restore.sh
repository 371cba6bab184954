#!/usr/bin/env bash
# Restore the Flourish database from a dump made by infra/backup.sh, replacing what is there.
#
#     bash infra/restore.sh [--yes] DUMP_FILE
#
# DATABASE_URL defaults to the local stack's (postgres://postgres@127.0.0.1:5432/flourish). Asks
# for confirmation unless --yes is given. The restore runs in one transaction: on any error the
# database is left as it was.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "restore: $*" >&2; exit 1; }
usage() { echo "usage: bash infra/restore.sh [--yes] DUMP_FILE" >&2; exit 2; }

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/flourish}"
yes=0
dump=""
for arg in "$@"; do
    case "$arg" in
        --yes | -y) yes=1 ;;
        -h | --help) usage ;;
        -*) echo "restore: unknown option $arg" >&2; usage ;;
        *) [[ -z "$dump" ]] || die "give one dump file, not several."; dump="$arg" ;;
    esac
done
[[ -n "$dump" ]] || { echo "restore: no dump file given; refusing to run." >&2; usage; }
[[ -f "$dump" && -r "$dump" ]] || die "$dump is not a readable file."
command -v pg_restore >/dev/null \
    || die "pg_restore not found; install the PostgreSQL client (Debian/Ubuntu: postgresql-client)."
pg_restore --list "$dump" >/dev/null 2>&1 \
    || die "$dump is not a pg_dump custom-format archive (make one with infra/backup.sh)."

target="${DATABASE_URL%%\?*}"
target="${target/\/\/*@/\/\/}"  # hide user and password when showing where the dump goes
if ((!yes)); then
    [[ -t 0 ]] || die "not a terminal, so cannot ask; pass --yes to restore without asking."
    read -r -p "Replace the contents of $target with $dump? Type 'yes' to go on: " answer
    [[ "$answer" == "yes" ]] || die "cancelled; nothing changed."
fi

pg_restore --clean --if-exists --no-owner --single-transaction -d "$DATABASE_URL" "$dump" \
    || die "pg_restore failed; the transaction was rolled back and the database is unchanged."
echo "restore: restored $dump into $target"
