#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server (Debian's package) for the tests, listening on 127.0.0.1 only,
# and prints the line that exports its URL:
#   eval "$(bash scripts/postgres.sh /tmp/pg)"   # TOKENTUNE_TEST_POSTGRES=postgresql://postgres@127.0.0.1:PORT/tokentune
# Stop it with: pg_ctl -D /tmp/pg/data stop (as the postgres user when run as root).
set -euo pipefail
dir=${1:?usage: postgres.sh DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ]; then echo "postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
mkdir -p "$dir"
if [ "$(id -u)" = 0 ]; then  # the server refuses to run as root
  as_pg=(runuser -u postgres --)
  chown postgres "$dir"
fi
"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >"$dir/initdb.log" 2>&1
"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
"${as_pg[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres tokentune
echo "export TOKENTUNE_TEST_POSTGRES=postgresql://postgres@127.0.0.1:$port/tokentune"
