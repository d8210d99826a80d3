#!/usr/bin/env bash
# Local team services on 127.0.0.1: a Prefect server, the `dml-pool` process work pool with
# the dml-sweep deployments, a worker, and an MLflow server. `make serve` runs this;
# `make stop` (scripts/stop.sh) ends what it started. Ports, state directory and Prefect
# home come from the environment, so tests can run a private copy:
#   SERVE_DIR (.serve)  PREFECT_PORT (4200)  MLFLOW_PORT (5000)  PREFECT_HOME (SERVE_DIR/prefect)
set -euo pipefail
cd "$(dirname "$0")/.."
project=$(pwd)
bin="$project/.venv/bin"
serve_dir=$(realpath -m "${SERVE_DIR:-.serve}")
prefect_port=${PREFECT_PORT:-4200}
mlflow_port=${MLFLOW_PORT:-5000}
mkdir -p "$serve_dir"
export PREFECT_HOME=${PREFECT_HOME:-$serve_dir/prefect}
export PREFECT_API_URL="http://127.0.0.1:$prefect_port/api"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export MLFLOW_TRACKING_URI="http://127.0.0.1:$mlflow_port"

start() {  # name, then the command: runs in the background, pid and log in $serve_dir
  local name=$1; shift
  nohup "$@" >"$serve_dir/$name.log" 2>&1 &
  echo $! >"$serve_dir/$name.pid"
}

wait_for() {  # url, seconds
  for _ in $(seq "$2"); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "serve: $1 did not answer in $2 s; see $serve_dir/*.log" >&2
  return 1
}

start prefect-server "$bin/prefect" server start --host 127.0.0.1 --port "$prefect_port"
start mlflow-server "$bin/mlflow" server --host 127.0.0.1 --port "$mlflow_port" \
  --backend-store-uri "sqlite:///$serve_dir/mlflow.db" --artifacts-destination "$serve_dir/mlartifacts"
wait_for "http://127.0.0.1:$prefect_port/api/health" 120
wait_for "http://127.0.0.1:$mlflow_port/health" 120

"$bin/prefect" work-pool inspect dml-pool >/dev/null 2>&1 || "$bin/prefect" work-pool create dml-pool --type process >/dev/null
# prefect.yaml resolves the project directory itself (a build step): a plain deploy.
"$bin/prefect" --no-prompt deploy --all >"$serve_dir/deploy.log" 2>&1 || { cat "$serve_dir/deploy.log" >&2; exit 1; }
start prefect-worker "$bin/prefect" worker start --pool dml-pool

cat <<MSG
Prefect UI  http://127.0.0.1:$prefect_port     MLflow UI  http://127.0.0.1:$mlflow_port
Run a sweep through the deployment:
  export PREFECT_API_URL=$PREFECT_API_URL
  $bin/prefect deployment run dml-sweep/default -p profile=smoke
Logs and state: $serve_dir    Stop everything: make stop
MSG
