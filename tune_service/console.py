"""The console: a sweep's progress lines and its summary, as a user reads them in the terminal (and the
parent run's trials table)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from ray.tune import Callback

from search_spaces import flatten

from .result import SweepResult, test_name
from .tracking import ui_command


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trial_label(config: dict, searched: Sequence[str]) -> str:
    """The searched values of a trial's config, e.g. ``encoder.lr=3e-05 batch_size=16``."""
    flat = flatten(config)
    return " ".join(f"{p.removeprefix('groups.')}={_fmt(flat[p])}" for p in searched if p in flat)


def trials_table(result: SweepResult, searched: Sequence[str]) -> str:
    """One row per trial, best first by the sweep's metric; searched hyperparameters as columns."""
    metric = result.metric
    shown = ("val_accuracy", "val_f1", "val_zero_shot_accuracy", "val_recall_at_1", "val_loss")
    extra = [m for m in shown if m != metric and any(m in t.metrics for t in result.trials)]
    header = ["trial", "status", "epochs", metric, *extra, *searched]
    sign = -1 if result.mode == "max" else 1

    def key(t):
        v = t.metrics.get(metric)
        return (v is None, sign * v if v is not None else 0)

    rows = []
    for t in sorted(result.trials, key=key):
        flat = flatten(t.config)
        rows.append(
            [
                t.trial_id,
                t.status,
                str(t.epochs),
                _fmt(t.metrics.get(metric, "-")),
                *(_fmt(t.metrics.get(m, "-")) for m in extra),
                *(_fmt(flat.get(p, "-")) for p in searched),
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pareto_record(result: SweepResult) -> dict:
    """The Pareto front as data (parent run's pareto_front.json)."""
    by_id = {t.trial_id: t for t in result.trials}
    return {
        "objectives": [{"metric": m, "mode": o} for m, o in result.objectives],
        "trial_ids": list(result.pareto_front),
        "trials": [
            {"trial_id": i, "mlflow_run_id": by_id[i].mlflow_run_id}
            | {m: by_id[i].metrics.get(m) for m, _ in result.objectives}
            for i in result.pareto_front
        ],
    }


def pareto_table(result: SweepResult) -> str:
    metrics = [m for m, _ in result.objectives]
    header = ["trial", *(f"{m} ({o})" for m, o in result.objectives)]
    rows = [[r["trial_id"], *(_fmt(r[m]) for m in metrics)] for r in pareto_record(result)["trials"]]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])


def summary(result: SweepResult, searched: Sequence[str]) -> str:
    lines = [
        "",
        f"Sweep {result.name} ({result.sweep_id}): {len(result.trials)} trials, "
        f"{result.strategy} search, {result.wall_time_s:.0f}s",
        "",
        trials_table(result, searched),
        "",
    ]
    if result.stopped_by:
        lines += [f"Stopped by the {result.stopped_by} budget; the best found so far:", ""]
    if len(result.objectives) > 1:
        lines += [f"Pareto front ({len(result.pareto_front)} trials; no other trial beats one on every objective):"]
        lines += ["  " + line for line in pareto_table(result).splitlines()] + [""]
    if result.best_trial_id is None:
        lines.append("No trial reported the metric.")
    else:
        flat = flatten(result.best_config or {})
        lines += [
            f"Best trial {result.best_trial_id}: {result.metric}={_fmt(result.best_value)}{_spread(result)}",
            "Best config (searched values; the full config is best_config.json on the parent run):",
            *(f"  {p}: {flat[p]}" for p in searched if p in flat),
            f"Best checkpoint: {result.best_checkpoint}",
        ]
        lines += confirm_lines(result) + refit_lines(result) + test_lines(result) + model_lines(result)
    lines += [
        "",
        f"MLflow: experiment {result.experiment_id}, parent run {result.parent_run_id}",
    ]
    page = f"#/experiments/{result.experiment_id}/runs/{result.parent_run_id}"
    if result.tracking_uri.startswith(("http://", "https://")):  # a server: its UI is at the same address
        lines.append(f"Open the MLflow UI on these results:\n  {result.tracking_uri.rstrip('/')}/{page}")
    else:
        lines.append(
            f"Open the MLflow UI on these results:\n  {ui_command(result.tracking_uri)}\n"
            f"  then browse http://127.0.0.1:5000/{page}"
        )
    return "\n".join(lines)


