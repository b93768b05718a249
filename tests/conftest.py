"""Shared fixtures: a tiny random-init BERT and generated sentiment data.

The tiny model is a real transformers BERT (2 layers, hidden size 32) with a
word-level tokenizer built here, saved to a folder, so tests go through the
same "local model path" code a user's model does.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

# the tests that start sweeps (real Ray, MLflow, the CLI as typed): `pytest -m "not slow"` leaves them out
SLOW = ("integration/", "cluster/", "e2e/test_cli.py", "e2e/test_mlflow_ui.py", "e2e/test_resume.py")


def pytest_collection_modifyitems(items) -> None:
    tests = Path(__file__).parent
    for item in items:
        if Path(item.fspath).relative_to(tests).as_posix().startswith(SLOW):
            item.add_marker(pytest.mark.slow)


POSITIVE = ["good", "great", "superb", "lovely", "moving", "brilliant", "fun", "charming"]
NEGATIVE = ["bad", "awful", "dull", "boring", "clumsy", "weak", "tedious", "messy"]
NEUTRAL = ["the", "film", "movie", "plot", "actors", "story", "was", "and", "very", "quite"]


def write_sentiment_csv(path: Path, rows: int = 240, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "sentiment"])
        for i in range(rows):
            positive = i % 2 == 0
            words = rng.sample(NEUTRAL, 4) + rng.sample(POSITIVE if positive else NEGATIVE, 2)
            rng.shuffle(words)
            w.writerow([" ".join(words), "pos" if positive else "neg"])
    return path


def save_tiny_bert(path: Path, num_labels: int = 2) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {t: i for i, t in enumerate(specials + POSITIVE + NEGATIVE + NEUTRAL)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=num_labels,
    )
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def save_tiny_distilbert(path: Path, tiny_bert: str) -> Path:
    """A DistilBERT of the tiny BERT's size and vocabulary (its tokenizer): another architecture to choose."""
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                              max_position_embeddings=64, num_labels=2)  # fmt: skip
    torch.manual_seed(1)
    DistilBertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return str(save_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="session")
def tiny_distilbert(tmp_path_factory, tiny_bert) -> str:
    return str(save_tiny_distilbert(tmp_path_factory.mktemp("tiny-distilbert"), tiny_bert))


@pytest.fixture(scope="session")
def sentiment_csv(tmp_path_factory) -> str:
    return str(write_sentiment_csv(tmp_path_factory.mktemp("data") / "reviews.csv"))


@pytest.fixture
def data_gone_after_the_checks(sentiment_csv, tmp_path, monkeypatch):
    """A copy of the generated reviews that is deleted as soon as a sweep's checks have prepared it: no
    trial, error analysis or packaging of the winner can read it again, only the prepared data."""
    import shutil

    from tune_service import validate

    data = tmp_path / "reviews.csv"
    shutil.copy(sentiment_csv, data)
    check_run = validate.check_run

    def then_gone(*args, **kwargs):
        out = check_run(*args, **kwargs)
        data.unlink()
        return out

    monkeypatch.setattr(validate, "check_run", then_gone)
    return data


@pytest.fixture(scope="session")
def sentiment_csv_of(tmp_path_factory):
    """``make(rows)``: the generated reviews, ``rows`` of them, in a CSV."""

    def make(rows: int) -> str:
        return str(write_sentiment_csv(tmp_path_factory.mktemp("data") / f"reviews-{rows}.csv", rows=rows))

    return make


def tiny_spec(model: str, data: str, **overrides) -> dict:
    """A valid spec dict for the tiny model on the generated data."""
    spec = {
        "name": "tiny",
        "task": {
            "type": "text_classification",
            "model": model,
            "dataset": {
                "source": data,
                "text_column": "review",
                "label_column": "sentiment",
                "validation_split": 0.25,
            },
            "max_length": 16,
        },
        "hyperparameters": {
            "groups": {
                "encoder": {"lr": 1e-3, "optimizer": "adamw"},
                "head": {"lr": 1e-2, "optimizer": "sgd"},
            },
            "batch_size": 16,
            "epochs": 2,
        },
        "search": {"strategy": "random", "num_samples": 1},
    }
    return with_overrides(spec, overrides)


