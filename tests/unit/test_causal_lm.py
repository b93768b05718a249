"""The causal-LM task: the prompt carries no loss, exact match scores generated answers, per-module groups,
resume, adapters (checkpoint, merged load), the data shapes, and bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from trainables import causal_lm
from trainables.config import TrialConfig
from trainables.loop import fit
from trainables.param_groups import build_param_groups
from trainables.reporting import LocalReporter
from trainables.sft_data import IGNORE
from tune_service import SpecError, load_spec
from tune_service.validate import check_task

TINY_LLAMA = {
    "model_type": "llama", "vocab_size": 32, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "num_key_value_heads": 1, "intermediate_size": 64, "max_position_embeddings": 64, "pad_token_id": 0,
    "tie_word_embeddings": False,
}  # fmt: skip
GROUP = {
    "lr": 1e-2, "optimizer": "adamw", "weight_decay": 0.0, "momentum": 0.9, "beta1": 0.9, "beta2": 0.999,
    "scheduler": "constant", "warmup_ratio": 0.0, "gamma": 0.5, "step_epochs": 1, "decay": 1.0,
    "frozen": False, "unfreeze_epoch": None,
}  # fmt: skip
CONFIG = {
    "groups": {"embeddings": dict(GROUP), "layers": dict(GROUP), "lm_head": dict(GROUP)},
    "batch_size": 16, "epochs": 2, "dropout": 0.0, "l1": 0.0, "l2": 0.0, "max_grad_norm": 1.0,
    "frozen_layers": 0, "early_stopping_patience": None, "seed": 0,
}  # fmt: skip
RUN = {"metric": "val_exact_match", "mode": "max", "num_threads": 1}


@pytest.fixture
def lm_task(tiny_bert, answers_csv):
    """The causal_lm task section as the trainable reads it: a tiny Llama from a config, the tiny BERT's words."""
    return {
        "model": dict(TINY_LLAMA), "tokenizer": tiny_bert, "chat_template": None,
        "dataset": {
            "source": answers_csv, "config_name": None, "prompt_column": "review", "response_column": "sentiment",
            "prompt_template": "{prompt} was", "text_column": None, "messages_column": None, "train_split": "train",
            "validation_split": 0.25, "train_size": 120, "validation_size": 40, "seed": 0,
        },
        "max_length": 16, "generation": {"max_new_tokens": 3, "examples": 40}, "gradient_checkpointing": False,
        "groups": None,
    }  # fmt: skip


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, tiny_bert):
    """A small Llama saved to a folder with the tiny BERT's tokenizer: a 'pretrained' causal LM."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    path = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    settings = {k: v for k, v in TINY_LLAMA.items() if k != "model_type"}
    AutoModelForCausalLM.from_config(LlamaConfig(**settings)).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(path)
    return str(path)


def test_the_prompt_carries_no_loss(lm_task):
    task = causal_lm.CausalLM(lm_task)
    examples = task.prepared.train[:4]
    batch = causal_lm.batch_of(examples, task.pad_id)
    for row, example in enumerate(examples):
        labels = batch["labels"][row].tolist()
        assert labels[: len(example.prompt)] == [IGNORE] * len(example.prompt)
        assert labels[len(example.prompt) : len(example.ids)] == example.response
        assert set(labels[len(example.ids) :]) <= {IGNORE}  # padding
    model = task.build_model(TrialConfig.from_dict(CONFIG), None)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), batch["input_ids"][:, 1:], reduction="none"
    )
    response = batch["labels"][:, 1:] != IGNORE
    assert float(task.loss(model, batch)) == pytest.approx(float(per_token[response].mean()), rel=1e-5)
    assert float(task.loss(model, batch)) != pytest.approx(float(per_token[batch["attention_mask"][:, 1:] > 0].mean()))


def test_exact_match_counts_a_right_answer_and_refuses_a_wrong_one(lm_task):
    task = causal_lm.CausalLM(lm_task)
    model = task.build_model(TrialConfig.from_dict(CONFIG), None).eval()
    given = task.answers(model, 40)
    assert len(given) == 40 and all(isinstance(a, str) for a in given)
    task.prepared.validation_answers = [a if i % 4 else a + " wrong" for i, a in enumerate(given)]
    assert task.exact_match(model) == pytest.approx(0.75)


def test_a_trial_learns_the_answers_reports_its_metrics_and_serves_them(  # resume: test_resume_exactly.py
    lm_task, tmp_path
):
    config = {**copy.deepcopy(CONFIG), "epochs": 4}
    whole = LocalReporter(tmp_path / "whole", stream=None)
    fit(causal_lm.CausalLM(lm_task), copy.deepcopy(config), RUN, whole)
    first, last = whole.history[0], whole.history[-1]
    assert last["val_perplexity"] == pytest.approx(math.exp(last["val_loss"]))
    assert last["val_loss"] < first["val_loss"]
    assert last["val_exact_match"] >= 0.75  # "good" or "bad" from the review's words; half is chance
    assert {"lr/embeddings", "lr/layers", "lr/lm_head"} <= set(last)

    model, tokenizer = causal_lm.load_pretrained(str(whole.checkpoints[-1] / "model"))
    assert not model.training and tokenizer.pad_token_id == 0

    # packaged as an MLflow pyfunc model: the validation prompts answered as the trial answered them
    import mlflow.pyfunc
    import pandas as pd

    from trainables import serving

    adapter = causal_lm.CausalLM(lm_task)
    example = adapter.serving_example()
    serving.save(str(tmp_path / "pyfunc"), str(whole.checkpoints[-1] / "model"), "causal_lm", example, [])
    packaged = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    assert [p.name for p in packaged.metadata.signature.params.params] == ["max_new_tokens"]
    answers = packaged.predict(pd.DataFrame(example[0]))["response"].tolist()
    assert answers == adapter.answers(model, 2) and set(answers) <= {"good", "bad"}
    shorter = packaged.predict(pd.DataFrame(example[0]), params={"max_new_tokens": 1})["response"].tolist()
    assert all(len(tokenizer(a, add_special_tokens=False)["input_ids"]) <= 1 for a in shorter)


@pytest.mark.parametrize("tied", [False, True])
def test_default_groups_partition_the_model_and_lm_head_exists_only_untied(lm_task, tied):
    task = causal_lm.CausalLM({**lm_task, "model": {**TINY_LLAMA, "tie_word_embeddings": tied}})
    model = task.build_model(TrialConfig.from_dict(CONFIG), None)
    groups = build_param_groups(model, task.selectors(model))
    assert set(groups) == ({"embeddings", "layers"} if tied else {"embeddings", "layers", "lm_head"})
    assert [n for n, _ in groups["embeddings"]] == ["model.embed_tokens.weight"]
    assert sum(len(m) for m in groups.values()) == len(list(model.parameters()))
    layers = task.layers(model)
    assert layers[0] == ["model.embed_tokens.weight"] and len(layers) == 1 + TINY_LLAMA["num_hidden_layers"]


def causal_spec(make_spec, tiny_bert, **task) -> dict:
    spec = make_spec()
    spec["task"] = {
        "type": "causal_lm", "model": dict(TINY_LLAMA), "tokenizer": tiny_bert, "max_length": 16,
        "dataset": {"source": spec["task"]["dataset"]["source"], "prompt_column": "review",
                    "response_column": "sentiment", "validation_split": 0.25},
        "generation": {"max_new_tokens": 3, "examples": 8}, **task,
    }  # fmt: skip
    spec["hyperparameters"]["groups"] = {g: {"lr": 1e-3} for g in ("embeddings", "layers", "lm_head")}
    return spec


def test_a_tied_model_is_refused_an_lm_head_group_before_ray_starts(make_spec, tiny_bert):
    untied = load_spec(causal_spec(make_spec, tiny_bert))
    assert untied.task.group_names == ("embeddings", "layers", "lm_head") and untied.search.metric == "val_exact_match"
    check_task(untied)
    tied = causal_spec(make_spec, tiny_bert, model={**TINY_LLAMA, "tie_word_embeddings": True})
    with pytest.raises(SpecError) as exc:
        check_task(load_spec(tied))
    ((path, message),) = exc.value.problems
    assert path == "hyperparameters.groups" and "output embeddings are its input ones" in message
    del tied["hyperparameters"]["groups"]["lm_head"]
    check_task(load_spec(tied))  # embeddings and layers: the tied model's groups


def test_an_adapter_on_a_pretrained_lm_trains_a_and_b_alone_and_loads_back_merged(lm_task, tiny_llama, tmp_path):
    adapted = {
        **lm_task,
        "model": tiny_llama,
        "tokenizer": None,
        "adapter": {"type": "lora", "target_modules": "attention"},
    }
    config = {
        **copy.deepcopy(CONFIG), "groups": {"lora_A": dict(GROUP), "lora_B": {**GROUP, "lr": 4e-2}},
        "adapter": {"r": 4, "alpha": 8.0, "dropout": 0.0},
    }  # fmt: skip
    task = causal_lm.CausalLM(adapted)
    model = task.build_model(TrialConfig.from_dict(config), None)
    groups = build_param_groups(model, task.selectors(model))
    assert set(groups) == {"lora_A", "lora_B"}
    assert {n for m in groups.values() for n, _ in m} == {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(".self_attn." in n for m in groups.values() for n, _ in m)  # peft's list for Llama: q_proj, v_proj

    rep = LocalReporter(tmp_path, stream=None)
    fit(task, copy.deepcopy(config), RUN, rep)
    ckpt = str(rep.checkpoints[-1] / "model")
    loaded, tokenizer = causal_lm.load_pretrained(ckpt)
    merged, _ = causal_lm.load_pretrained(ckpt, merge=True)
    assert type(merged).__name__ == "LlamaForCausalLM"
    assert task.answers(loaded, 8) == task.answers(merged, 8)
    assert task.evaluate(merged)["val_loss"] == pytest.approx(rep.history[-1]["val_loss"], rel=1e-4)


def test_an_adapter_on_a_model_from_a_config_is_refused(make_spec, tiny_bert):
    spec = causal_spec(make_spec, tiny_bert, adapter={"type": "lora"})
    spec["hyperparameters"]["groups"] = {"lora_A": {"lr": 1e-3}, "lora_B": {"lr": 1e-3}}
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    assert "built from a config (random weights)" in str(exc.value)


def test_plain_text_and_chat_messages(lm_task, tmp_path):
    import json

    from transformers import AutoTokenizer

    from trainables.sft_data import load_sft_data

    rows = [{"chat": [{"role": "user", "content": "good film"}, {"role": "assistant", "content": "great"}]}] * 8
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tokenizer = AutoTokenizer.from_pretrained(lm_task["tokenizer"])
    dataset = {**lm_task["dataset"], "source": str(path), "messages_column": "chat", "train_size": None,
               "validation_size": None}  # fmt: skip
    template = (
        "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant{% endif %}"
    )
    data = load_sft_data(dataset, 0, tokenizer, 16, template)
    example = data.train[0]
    assert tokenizer.decode(example.prompt) == "[UNK] good film [UNK]"  # user, assistant: not in the vocabulary
    assert tokenizer.decode(example.response) == "great [SEP]" and data.validation_answers[0] == "great"
    with pytest.raises(ValueError, match="task.chat_template"):
        load_sft_data(dataset, 0, tokenizer, 16, None)

    text = {**lm_task["dataset"], "text_column": "review"}
    plain = load_sft_data(text, 0, tokenizer, 16)
    assert all(e.prompt == [] and e.labels == e.response for e in plain.train)


def test_exact_match_is_refused_as_the_metric_when_answers_are_longer_than_generated(make_spec, tiny_bert):
    spec = causal_spec(make_spec, tiny_bert, generation={"max_new_tokens": 1, "examples": 8})
    with pytest.raises(SpecError) as exc:
        check_task(load_spec(spec))  # each answer is a word and the end token: 2 tokens
    ((path, message),) = exc.value.problems
    assert path == "search.metric" and "max_new_tokens=1" in message
    check_task(load_spec({**spec, "search": {**spec["search"], "metric": "val_loss", "mode": "min"}}))


def test_gradient_checkpointing_trains_as_without(lm_task, tmp_path):
    histories = []
    for checkpointing in (False, True):
        rep = LocalReporter(tmp_path / str(checkpointing), stream=None)
        fit(causal_lm.CausalLM({**lm_task, "gradient_checkpointing": checkpointing}), copy.deepcopy(CONFIG), RUN, rep)
        histories.append(rep.history[-1])
    assert histories[1]["val_loss"] == pytest.approx(histories[0]["val_loss"], rel=1e-4)


def test_packing_fills_sequences_with_whole_examples_and_keeps_the_loss_on_responses(lm_task, tmp_path):
    plain = causal_lm.CausalLM(lm_task)
    packed = causal_lm.CausalLM({**lm_task, "max_length": 64, "packing": True})
    assert len(packed.train) < len(plain.train) / 3 and all(len(p.ids) <= 64 for p in packed.train)
    assert [i for p in packed.train for i in p.ids] == [i for e in plain.train for i in e.ids]
    assert [i for p in packed.train for i in p.labels] == [i for e in plain.train for i in e.labels]
    assert packed.steps_per_epoch(16) < plain.steps_per_epoch(16)
    rep = LocalReporter(tmp_path, stream=None)
    fit(packed, {**copy.deepcopy(CONFIG), "epochs": 4}, RUN, rep)
    assert rep.history[-1]["val_loss"] < rep.history[0]["val_loss"]  # it learns from the packed sequences


def test_layer_decay_gives_each_transformer_block_its_rate(lm_task, tmp_path):
    config = copy.deepcopy(CONFIG)
    config["groups"]["layers"]["layer_decay"] = 0.5
    rep = LocalReporter(tmp_path, stream=None)
    fit(causal_lm.CausalLM(lm_task), {**config, "epochs": 1}, RUN, rep)
    (epoch,) = rep.history
    # two blocks: the top one at lr, the one below at half of it (the embeddings are their own group)
    assert epoch["lr/layers"] == pytest.approx(GROUP["lr"])
    assert epoch["lr/layers/bottom"] == pytest.approx(GROUP["lr"] / 2)
