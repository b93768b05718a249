"""The tracking target: which MLflow store a sweep writes to, and whether it answers.

A local store (SQLite, a folder) or an MLflow tracking server; the URI comes from the
command line, else ``$MLFLOW_TRACKING_URI``, else the spec, else ``sqlite:///mlflow.db``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ._names import DEFAULT_TRACKING_URI


class TrackingError(RuntimeError):
    """MLflow could not take what the sweep produced."""


def resolve_tracking_uri(override: str | None, spec_uri: str | None) -> str:
    """``override`` (the CLI's --tracking-uri), else $MLFLOW_TRACKING_URI, else the spec,
    else a SQLite store in the working directory. Relative SQLite and file paths
    are made absolute so every process resolves them alike.
    """
    uri = override or os.environ.get("MLFLOW_TRACKING_URI") or spec_uri or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
    if "://" not in uri:
        return Path(uri).resolve().as_uri()
    return uri


def is_local_store(uri: str) -> bool:
    """A store only this machine can write (SQLite, a folder), as opposed to a tracking server."""
    return uri.split(":", 1)[0] in ("sqlite", "file", "") or "://" not in uri


def check_server(uri: str, timeout_s: float = 5.0, attempts: int = 2) -> None:
    """Raise :class:`TrackingError` when ``uri`` names a tracking server that does not answer.

    Any HTTP answer (even 401 or 404) means a server is there; only a refused or
    timed-out connection, or a name that does not resolve, counts as unreachable.
    Stores on this machine's disk are not checked.
    """
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    reason = None
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if attempt + 1 < attempts:
                time.sleep(1.0)
    raise TrackingError(
        f"cannot reach the MLflow tracking server at {uri} ({reason}): start it (cluster/mlflow-server.sh), "
        "or pass another --tracking-uri (or MLFLOW_TRACKING_URI, or mlflow.tracking_uri in the spec)"
    )


def ui_command(tracking_uri: str) -> str:
    """The shell command that opens the MLflow UI on ``tracking_uri``'s runs."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    return f"mlflow ui --backend-store-uri {tracking_uri} --port 5000"