def with_overrides(spec: dict, overrides: dict) -> dict:
    """``spec`` with each ``{"dotted.path": value}`` of ``overrides`` set (missing sections made)."""
    for dotted, value in overrides.items():
        node = spec
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return spec


@pytest.fixture
def make_spec(tiny_bert, sentiment_csv):
    def make(**overrides) -> dict:
        return tiny_spec(tiny_bert, sentiment_csv, **overrides)

    return make


# Tiny image+text data: 8x8 grayscale images with a bright 4x4 square in one quadrant;
# the quadrant is the class, named by words the tiny BERT's vocabulary holds.
SHAPE_CLASSES = ["good", "bad", "film", "plot"]
# Both towers from configs (random init). Trained from scratch together, towers this small
# need a wider init than transformers' 0.02 to tell inputs apart (and no dropout: see CONFIG).
TINY_VIT = {
    "model_type": "vit", "image_size": 8, "patch_size": 8, "num_channels": 1, "hidden_size": 16,
    "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32, "initializer_range": 0.1,
}  # fmt: skip
TINY_TEXT = {
    "model_type": "bert", "vocab_size": 30, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 32, "max_position_embeddings": 16, "initializer_range": 0.3,
}  # fmt: skip


def write_image_folder(root: Path, per_class: int = 30, seed: int = 0) -> Path:
    """An image folder: ``<class>/<n>.png``, plus a metadata.csv with each image's caption and label
    (with a metadata file, ``datasets`` takes the labels from it rather than from the folder names)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = ["file_name,caption,label"]
    for k, name in enumerate(SHAPE_CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (8, 8), dtype=np.uint8)
            r, c = divmod(k, 2)
            img[4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 180
            Image.fromarray(img, mode="L").save(root / name / f"{i}.png")
            rows.append(f"{name}/{i}.png,the {name} {'was' if i % 2 else 'and'} {name},{name}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> str:
    return str(write_image_folder(tmp_path_factory.mktemp("shapes")))


def image_task(tiny_bert: str, folder: str, **dataset) -> dict:
    """The image_text task section as the trainable reads it: tiny towers (the tiny BERT tokenizer), the shapes."""
    return {
        "vision_model": dict(TINY_VIT),
        "text_model": dict(TINY_TEXT),
        "tokenizer": tiny_bert,
        "projection_dim": 16,
        "max_length": 8,
        "dataset": {
            "source": folder, "config_name": None, "image_column": "image", "caption_column": None,
            "label_column": "label", "caption_template": "the {label}", "train_split": "train",
            "validation_split": 0.25, "train_size": None, "validation_size": None, "seed": 0, **dataset,
        },
        "groups": None,
    }  # fmt: skip


@pytest.fixture
def make_image_task(tiny_bert):
    """``make(source, **dataset)``: the image_text task section on ``source`` (default: the shapes folder)."""

    def make(source: str, **dataset) -> dict:
        return image_task(tiny_bert, source, **dataset)

    return make


@pytest.fixture
def make_image_spec(tiny_bert, image_folder):
    """``make(**overrides)``: a valid image_text spec dict on the tiny towers and the shapes."""

    def make(**overrides) -> dict:
        task = image_task(tiny_bert, image_folder)
        task["dataset"] = {k: v for k, v in task["dataset"].items() if v is not None}
        group = {"lr": 3e-3, "optimizer": "adamw"}
        spec = {
            "name": "tiny-image-text",
            "task": {"type": "image_text", **{k: v for k, v in task.items() if v is not None}},
            "hyperparameters": {
                "groups": {"vision": dict(group), "text": dict(group), "head": {**group, "lr": 1e-2}},
                "batch_size": 16,
                "epochs": 2,
                "dropout": 0.0,
            },
            "search": {"strategy": "random", "num_samples": 1},
        }
        return with_overrides(spec, overrides)

    return make


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server this test starts in a session of its own (``launch``), polled until ``url`` answers 200;
    ``stop()`` ends that session's processes and nothing else."""

    def __init__(self, log: Path):
        self.proc = None
        self.log = log

    def launch(self, cmd: list[str], env: dict, url: str, timeout: float) -> None:
        import subprocess
        import time
        import urllib.request

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"{cmd[0]} did not answer in {timeout} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # the server and its workers: the group this test started
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


