#!/usr/bin/env bash
# Dump the Flourish database to a file in PostgreSQL's custom format (restore with infra/restore.sh).
#
#     bash infra/backup.sh [PATH]
#
# DATABASE_URL defaults to the local stack's (postgres://postgres@127.0.0.1:5432/flourish). Without
# PATH the dump goes to backups/flourish-YYYYmmddTHHMMSSZ.dump. Prints the path of the dump.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "backup: $*" >&2; exit 1; }

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/flourish}"
command -v pg_dump >/dev/null \
    || die "pg_dump not found; install the PostgreSQL client (Debian/Ubuntu: postgresql-client)."

target="${1:-backups/flourish-$(date -u +%Y%m%dT%H%M%SZ).dump}"
mkdir -p "$(dirname "$target")" || die "cannot create the folder for $target."
[[ -e "$target" ]] && die "$target already exists; refusing to overwrite it."

shown="${DATABASE_URL%%\?*}"
shown="${shown/\/\/*@/\/\/}"  # hide user and password in messages

# Write to a temporary name first so that a failed dump never leaves a file that looks complete.
partial="$target.partial"
trap 'rm -f "$partial"' EXIT
(umask 077 && pg_dump --format=custom --file="$partial" "$DATABASE_URL") \
    || die "pg_dump failed (database: $shown); nothing was written."
mv "$partial" "$target"
trap - EXIT
echo "$target"
