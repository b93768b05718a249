"""Per-trial resources: parsing, and the check against the cluster's nodes before any trial."""

from __future__ import annotations

import pytest

from tune_service import load_spec
from tune_service.resources import check_fits, trial_resources, worker_bundle
from tune_service.spec import Resources, SpecError

GiB = 2**30
NODES = [{"CPU": 4.0, "memory": 16.0 * GiB}, {"CPU": 8.0, "GPU": 2.0, "memory": 64.0 * GiB}]


@pytest.mark.parametrize(
    "text, expected",
    [("8GiB", 8 * GiB), ("512MB", 512 * 10**6), ("1.5 GiB", int(1.5 * GiB)), (1024, 1024), ("1e9", 10**9)],
)
def test_memory_sizes(text, expected):
    assert Resources(memory=text).memory == expected


def test_memory_written_in_yaml_as_1e9_is_bytes(tmp_path, make_spec):
    """YAML reads 1e9 (no dot) as text: it is a number of bytes all the same."""
    import yaml

    path = tmp_path / "spec.yaml"
    spec = make_spec()
    spec.pop("resources", None)
    path.write_text(yaml.safe_dump(spec) + "resources: {memory: 1e9}\n")
    assert load_spec(path).resources.memory == 10**9


@pytest.mark.parametrize(
    "resources, field, words",
    [
        ({"gpu": 1.5}, "resources.gpu", ["whole number"]),
        ({"memory": "lots"}, "resources.memory", ["8GiB"]),
        ({"memory": 0}, "resources.memory", ["more than 0"]),
        ({"workers": 0}, "resources.workers", ["greater than or equal to 1"]),
        ({"precision": "fp8"}, "resources.precision", ["bf16"]),
    ],
)
def test_bad_resources_are_refused_with_the_field(make_spec, resources, field, words):
    with pytest.raises(SpecError) as exc:
        load_spec(make_spec(resources=resources))
    paths = [p for p, _ in exc.value.problems]
    assert field in paths
    text = str(exc.value)
    assert all(w in text for w in words), text


def test_pbt_with_several_workers_is_refused(make_spec):
    spec = make_spec(resources={"workers": 2})
    spec["search"].update(strategy="random", scheduler="pbt", num_samples=2)
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    assert "resources.workers" in [p for p, _ in exc.value.problems]


def test_a_trial_that_fits_some_node_passes():
    check_fits(Resources(cpu=8, gpu=0.5, memory="32GiB"), NODES)
    check_fits(Resources(cpu=2, workers=6), NODES)  # 2 + 4 slots of 2 CPUs


@pytest.mark.parametrize(
    "resources, field, words",
    [
        (Resources(gpu=4), "resources.gpu", ["4 per trial", "largest", "has 2"]),
        (Resources(cpu=16), "resources.cpu", ["16 per trial", "has 8"]),
        (Resources(memory="128GiB"), "resources.memory", ["128GiB", "has 64GiB"]),
        (Resources(cpu=2, workers=7), "resources.workers", ["at most 6"]),
        (Resources(cpu=1, gpu=1, workers=3), "resources.workers", ["at most 2"]),
    ],
)
def test_a_trial_that_can_never_start_is_refused(resources, field, words):
    with pytest.raises(SpecError) as exc:
        check_fits(resources, NODES)
    assert [p for p, _ in exc.value.problems] == [field]
    assert all(w in str(exc.value) for w in words), str(exc.value)


def test_cpu_and_gpu_that_each_fit_but_not_together():
    with pytest.raises(SpecError, match="do not fit together"):
        check_fits(Resources(cpu=6, gpu=1), [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 8.0}])


def test_what_ray_is_asked_for():
    one = Resources(cpu=2, gpu=0.25, memory="1GiB")
    assert trial_resources(one) == {"cpu": 2, "gpu": 0.25, "memory": GiB}
    assert worker_bundle(one) == {"CPU": 2.0, "GPU": 0.25, "memory": float(GiB)}
    many = Resources(cpu=2, gpu=1, workers=4)
    assert trial_resources(many)["cpu"] == 0  # the workers hold the resources, not the coordinating trial
    assert worker_bundle(many) == {"CPU": 2.0, "GPU": 1.0}
