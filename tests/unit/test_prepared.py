"""A task's data prepared once and provided to a trial's process: the trial neither loads nor tokenizes it,
and trains exactly as on data it prepared itself."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import ray
from test_image_text import CONFIG as IMAGE_CONFIG
from test_loop import RUN, config

from trainables import loop, prepared, text_classification
from trainables.config import TrialConfig
from trainables.data import load_text_data
from trainables.prepared import Ragged
from trainables.reporting import LocalReporter
from trainables.text_classification import TextClassification, train


def test_ragged_holds_sequences_end_to_end():
    sequences = [[5, 6, 7], [], [8], [9, 10]]
    ragged = Ragged.of(sequences)
    assert len(ragged) == 4 and [ragged[i].tolist() for i in range(4)] == sequences
    assert ragged.lengths().tolist() == [3, 0, 1, 2] and ragged.flat.dtype == np.int32


@pytest.fixture
def fresh():
    """No data provided to this process and no task built, before and after."""
    prepared._PROVIDED.clear()
    loop._loaded.cache_clear()
    yield
    prepared._PROVIDED.clear()
    loop._loaded.cache_clear()


def test_a_task_given_prepared_data_loads_and_tokenizes_nothing_and_trains_the_same(task, tmp_path, monkeypatch, fresh):
    own = TextClassification(task)  # prepares its own
    data = pickle.loads(pickle.dumps(own.prepared))  # as a trial's process receives it
    prepared.provide(task, data)

    def never(*args, **kwargs):
        raise AssertionError("the trial loaded or tokenized the data again")

    monkeypatch.setattr(text_classification, "load_text_data", never)
    given = TextClassification(copy.deepcopy(task))
    assert given.prepared is data
    generator = lambda: __import__("torch").Generator().manual_seed(0)  # noqa: E731
    for a, b in zip(own.train_batches(16, generator()), given.train_batches(16, generator())):
        assert all((a[k] == b[k]).all() for k in a)
    for a, b in zip(own.val_batches, given.val_batches):
        assert all((a[k] == b[k]).all() for k in a)
    assert given.val_texts == own.val_texts and given.label_names == own.label_names

    ours = train(config(epochs=1), task, RUN, LocalReporter(tmp_path / "given", stream=None))
    monkeypatch.undo()
    prepared._PROVIDED.clear()
    loop._loaded.cache_clear()
    theirs = train(config(epochs=1), task, RUN, LocalReporter(tmp_path / "own", stream=None))
    assert ours["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-6)


def test_prepared_data_comes_out_of_rays_object_store_without_a_copy_and_is_all_a_task_needs(
    task, make_image_task, image_folder, monkeypatch, fresh
):
    """Token ids and images (the bulk of an image+text task's memory) leave the pickle as buffers: Ray's
    object store keeps one copy per node that the trials there read without copying it."""
    from trainables import image_text

    text = TextClassification(task).prepared
    task = make_image_task(image_folder)
    own = image_text.ImageText(task)
    buffers: list = []
    payload = pickle.dumps(own.prepared, protocol=5, buffer_callback=buffers.append)
    pixels = own.prepared.train.pixels
    assert sum(b.raw().nbytes for b in buffers) >= pixels.numel() * pixels.element_size()
    assert len(payload) < pixels.numel() * pixels.element_size() / 4  # the pickle holds little beyond them

    def never(*args, **kwargs):
        raise AssertionError("the trial loaded or preprocessed the images again")

    started = not ray.is_initialized()  # the suite's integration tier keeps one Ray up to its end
    if started:
        ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:  # the arrays and tensors view the object store's memory: read them while it is there
        back = ray.get(ray.put(text))
        assert not back.train_ids.flat.flags.writeable  # a view of the shared object, not a copy
        assert back.train_ids.flat.tolist() == text.train_ids.flat.tolist()
        data = ray.get(ray.put(own.prepared))
        assert (data.train.pixels == pixels).all()
        assert (data.validation.labels == own.prepared.validation.labels).all()
        prepared.provide(task, data)
        monkeypatch.setattr(image_text, "load_image_text_data", never)
        given = image_text.ImageText(copy.deepcopy(task))
        assert given.prepared is data and given.prepared.class_captions == own.prepared.class_captions
        model = given.build_model(TrialConfig.from_dict(IMAGE_CONFIG), None)
        assert given.evaluate(model)["val_loss"] == pytest.approx(own.evaluate(model)["val_loss"])
    finally:
        prepared._PROVIDED.clear()
        if started:
            ray.shutdown()


def test_a_datasets_sections_are_prepared_together_each_text_tokenized_once(make_spec, monkeypatch, fresh):
    """The folds, the refit's and the test split's sections of one dataset: one pool of token ids, each
    section a selection of it holding what it would hold prepared alone; a fold's task builds from it."""
    from tune_service import load_spec, prepared_data

    spec = load_spec(
        make_spec(**{"search.cross_validation": {"folds": 3, "refit": True}, "task.dataset.test_split": 0.2})
    )
    task = spec.trial_task()
    sections = prepared_data.sections(spec, task)
    assert len(sections) == 3 + 3 + 1 and len({prepared.key(s) for s in sections}) == 7
    own = TextClassification(task)
    together = pickle.loads(pickle.dumps(own.prepare([task, *sections]), protocol=5))  # as the object store has it
    pool = together[prepared.key(task)].train_ids
    loaded = [load_text_data(s["dataset"], 0) for s in [task, *sections]]
    texts = {t for data in loaded for part in (data.train, data.validation) for t in part.texts}
    assert len(pool.offsets) - 1 == len(texts)  # every distinct text once, whichever sections hold it
    for section in sections:
        alone = text_classification.prepare_text([section], own.tokenizer)[prepared.key(section)]
        data = together[prepared.key(section)]
        assert data.train_ids.flat is pool.flat and data.validation_ids.flat is pool.flat
        for a, b in ((data.train_ids, alone.train_ids), (data.validation_ids, alone.validation_ids)):
            assert len(a) == len(b) and all(a[i].tolist() == b[i].tolist() for i in range(len(a)))
            assert a.lengths().tolist() == b.lengths().tolist()
        assert (data.train_labels == alone.train_labels).all() and data.validation_texts == alone.validation_texts
    assert len(together[prepared.key(sections[-1])].validation_ids) == 48  # every test row (0.2 of 240)

    prepared.provide_all(together)
    monkeypatch.setattr(text_classification, "load_text_data", lambda *a, **k: pytest.fail("prepared again"))
    fold = TextClassification(sections[1])
    assert fold.prepared is together[prepared.key(sections[1])]
    assert len(fold.val_texts) == len(fold.prepared.validation_ids) == 64  # a third of the 192 rows not for test
