"""Ray Tune trainables: the fine-tuning loop with an optimizer per parameter group, and the tasks it trains.

A trainable is a plain function of its config that reports through a small
reporter (:mod:`trainables.reporting`); it never imports the service, and runs
without Ray (``python -m trainables.text_classification --smoke-test``).
Nothing heavy is imported here.
"""
