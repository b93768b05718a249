#!/usr/bin/env bash
# An MLflow tracking server for tune-service sweeps, on one machine.
#
#   cluster/mlflow-server.sh [DATA_DIR] [PORT]         # http://<this host>:PORT
#   MLFLOW_AUTH=1 MLFLOW_AUTH_ADMIN_PASSWORD=... cluster/mlflow-server.sh   # with MLflow's basic-auth app
#
# Runs and the Model Registry go to SQLite in DATA_DIR; artifacts (checkpoints,
# reports) are stored in DATA_DIR/artifacts and served by this server
# (--serve-artifacts), so Ray nodes upload through HTTP and need no shared
# filesystem. For a deployment with Postgres and an object store, see
# cluster/docker-compose.mlflow.yaml.
set -euo pipefail
DATA_DIR=$(realpath -m "${1:-./mlflow-server}")
PORT="${2:-5000}"
HOST="${MLFLOW_HOST:-0.0.0.0}"
mkdir -p "$DATA_DIR/artifacts"
# MLflow 3's job runner (GenAI jobs: scorers, prompt optimization) starts a pool of huey workers that poll
# the database; sweeps never use it, and on a small machine it takes CPU from the trials. Set it to true to use it.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
args=(
  --backend-store-uri "sqlite:///$DATA_DIR/mlflow.db"
  --artifacts-destination "$DATA_DIR/artifacts"
  --serve-artifacts
  --host "$HOST" --port "$PORT"
  --workers "${MLFLOW_WORKERS:-2}"
)
if [[ -n "${MLFLOW_ALLOWED_HOSTS:-}" ]]; then  # reached by a DNS name, not localhost or a private IP
  args+=(--allowed-hosts "$MLFLOW_ALLOWED_HOSTS")
fi
if [[ "${MLFLOW_AUTH:-0}" == 1 ]]; then
  # users live in their own database; the admin is created on first start from MLFLOW_AUTH_ADMIN_PASSWORD
  : "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD for the first start}"
  if [[ -z "${MLFLOW_AUTH_CONFIG_PATH:-}" ]]; then
    export MLFLOW_AUTH_CONFIG_PATH="$DATA_DIR/basic_auth.ini"
    cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = sqlite:///$DATA_DIR/basic_auth.db
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
  fi
  # CSRF protection of the auth app needs a key that stays the same across restarts (and workers)
  if [[ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]]; then
    [[ -f "$DATA_DIR/flask_secret" ]] || (umask 077; python -c "import secrets; print(secrets.token_hex(32))" > "$DATA_DIR/flask_secret")
    MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$DATA_DIR/flask_secret")
    export MLFLOW_FLASK_SERVER_SECRET_KEY
  fi
  args+=(--app-name basic-auth)
fi
exec mlflow server "${args[@]}"
