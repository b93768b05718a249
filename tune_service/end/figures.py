"""The sweep's report figures, logged as PNGs on its parent run (``reports/``).

Whatever the strategy, the finished trials are told to an in-memory Optuna
study over the sweep's own space (:class:`~search_spaces._space.DefineByRun`),
and Optuna's plots draw from it: optimization history, parallel coordinates,
hyperparameter importance (fANOVA). The learning curves (every trial's metric,
epoch by epoch) are drawn from the trials' histories. With several objectives,
the plots follow the primary one, and the Pareto front is drawn too. The plots of one line per
trial (parallel coordinates, learning curves) draw the best :data:`TOP` trials by the primary
objective, and say so in their title: a thousand lines are unreadable.
"""

from __future__ import annotations

import logging
import warnings

from search_spaces import SEP, DefineByRun, flatten, searched

from ..result import TrialHistory

log = logging.getLogger(__name__)

TOP = 50  # the most trials a plot of one line per trial draws


def study(spec, trials: list[TrialHistory]):
    """An in-memory Optuna study holding ``trials``, over the sweep's search space."""
    import optuna

    objectives = spec.search.all_objectives
    names = set(searched(spec.hyperparameters))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = optuna.create_study(
        directions=["maximize" if mode == "max" else "minimize" for _, mode in objectives],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    space = DefineByRun(spec.hyperparameters)
    for t in trials:
        flat = flatten(t.config)
        point = {k.replace(".", SEP): v for k, v in flat.items() if k in names and v is not None}
        result.enqueue_trial(point)
        trial = result.ask()
        space(trial)
        result.tell(trial, t.values if len(objectives) > 1 else t.values[0])
    return result


def figures(spec, trials: list[TrialHistory]) -> dict:
    """Name -> matplotlib Figure; a plot that cannot be drawn (too few trials) is left out with a log line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as oplt

    trials = [t for t in trials if t.values and all(v is not None for v in t.values)]
    if not trials:
        return {}
    objectives = spec.search.all_objectives
    metric = objectives[0][0]
    target = {} if len(objectives) == 1 else {"target": lambda t: t.values[0], "target_name": metric}
    # importance is computed towards low target values: a maximised primary objective is negated
    sign = -1.0 if objectives[0][1] == "max" else 1.0
    towards = {} if len(objectives) == 1 else {"target": lambda t: sign * t.values[0], "target_name": metric}
    s = study(spec, trials)
    best, which = top(trials, objectives[0][1])
    plots = {
        "optimization_history": lambda: oplt.plot_optimization_history(s, **target),
        "parallel_coordinates": lambda: _titled(
            oplt.plot_parallel_coordinate(study(spec, best) if best is not trials else s, **target),
            f"Parallel coordinates ({which})",
        ),
        "param_importances": lambda: oplt.plot_param_importances(s, **towards),
        "learning_curves": lambda: _learning_curves(plt, best, metric, which),
    }
    if len(objectives) > 1:
        names = [m for m, _ in objectives[:3]]
        targets = (lambda t: t.values[:3]) if len(objectives) > 3 else None
        plots["pareto_front"] = lambda: oplt.plot_pareto_front(s, target_names=names, targets=targets)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, draw in plots.items():
            try:
                ax = draw()
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                log.info("report %s not drawn: %s", name, exc)
                continue
            fig = _figure(ax)
            fig.set_size_inches(10, 6)
            fig.tight_layout()
            out[name] = fig
    return out


def top(trials: list[TrialHistory], mode: str, n: int = TOP) -> tuple[list[TrialHistory], str]:
    """The best ``n`` of ``trials`` by the primary objective (all of them, the same list, when there are
    no more than ``n``), and the words that say which were drawn."""
    if len(trials) <= n:
        return trials, "every trial"
    ranked = sorted(trials, key=lambda t: t.values[0], reverse=mode == "max")
    return ranked[:n], f"the best {n} of {len(trials)} trials"


def _titled(ax, title: str):
    _axes(ax).set_title(title)
    return ax


def _figure(ax):
    return _axes(ax).figure


def _axes(ax):
    import numpy as np

    return ax.flat[0] if isinstance(ax, np.ndarray) else ax


def _learning_curves(plt, trials: list[TrialHistory], metric: str, which: str):
    fig, ax = plt.subplots()
    for t in trials:
        steps = sorted(t.curve)
        if steps:
            ax.plot(steps, [t.curve[s] for s in steps], marker="o", alpha=0.7, label=t.trial_id)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"Learning curves ({metric} per epoch, {which})")
    if len(trials) <= 12:
        ax.legend(fontsize="small")
    return ax
