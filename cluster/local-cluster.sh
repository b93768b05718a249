#!/usr/bin/env bash
# A Ray cluster on this machine: a head, N worker nodes and an MLflow tracking server,
# all on 127.0.0.1, with Ray token authentication. For trying multi-node sweeps and
# job submission without machines; the tests use it too.
#
#   cluster/local-cluster.sh up [WORKERS]    # start (default 2 workers); prints the env to use
#   cluster/local-cluster.sh env             # print that env again
#   cluster/local-cluster.sh down            # stop what `up` started (only that)
#
# Environment (all optional):
#   CLUSTER_DIR      state, logs, the token, Tune's shared storage, MLflow data (./.local-cluster)
#   CPUS_PER_NODE    logical CPUs of each node (1); HEAD_CPUS for the head (CPUS_PER_NODE)
#   GPUS_PER_NODE    logical GPUs of each worker node (0); lets GPU placement be tried without GPUs
#   MEMORY_PER_NODE  bytes of memory each node offers to trials (Ray's default: what the machine has)
#   RAY_PORT DASHBOARD_PORT MLFLOW_PORT   (6390, 8265, 5000)
#   MLFLOW=0         no tracking server
#   RAY_AUTH_MODE    token (default) or disabled
#   RAY_TEMP_ROOT    the nodes' Ray temp dirs, one each (/tmp/ray-local-RAY_PORT); their session logs
#
# Every node is a `ray start --block` process whose PID is kept in CLUSTER_DIR; `down`
# sends those PIDs SIGTERM, which stops each node's Ray processes, and nothing else.
set -euo pipefail
cmd="${1:-}"
DIR=$(realpath -m "${CLUSTER_DIR:-./.local-cluster}")
RAY_PORT="${RAY_PORT:-6390}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8265}"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"
CPUS="${CPUS_PER_NODE:-1}"
TEMP_ROOT="${RAY_TEMP_ROOT:-/tmp/ray-local-$RAY_PORT}"
HERE=$(cd "$(dirname "$0")" && pwd)
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
if [[ "$RAY_AUTH_MODE" == token ]]; then export RAY_AUTH_TOKEN_PATH="$DIR/auth_token"; fi
# a stopped sweep (Ray Jobs sends SIGTERM) gets this long to end its MLflow runs before SIGKILL
export RAY_JOB_STOP_WAIT_TIME_S="${RAY_JOB_STOP_WAIT_TIME_S:-60}"
export TUNE_SERVICE_STORAGE_PATH="$DIR/storage"  # Tune's storage: one path every node shares
# the nodes' own default tracking target, for sweeps submitted without one
if [[ "${MLFLOW:-1}" != 0 ]]; then export MLFLOW_TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"; fi

print_env() {
  echo "export RAY_ADDRESS=127.0.0.1:$RAY_PORT"
  echo "export RAY_API_SERVER_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT"
  echo "export RAY_AUTH_MODE=$RAY_AUTH_MODE"
  if [[ "$RAY_AUTH_MODE" == token ]]; then echo "export RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH"; fi
  echo "export TUNE_SERVICE_STORAGE_PATH=$TUNE_SERVICE_STORAGE_PATH"
  if [[ "${MLFLOW:-1}" != 0 ]]; then echo "export MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT"; fi
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "local-cluster: $what did not come up in ${limit}s; logs in $DIR/logs" >&2
  return 1
}

alive_nodes() {
  python - "$RAY_PORT" <<'PY'
import sys, ray
ray.init(address=f"127.0.0.1:{sys.argv[1]}", logging_level="ERROR", log_to_driver=False)
print(sum(1 for n in ray.nodes() if n["Alive"]))
PY
}

start_node() {  # start_node NAME ARGS...
  # each node its own temp dir, as on separate machines: nodes sharing one would unpack a job's
  # runtime env (code, working dir) over each other's. Short, for Ray's socket paths.
  local name=$1; shift
  ray start --block --node-ip-address 127.0.0.1 --disable-usage-stats --temp-dir "$TEMP_ROOT/$name" "$@" \
    >"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
}

up() {
  local workers="${1:-2}"
  if compgen -G "$DIR/*.pid" >/dev/null; then
    echo "local-cluster: already up in $DIR (down first)" >&2; exit 1
  fi
  mkdir -p "$DIR/logs" "$TUNE_SERVICE_STORAGE_PATH"
  if [[ "$RAY_AUTH_MODE" == token && ! -s "$RAY_AUTH_TOKEN_PATH" ]]; then
    (umask 077; python -c "import secrets; print(secrets.token_hex(32), end='')" >"$RAY_AUTH_TOKEN_PATH")
  fi
  local mem=(); [[ -n "${MEMORY_PER_NODE:-}" ]] && mem=(--memory "$MEMORY_PER_NODE")
  start_node head --head --port "$RAY_PORT" --num-cpus "${HEAD_CPUS:-$CPUS}" --num-gpus 0 "${mem[@]}" \
    --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" --include-dashboard true
  wait_for 90 "the Ray head" ray status --address "127.0.0.1:$RAY_PORT"
  for i in $(seq "$workers"); do
    start_node "worker-$i" --address "127.0.0.1:$RAY_PORT" --num-cpus "$CPUS" --num-gpus "${GPUS_PER_NODE:-0}" "${mem[@]}"
  done
  if [[ "${MLFLOW:-1}" != 0 ]]; then
    MLFLOW_HOST=127.0.0.1 MLFLOW_WORKERS=1 setsid "$HERE/mlflow-server.sh" "$DIR/mlflow" "$MLFLOW_PORT" \
      >"$DIR/logs/mlflow.log" 2>&1 &
    echo $! >"$DIR/mlflow.pid"
    wait_for 120 "the MLflow server" python -c \
      "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$MLFLOW_PORT/health', timeout=2)"
  fi
  wait_for 120 "$workers worker nodes" bash -c "[[ \$(alive_nodes) == $((workers + 1)) ]]"
  echo "local-cluster: head + $workers workers on 127.0.0.1 (dashboard http://127.0.0.1:$DASHBOARD_PORT)" >&2
  print_env
}

down() {
  local pids=()
  for f in "$DIR"/*.pid; do
    [[ -e "$f" ]] || continue
    local pid; pid=$(cat "$f")
    if [[ "$(basename "$f")" == mlflow.pid ]]; then
      kill -TERM -- "-$pid" 2>/dev/null || true  # the server's own process group (setsid)
    else
      kill -TERM "$pid" 2>/dev/null || true  # `ray start --block` stops its node's processes
    fi
    pids+=("$pid"); rm -f "$f"
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  done
  echo "local-cluster: stopped ${#pids[@]} processes" >&2
}

export -f alive_nodes; export RAY_PORT
case "$cmd" in
  up) up "${2:-2}" ;;
  down) down ;;
  env) print_env ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
