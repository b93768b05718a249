"""Parameter groups partition the model: every trainable parameter in exactly one group."""

from __future__ import annotations

import pytest
from transformers import BertConfig, BertForSequenceClassification

from trainables.param_groups import ParamGroupError, Selector, build_param_groups, default_selectors


@pytest.fixture(scope="module")
def model():
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    return BertForSequenceClassification(cfg)


def test_default_groups_split_base_model_from_head(model):
    groups = build_param_groups(model, default_selectors(model))
    assert set(groups) == {"encoder", "head"}
    assert all(n.startswith("bert.") for n, _ in groups["encoder"])
    assert {n for n, _ in groups["head"]} == {"classifier.weight", "classifier.bias"}
    total = sum(len(m) for m in groups.values())
    assert total == len(list(model.parameters()))


def test_prefix_and_regex_selectors(model):
    groups = build_param_groups(
        model,
        {
            "embeddings": Selector(prefix=("bert.embeddings.",)),
            "encoder": Selector(regex=r"^bert\.(encoder|pooler)\."),
            "head": Selector(prefix=("classifier.",)),
        },
    )
    assert [len(groups[g]) for g in ("embeddings", "encoder", "head")] == [5, 34, 2]


def test_strays_are_listed(model):
    with pytest.raises(ParamGroupError, match=r"2 parameters in no group: classifier.weight, classifier.bias"):
        build_param_groups(model, {"encoder": Selector(prefix=("bert.",))})


def test_overlaps_are_listed(model):
    with pytest.raises(ParamGroupError, match=r"in several groups: bert.pooler.dense.weight \(a, b\)"):
        build_param_groups(
            model,
            {"a": Selector(prefix=("bert.",)), "b": Selector(prefix=("bert.pooler.", "classifier."))},
        )


def test_group_matching_nothing_is_an_error(model):
    with pytest.raises(ParamGroupError, match="groups matching no parameter: vision"):
        build_param_groups(
            model,
            {"all": Selector(regex="."), "vision": Selector(prefix=("vision_tower.",))},
        )


def test_frozen_parameters_are_not_grouped(model):
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    try:
        groups = build_param_groups(model, default_selectors(model))
        assert "bert.embeddings.word_embeddings.weight" not in {n for n, _ in groups["encoder"]}
    finally:
        model.bert.embeddings.word_embeddings.weight.requires_grad_(True)
