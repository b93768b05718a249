"""The image+text task without Ray: tiny random-init towers on generated shapes.

Groups, freezing, learning, exact resume, the data sources, the loss, and the
saved model as a user loads it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from test_loop import weights

from trainables.config import TrialConfig
from trainables.data import DataError, TaskError
from trainables.image_text import METRICS, ImageText, contrastive_loss, load_pretrained, train
from trainables.param_groups import build_param_groups
from trainables.reporting import LocalReporter

SHAPES = ["bad", "film", "good", "plot"]  # the shapes' class names, sorted (tests/conftest.py)

GROUP = {
    "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.0, "momentum": 0.9, "beta1": 0.9, "beta2": 0.999,
    "scheduler": "constant", "warmup_ratio": 0.0, "gamma": 0.5, "step_epochs": 1, "decay": 1.0,
    "frozen": False, "unfreeze_epoch": None,
}  # fmt: skip
CONFIG = {
    "groups": {"vision": dict(GROUP), "text": dict(GROUP), "head": {**GROUP, "lr": 1e-2}},
    "batch_size": 16, "epochs": 3, "dropout": 0.0, "l1": 0.0, "l2": 0.0, "max_grad_norm": 1.0,
    "frozen_layers": 0, "early_stopping_patience": None, "seed": 0,
}  # fmt: skip
RUN = {"metric": "val_zero_shot_accuracy", "mode": "max", "num_threads": 1}


@pytest.fixture
def task(make_image_task, image_folder):
    return make_image_task(image_folder)


def config(**changes) -> dict:
    cfg = copy.deepcopy(CONFIG)
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return cfg


def test_default_groups_cover_every_parameter_exactly_once(task):
    adapter = ImageText(task)
    model = adapter.build_model(TrialConfig.from_dict(CONFIG), None)
    groups = build_param_groups(model, adapter.selectors(model))  # raises on a stray or an overlap
    names = {g: {n for n, _ in members} for g, members in groups.items()}
    everything = {n for n, _ in model.named_parameters()}
    assert set(names) == {"vision", "text", "head"}
    assert names["vision"] == {n for n in everything if n.startswith("vision_model.")}
    assert names["text"] == {n for n in everything if n.startswith("text_model.")}
    assert names["head"] == {"logit_scale", "visual_projection.weight", "text_projection.weight"}
    assert sum(len(v) for v in names.values()) == len(everything)
    # the skeleton checked before a sweep has the same layout, without weights
    skeleton = adapter.model_skeleton()
    assert [n for n, _ in skeleton.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert all(p.is_meta for p in skeleton.parameters())


def test_reports_every_metric_and_learns_the_shapes(task, tmp_path):
    rep = LocalReporter(tmp_path, stream=None)
    last = train(config(epochs=5), task, RUN, rep)
    assert [m["epoch"] for m in rep.history] == [1, 2, 3, 4, 5]
    for m in rep.history:
        assert set(METRICS) <= set(m)
        assert 0 <= m["val_zero_shot_accuracy"] <= 1 and m["val_recall_at_1"] <= m["val_recall_at_5"] <= 1
        assert {"lr/vision", "lr/text", "lr/head"} <= set(m)
    assert last["val_zero_shot_accuracy"] >= 0.75, [m["val_zero_shot_accuracy"] for m in rep.history]  # chance: 0.25
    assert rep.history[-1]["train_loss"] < rep.history[0]["train_loss"]
    assert rep.history[0]["lr/head"] == 1e-2 and rep.history[0]["lr/vision"] == 3e-3


def test_frozen_text_tower_is_unchanged_until_it_unfreezes(task, tmp_path):
    rep = LocalReporter(tmp_path, stream=None)
    cfg = config(epochs=2, groups__text__frozen=True, groups__text__unfreeze_epoch=2)
    train(cfg, task, RUN, rep)
    # the initial weights: the same seed builds the same towers
    torch.manual_seed(cfg["seed"])
    initial = {
        k: v.detach().clone()
        for k, v in ImageText(task).build_model(TrialConfig.from_dict(cfg), None).state_dict().items()
    }
    after1, after2 = weights(rep.checkpoints[0]), weights(rep.checkpoints[1])
    text = [k for k in after1 if k.startswith("text_model.") and "position_ids" not in k]
    vision = [k for k in after1 if k.startswith("vision_model.")]
    assert text and vision
    assert all(torch.equal(after1[k], initial[k]) for k in text)
    assert any(not torch.equal(after2[k], after1[k]) for k in text)
    assert any(not torch.equal(after1[k], initial[k]) for k in vision)
    assert rep.history[0]["trainable_params/text"] == 0 and rep.history[1]["trainable_params/text"] > 0


def test_frozen_layers_freeze_the_lowest_layers_of_both_towers(task, tmp_path):
    rep = LocalReporter(tmp_path, stream=None)
    train(config(epochs=1, frozen_layers=1), task, RUN, rep)
    torch.manual_seed(CONFIG["seed"])
    initial = ImageText(task).build_model(TrialConfig.from_dict(CONFIG), None).state_dict()
    final = weights(rep.checkpoints[-1])
    frozen = [k for k in final if k.startswith(("vision_model.embeddings.", "text_model.embeddings."))]
    trained = [k for k in final if ".layers.0." in k or ".layer.0." in k]
    assert any(k.startswith("vision_model.") for k in frozen) and any(k.startswith("text_model.") for k in frozen)
    assert all(torch.equal(final[k], initial[k]) for k in frozen)
    assert any(not torch.equal(final[k], initial[k]) for k in trained)


def test_saved_checkpoint_loads_as_model_and_processor(task, tmp_path):
    from PIL import Image

    rep = LocalReporter(tmp_path, stream=None)
    train(config(epochs=1), task, RUN, rep)
    model, processor = load_pretrained(str(rep.checkpoints[-1] / "model"))
    image = Image.open(next(Path(task["dataset"]["source"]).glob("good/*.png")))
    inputs = processor(text=[f"the {c}" for c in SHAPES], images=[image], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits_per_image.shape == (1, len(SHAPES))
    assert not model.training

    # packaged as an MLflow pyfunc model: the validation images' zero-shot classes, embeddings of both kinds
    import mlflow.pyfunc
    import pandas as pd

    from trainables import serving

    adapter = ImageText(task)
    example = adapter.serving_example()
    serving.save(str(tmp_path / "pyfunc"), str(rep.checkpoints[-1] / "model"), "image_text", example, [])
    packaged = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    assert {c.name: c.required for c in packaged.metadata.get_input_schema().inputs} == {"image": False,
                                                                                        "caption": False}  # fmt: skip
    table = packaged.predict(pd.DataFrame(example[0]))
    expected = adapter.predictions(model)
    assert table["label"][:2].tolist() == [expected["classes"][i].split()[-1] for i in expected["predicted"][:2]]
    missing = table.isna()
    assert missing["label"][2] and missing["embedding"][2] and not missing["caption_embedding"][2]  # a caption alone
    assert missing["caption_embedding"][1] and not missing["embedding"][1]  # an image without a caption
    for vector in [*table["embedding"][:2], table["caption_embedding"][0], table["caption_embedding"][2]]:
        assert len(vector) == model.config.projection_dim and sum(v * v for v in vector) == pytest.approx(1, abs=1e-4)


def test_captions_from_a_caption_column_and_image_paths_from_a_csv(make_image_task, image_folder, tmp_path):
    import csv

    # a CSV next to the images, with paths relative to itself
    rows = list(csv.DictReader(open(Path(image_folder) / "metadata.csv")))
    data = Path(image_folder) / "pairs.csv"
    with open(data, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "text", "kind"])
        w.writeheader()
        for r in rows:
            w.writerow({"path": r["file_name"], "text": r["caption"], "kind": r["label"]})
    task = make_image_task(str(data), image_column="path", caption_column="text", label_column="kind")
    adapter = ImageText(task)
    assert len(adapter.prepared.train) + len(adapter.prepared.validation) == len(rows)
    assert set(adapter.prepared.captions) == {
        r["caption"] for r in rows
    }  # the captions are the column's, not the template's
    assert adapter.prepared.class_captions == [f"the {c}" for c in SHAPES]
    assert adapter.prepared.train.pixels.shape[1:] == (1, 8, 8)
    metrics = train(config(epochs=1), task, RUN, LocalReporter(stream=None))
    assert set(METRICS) <= set(metrics)

    # captions alone: retrieval metrics, no zero-shot accuracy
    captions_only = make_image_task(str(data), image_column="path", caption_column="text", label_column=None)
    adapter = ImageText(captions_only)
    assert adapter.prepared.class_captions is None and "val_zero_shot_accuracy" in adapter.unavailable_metrics
    metrics = train(config(epochs=1), captions_only, {**RUN, "metric": "val_recall_at_1"}, LocalReporter(stream=None))
    assert "val_zero_shot_accuracy" not in metrics and "val_recall_at_5" in metrics


@pytest.mark.parametrize(
    "dataset, field, words",
    [
        ({"image_column": "picture"}, "task.dataset", ["image_column='picture'", "image, caption, label"]),
        ({"label_column": "kind"}, "task.dataset", ["label_column='kind'"]),
        ({"source": "builtin:cifar"}, "task.dataset", ["builtin:fashion_mnist"]),
    ],
)
def test_data_problems_name_the_field(make_image_task, image_folder, dataset, field, words):
    dataset = dict(dataset)
    with pytest.raises(DataError) as err:
        ImageText(make_image_task(dataset.pop("source", image_folder), **dataset))
    assert err.value.field == field
    assert all(w in str(err.value) for w in words), str(err.value)


def test_missing_image_files_and_bad_towers_are_named(make_image_task, image_folder, tmp_path):
    data = tmp_path / "pairs.csv"
    data.write_text("path,label\n" + "".join(f"nowhere-{i}.png,{('good', 'bad')[i % 2]}\n" for i in range(8)))
    with pytest.raises(DataError, match="4 image files do not exist, e.g. '.*/nowhere-.*.png'"):
        ImageText(make_image_task(str(data), image_column="path", validation_split=0.5))
    task = make_image_task(image_folder)
    task["vision_model"] = {"model_type": "no-such-model"}
    with pytest.raises(TaskError) as err:
        ImageText(task)
    assert err.value.field == "task.vision_model" and "no-such-model" in str(err.value)
    task = make_image_task(image_folder)
    task["vision_model"] = {**task["vision_model"], "hidden_size": "banana"}  # the config class's own check
    with pytest.raises(TaskError) as err:
        ImageText(task)
    assert err.value.field == "task.vision_model.hidden_size"
    assert str(err.value) == "expected an integer, got 'banana'"
    task = make_image_task(image_folder)
    task["text_model"] = {**task["text_model"], "vocab_size": 10}
    with pytest.raises(TaskError, match="30 tokens but the text tower's vocab_size is 10"):
        ImageText(task)


def test_contrastive_loss_is_clips_with_distinct_captions_and_keeps_duplicates_positive():
    from transformers.models.vision_text_dual_encoder.modeling_vision_text_dual_encoder import (
        image_text_contrastive_loss as clip_loss,  # what the model computes with return_loss=True
    )

    torch.manual_seed(0)
    logits = torch.randn(6, 6)
    # distinct captions: image i's caption is caption i -> CLIP's symmetric loss exactly
    assert torch.allclose(contrastive_loss(logits, torch.arange(6)), clip_loss(logits.T))
    # two images sharing a caption: both are its positives, neither is the other's negative
    images = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    captions = images[[0, 2]]  # images 0,1 share caption 0; images 2,3 share caption 1
    images = torch.stack([images[0], images[0], images[2], images[2]])
    shared = contrastive_loss(10 * images @ captions.T, torch.tensor([0, 0, 1, 1]))
    duplicated = torch.cat([captions[:1], captions[:1], captions[1:], captions[1:]])
    naive = clip_loss((10 * images @ duplicated.T).T)  # each image's copy of its caption a negative of the other
    assert shared < naive


def test_spec_problems_are_refused_before_any_training(make_image_spec):
    from tune_service import load_spec
    from tune_service.spec import SpecError
    from tune_service.validate import check_task as check

    ((_, adapter),) = check(load_spec(make_image_spec()))  # a good spec passes, and the data is loaded
    assert len(adapter.prepared.train) == 90
    problems = {
        "search.metric": make_image_spec(
            **{"task.dataset.caption_column": "caption", "task.dataset.label_column": None}
        ),
        "task.tokenizer": make_image_spec(**{"task.tokenizer": "/no/such/tokenizer"}),
        "task.groups": make_image_spec(
            **{
                "task.groups": {
                    "vision": {"prefix": ["vision_model."]},
                    "text": {"prefix": ["text_"]},
                    "head": {"prefix": ["nothing."]},
                }
            }
        ),  # fmt: skip
        "hyperparameters.frozen_layers": make_image_spec(**{"hyperparameters.frozen_layers": 9}),
    }
    for field, spec in problems.items():
        with pytest.raises(SpecError) as err:
            check(load_spec(spec))
        assert [p for p, _ in err.value.problems] == [field], str(err.value)
    with pytest.raises(SpecError, match="search.metric: got 'val_zero_shot_accuracy', which this dataset cannot give"):
        check(load_spec(problems["search.metric"]))


def test_towers_from_local_folders_train_with_their_own_preprocessing(make_image_task, image_folder, tmp_path):
    """Pretrained towers given as folders (as a hub id would be): weights, config and the vision tower's processor."""
    from transformers import AutoConfig, AutoModel, ViTImageProcessorPil

    task = make_image_task(image_folder)
    torch.manual_seed(1)
    vision_dir = tmp_path / "vision"
    vision = AutoModel.from_config(AutoConfig.for_model(**{**task["vision_model"], "image_size": 16}))
    vision.save_pretrained(vision_dir)
    # its own preprocessing: the 8x8 shapes upscaled to its 16x16, with other normalization constants
    ViTImageProcessorPil(size={"height": 16, "width": 16}, image_mean=[0.2], image_std=[0.4]).save_pretrained(
        vision_dir
    )
    task["vision_model"] = str(vision_dir)
    adapter = ImageText(task)
    assert adapter.prepared.train.pixels.shape[1:] == (1, 16, 16)
    assert list(adapter.processor.image_mean) == [0.2]  # its own normalization, not the default 0.5
    model = adapter.build_model(TrialConfig.from_dict(CONFIG), None)
    saved = dict(AutoModel.from_pretrained(vision_dir).named_parameters())
    assert all(torch.equal(p, saved[n.removeprefix("vision_model.")]) for n, p in model.named_parameters()
               if n.startswith("vision_model.") and n.removeprefix("vision_model.") in saved)  # fmt: skip
    metrics = train(config(epochs=1), task, RUN, LocalReporter(stream=None))
    assert set(METRICS) <= set(metrics)
