"""What the winner gets wrong: artifacts of the best trial's run that the MLflow UI shows.

From the best checkpoint's predictions on the validation data (a Ray task with a trial's
resources): the confusion matrix (``error_analysis/confusion_matrix.png``), each class's
precision, recall and F1 (``error_analysis/per_class.json``, an MLflow table) and the examples
it gets wrong with their true and predicted classes (``error_analysis/errors.json``, at most
:data:`MAX_ERRORS`). A task with no classes to predict (a language model) has none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from trainables.api import fold_task

from ..result import SweepResult
from ..spec import SweepSpec
from . import finalists

MAX_ERRORS = 200
FOLDER = "error_analysis"


def confusion(predictions: Mapping) -> list[list[int]]:
    """Rows the true class, columns the predicted one (scikit-learn's ``confusion_matrix``)."""
    from sklearn.metrics import confusion_matrix

    classes = range(len(predictions["classes"]))
    return confusion_matrix(predictions["true"], predictions["predicted"], labels=classes).tolist()


def per_class(predictions: Mapping):
    """A table (pandas) of each class's precision, recall, F1 and support (scikit-learn's, 0 where undefined)."""
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support

    classes = range(len(predictions["classes"]))
    precision, recall, f1, support = precision_recall_fscore_support(
        predictions["true"], predictions["predicted"], labels=classes, zero_division=0
    )
    return pd.DataFrame(
        {"class": predictions["classes"], "precision": precision, "recall": recall, "f1": f1, "support": support}
    )


def errors(predictions: Mapping):
    """A table (pandas) of the examples predicted wrong, the first :data:`MAX_ERRORS`."""
    import pandas as pd

    names = predictions["classes"]
    wrong = [
        {"input": x, "true": names[t], "predicted": names[p]}
        for x, t, p in zip(predictions["inputs"], predictions["true"], predictions["predicted"])
        if t != p
    ]
    return pd.DataFrame(wrong[:MAX_ERRORS], columns=["input", "true", "predicted"])


def figure(predictions: Mapping, matrix: list[list[int]]):
    """The confusion matrix as a matplotlib figure, counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = predictions["classes"]
    size = max(4.0, 0.6 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("validation confusion matrix, best trial")
    fig.tight_layout()
    return fig


@dataclasses.dataclass(frozen=True)
class Pending:
    """An error analysis under way: the predictions' Ray object ref, and the run they go on."""

    run_id: str
    predictions: object


def start(spec: SweepSpec, result: SweepResult, prepared: Mapping | None = None) -> Pending | None:
    """The best trial's predictions on its validation rows, started in a Ray task (None: no checkpoint to
    analyze); :func:`log` waits for them, so the sweep's other end work goes on meanwhile.

    After a refit (which trains on every row it could be checked on), the winner's whose config it trained.
    """
    analyzed = result.refit.get("winner", result.best_trial_id)
    best = next((t for t in result.trials if t.trial_id == analyzed), None)
    if best is None or not best.checkpoint or not best.mlflow_run_id:
        return None
    task = spec.trial_task()
    if "best_fold" in best.metrics:  # cross-validation: the model is this fold's, checked on its validation part
        task = fold_task(task, int(best.metrics["best_fold"]))
    (predictions,) = finalists.submit(spec, [best], task, "predictions", prepared)
    return Pending(best.mlflow_run_id, predictions)


def log(pending: Pending, client) -> None:
    """The confusion matrix, per-class table and wrong examples on the best trial's MLflow run, once its
    predictions are in."""
    import ray

    predictions = ray.get(pending.predictions)
    if predictions is None:  # no classes to predict here (an image+text dataset without labels)
        return
    import matplotlib.pyplot as plt

    run_id = pending.run_id
    matrix = confusion(predictions)
    fig = figure(predictions, matrix)
    client.log_figure(run_id, fig, f"{FOLDER}/confusion_matrix.png")
    plt.close(fig)
    client.log_dict(run_id, {"classes": predictions["classes"], "matrix": matrix}, f"{FOLDER}/confusion_matrix.json")
    client.log_table(run_id, per_class(predictions), f"{FOLDER}/per_class.json")
    client.log_table(run_id, errors(predictions), f"{FOLDER}/errors.json")
