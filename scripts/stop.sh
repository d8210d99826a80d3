#!/usr/bin/env bash
# Ends what scripts/serve.sh started (by the pids it recorded), nothing else.
set -uo pipefail
cd "$(dirname "$0")/.."
serve_dir=$(realpath -m "${SERVE_DIR:-.serve}")
for f in "$serve_dir"/*.pid; do
  [ -e "$f" ] || continue
  pid=$(cat "$f")
  # The servers run children (uvicorn, gunicorn, flow runs): end the whole process group.
  pkill -TERM -P "$pid" 2>/dev/null
  kill -TERM "$pid" 2>/dev/null
  for _ in 1 2 3 4 5; do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -KILL "$pid" 2>/dev/null
  rm -f "$f"
done
echo "stopped the services of $serve_dir"
