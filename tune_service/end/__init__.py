"""The end of a sweep, a stage of its own: what happens once ``Tuner.fit`` returns.

:func:`~tune_service.end.stage.finish` runs its steps in order from one list
(:data:`~tune_service.end.stage.STEPS`), each taking the same :class:`~tune_service.end.stage.EndState`
and leaving in it what the next needs, each timed onto the parent run (``end/STEP_s``):

1. ``confirm``: the finalists trained again with new seeds (:mod:`.confirm`);
2. ``writes``: the trials' last MLflow writes landed;
3. ``summary``: the result read from Tune and MLflow (``tune_service.summary``);
4. ``best_trials``: the winner refitted on every row (:mod:`.refit`), its error analysis
   started (:mod:`.error_analysis`), the finalists scored on the test split (:mod:`.held_out`),
   the last two from best checkpoints in Ray tasks (:mod:`.finalists`);
5. ``close_runs``: the trials' runs ended;
6. ``reports``: the figures (:mod:`.figures`);
7. ``registry``: the winner logged as an MLflow Model (:mod:`.logged_model`), registered and
   promoted (:mod:`.registry`);
8. ``error_analysis``: the analysis's wait, and its tables and figure logged.

Nothing here is imported eagerly: a trial process imports :mod:`.confirm` alone.
"""