def model_lines(result: SweepResult) -> list[str]:
    """The registered version, what it did to the alias champion, and how to load it."""
    if result.model_version is None:
        return []
    return [
        f"Registered {result.name} version {result.model_version}: {result.promotion}",
        f"  load it: mlflow.pyfunc.load_model('models:/{result.name}/{result.model_version}'); "
        f"serve the champion: mlflow models serve -m 'models:/{result.name}@champion' --env-manager local",
    ]


def _spread(result: SweepResult) -> str:
    """Under cross-validation, the folds' spread around the mean, and which fold's model is the checkpoint."""
    std, folds = result.best_metrics.get(f"{result.metric}_std"), result.best_metrics.get("folds")
    if std is None or folds is None:
        return ""
    best_fold = int(result.best_metrics["best_fold"])
    return f" +- {_fmt(std)} (mean of {int(folds)} folds; the checkpoint is fold {best_fold}'s)"


def confirm_lines(result: SweepResult) -> list[str]:
    """Each finalist's score in the search against its mean over new seeds: the winner is the best mean."""
    if not result.confirmed:
        return []
    by_id = {t.trial_id: t for t in result.trials}
    lines = ["", f"Finalists trained again with new seeds ({result.metric}: the search's, then mean +- spread):"]
    for origin, c in result.confirmed.items():
        found = by_id[origin].metrics.get(result.metric) if origin in by_id else None
        best = " (winner)" if origin == result.best_trial_id else ""
        lines.append(
            f"  trial {origin}{best}: {_fmt(found)}, then {_fmt(c['mean'])} +- {_fmt(c['std'])} over "
            f"{len(c['values'])} seeds"
        )
    return lines


def refit_lines(result: SweepResult) -> list[str]:
    """What the refit trained, and that the score above is its winner's folds' mean, not its own."""
    if not result.refit:
        return []
    return [
        f"Refit: trial {result.refit['trial_id']} trained the config of trial {result.refit['winner']} on "
        f"every training row for {result.refit['epochs']} epochs; the best checkpoint is its model, and "
        f"{result.metric} above is the winner's folds' mean, the estimate of how it does"
    ]


def test_lines(result: SweepResult) -> list[str]:
    """The finalists' validation and test scores side by side, with the gap (the validation score's optimism)."""
    scored = [t for t in result.trials if t.test_metrics]
    if not scored:
        return []
    test_metric = test_name(result.metric)
    lines = ["", f"On the test split, which no trial saw ({result.metric} against {test_metric}):"]
    for t in scored:
        # a refit's own val_* are on rows it trained on: its winner's folds' mean is its validation score
        val = result.best_value if t.trial_id == result.refit.get("trial_id") else t.metrics.get(result.metric)
        test = t.test_metrics.get(test_metric)
        gap = f", gap {_fmt(val - test)}" if isinstance(val, float) and isinstance(test, float) else ""
        best = " (best)" if t.trial_id == result.best_trial_id else ""
        lines.append(f"  trial {t.trial_id}{best}: validation {_fmt(val)}, test {_fmt(test)}{gap}")
    return lines


class Progress(Callback):
    """A Tune callback printing one line per trial event: start, each epoch, end.

    Replaces Tune's console output, whose per-trial config tables drown the
    figures a user watches.
    """

    def __init__(self, metric: str, mode: str, total: int | None, searched: Sequence[str], stream=None):
        self.metric, self.mode, self.total = metric, mode, total
        self.searched = list(searched)
        self.stream = stream  # None: sys.stdout when printing (a stream object would not pickle with the Tuner)
        self.start = time.time()
        self.done = 0
        self.best: tuple[float, str] | None = None

    def _print(self, text: str) -> None:
        elapsed = int(time.time() - self.start)
        print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {text}", file=self.stream or sys.stdout, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._print(f"trial {trial.trial_id} started: {trial_label(trial.config, self.searched)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if value is None:
            return
        better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
        if better:
            self.best = (value, trial.trial_id)
        epochs = trial.config.get("epochs", "?")
        extras = " ".join(
            f"{k}={_fmt(result[k])}" for k in ("val_loss", "train_loss", "train_samples_per_s") if k in result
        )
        self._print(
            f"trial {trial.trial_id} epoch {result.get('epoch', '?')}/{epochs}: {self.metric}={_fmt(value)} {extras}"
            f" | best {_fmt(self.best[0])} ({self.best[1]})"
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        of = f"/{self.total}" if self.total else ""
        self._print(f"trial {trial.trial_id} finished ({self.done}{of} done)")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.done += 1
        self._print(f"trial {trial.trial_id} FAILED: see {trial.local_path}")