class MlflowServer(ServerProcess):
    """A real ``mlflow server`` process started with the project's recipe (cluster/mlflow-server.sh).

    Runs and the registry in SQLite under ``data_dir``, artifacts served by the
    server itself. ``stop()`` and ``start()`` again keep the same port and data:
    the server going away and coming back.
    """

    def __init__(self, data_dir: Path, env: dict | None = None):
        super().__init__(data_dir / "server.log")
        self.port = free_port()
        self.data_dir = data_dir
        self.env = env or {}

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> MlflowServer:
        import os
        import sys

        script = Path(__file__).resolve().parents[1] / "cluster" / "mlflow-server.sh"
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **self.env}
        env.update(MLFLOW_HOST="127.0.0.1", MLFLOW_WORKERS="1")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.launch([str(script), str(self.data_dir), str(self.port)], env, f"{self.uri}/health", timeout)
        return self


class ModelServer(ServerProcess):
    """``mlflow models serve -m MODEL_URI`` as a user types it, on a free loopback port, in this environment."""

    def __init__(self, model_uri: str, tracking_uri: str, log: Path):
        super().__init__(log)
        self.model_uri, self.tracking_uri = model_uri, tracking_uri
        self.port = free_port()

    def start(self, timeout: float = 180) -> ModelServer:
        import os
        import sys

        bin_dir = str(Path(sys.executable).parent)  # as in an activated environment: mlflow and uvicorn on PATH
        cmd = ["mlflow", "models", "serve", "-m", self.model_uri, "--env-manager", "local", "-h", "127.0.0.1",
               "-p", str(self.port)]  # fmt: skip
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MLFLOW_TRACKING_URI": self.tracking_uri}
        self.launch(cmd, env, f"http://127.0.0.1:{self.port}/ping", timeout)
        return self

    def predict(self, columns: list[str], rows: list[list]) -> list:
        import json
        import urllib.request

        body = json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as r:
            return json.loads(r.read())["predictions"]


@pytest.fixture
def mlflow_server(tmp_path):
    """Start-on-demand real tracking servers, stopped at the end of the test."""
    servers: list[MlflowServer] = []

    def start(env: dict | None = None) -> MlflowServer:
        server = MlflowServer(tmp_path / f"mlflow-server-{len(servers)}", env).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def model_server(tmp_path):
    """``start(model_uri, tracking_uri)``: real ``mlflow models serve`` processes, stopped at the end of the test."""
    servers: list[ModelServer] = []

    def start(model_uri: str, tracking_uri: str) -> ModelServer:
        server = ModelServer(model_uri, tracking_uri, tmp_path / f"model-server-{len(servers)}.log").start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _trial_pids(node) -> list[int]:
    """PIDs of ``node``'s trial processes: children of its raylet titled ``ray::ImplicitFunc...`` (a trial's actor)."""
    from ray._private import ray_constants

    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):  # a process that ended while it was read
                continue
            if cmdline.startswith(b"ray::ImplicitFunc") and parent == raylet:
                pids.append(int(entry.name))
    return pids


@pytest.fixture
def trial_pids():
    """``trial_pids(node)``: the PIDs of a Ray node's trial processes (this process's node when None)."""

    def pids(node=None) -> list[int]:
        if node is None:
            from ray._private import worker

            node = worker._global_node
        return _trial_pids(node)

    return pids
