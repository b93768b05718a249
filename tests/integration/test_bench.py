"""The bench scripts behind BENCHMARKS.md run end to end at a tiny size, and the plot reads what they print.

The figures themselves are measured by hand (BENCHMARKS.md); this keeps the scripts working as the
service changes under them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(script: str, *args: str, cwd: Path) -> list[dict]:
    """Run ``bench/<script>`` in a new process; the JSON lines it printed."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_ideal_on_a_running_ray_then_the_plot(tmp_path):
    # one way (the goal's): each way is the same loop in a process of its own, and each costs a Ray start
    lines = bench("ideal.py", "--trials", "2", "--train-size", "32", "--ray", "running", cwd=tmp_path)

    ((line,),) = [lines]
    assert line["ray"] == "running" and line["trials"] == 2 and line["slots"] == 2
    assert line["trial_compute_s"] > 0
    # the whole call holds Tune's fit; the ideal is the trials' compute over the slots
    assert line["wall_s"] >= line["wall_in_fit_s"] > 0
    assert line["service_over_ideal"] >= line["fit_over_ideal"] > 0
    # the end after the fit, by step as the parent run recorded it
    assert {"writes_s", "summary_s", "reports_s", "registry_s"} <= set(line["end_steps_s"])
    assert line["end_s"] == round(sum(line["end_steps_s"].values()), 1) and line["end_steps_s"]["registry_s"] > 0

    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(line) + "\n")
    out = tmp_path / "benchmarks.png"
    plotted = bench("plot.py", "--results", str(results), "--out", str(out), cwd=tmp_path)
    assert plotted == [{"bench": "plot", "figures": 1, "out": str(out)}]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_adapters_full_against_lora_plus_then_the_plot(tmp_path):
    lines = bench("adapters.py", "--budget", "12", "--ways", "full,lora_plus", "--train-size", "32",
                  "--validation-size", "32", cwd=tmp_path)  # fmt: skip

    ((line,),) = [lines]
    full, lora_plus = line["rows"]
    assert [full["way"], lora_plus["way"]] == ["full", "lora_plus"]
    for row in (full, lora_plus):
        assert row["epochs"] >= 1 and 0 <= row["best"] <= 1 and row["samples_per_s"] > 0
    # the adapter trains a small fraction of the weights, and its checkpoint holds those alone
    assert lora_plus["trainable_params"] < full["trainable_params"] / 50
    assert lora_plus["model_mb"] < full["model_mb"] / 20

    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(line) + "\n")
    out = tmp_path / "benchmarks.png"
    assert bench("plot.py", "--results", str(results), "--out", str(out), cwd=tmp_path)[0]["figures"] == 1
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lm_loop_efficiency_full_and_lora_then_the_plot(tmp_path):
    tiny = ("--hidden", "32", "--layers", "2", "--heads", "2", "--kv-heads", "1", "--intermediate", "64",
            "--vocab", "500", "--seq-len", "32", "--train-size", "32", "--rounds", "1")  # fmt: skip
    (full,) = bench("lm_loop_efficiency.py", *tiny, cwd=tmp_path)
    (lora,) = bench("lm_loop_efficiency.py", *tiny, "--adapter", cwd=tmp_path)
    for line in (full, lora):
        assert line["efficiency"] > 0 and line["seq_len"] == 32 and line["device"].startswith("cpu")
        assert len(line["bare_tokens_per_s"]) == len(line["trainable_tokens_per_s"]) == 1
    assert full["adapter"] is None and full["trained_params"] == full["model_params"]
    assert lora["adapter"] == "lora" and lora["trained_params"] < full["trained_params"] / 10

    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(full) + "\n" + json.dumps(lora) + "\n")
    out = tmp_path / "benchmarks.png"
    assert bench("plot.py", "--results", str(results), "--out", str(out), cwd=tmp_path)[0]["figures"] == 2


def test_trial_start_given_the_prepared_data(tmp_path):
    # the way a sweep's trials start now (a process preparing its own is the plain task, tested everywhere)
    lines = bench("trial_start.py", "--rows", "64", "--repeats", "1", "--ways", "prepared", cwd=tmp_path)

    row, summary = lines
    assert row["way"] == "prepared" and row["rows"] == 64
    assert row["start_to_step_s"] > row["task_s"] > 0 and row["peak_rss_mb"] > 0 and row["prepare_s"] > 0
    assert summary["sizes"] == [64] and summary["start_at_most_over_fewest"] == {"prepared": 1.0}


def test_search_summary_takes_medians_over_seeds_and_the_highest_common_target():
    sys.path.insert(0, str(ROOT / "bench"))
    import strategies

    def run(name, seed, best, **to):  # to: target -> seconds (absent: never reached)
        return {"strategy": name, "seed": seed, "best": best, "trials": 10, "to": {"0.7": None, "0.8": None, **to}}

    runs = [
        *(run("grid", s, 0.56) for s in range(3)),  # Tune's order: its first corner trains nothing
        *(run("grid-shuffled", s, 0.76, **{"0.7": t}) for s, t in enumerate([100, 150, 120])),
        *(run("random", s, 0.79, **{"0.7": t}) for s, t in enumerate([60, 90, 80])),
        run("tpe", 0, 0.82, **{"0.7": 20, "0.8": 100}),
        run("tpe", 1, 0.81, **{"0.7": 40, "0.8": 200}),
        run("tpe", 2, 0.75, **{"0.7": 30}),  # a seed that never reached 0.8 counts as slower than any
    ]
    runs[-1]["trial_best"] = [[30, 0.75], [40, 0.6], [50, 0.71], [60, 0.5]]  # kept by this run only
    summary = strategies.summarize(runs, ["grid", "grid-shuffled", "random", "tpe"], [0.7, 0.8])

    assert summary["rows"]["tpe"]["to"] == {"0.7": 30, "0.8": 200} and summary["rows"]["tpe"]["best"] == 0.81
    assert summary["rows"]["grid"]["to"] == {"0.7": None, "0.8": None}
    assert summary["rows"]["tpe"]["reaching"] == {"0.7": 0.5, "0.8": 0.0}
    assert summary["rows"]["random"]["reaching"] == {"0.7": None, "0.8": None}  # no run kept its trials
    # the shuffled grid reached 0.7 and no grid reached 0.8: the common target is 0.7, against the better grid
    assert summary["common_target"] == 0.7 and summary["fastest"] == "tpe"
    assert summary["better_grid_s"] == 120 and summary["vs_grid"] == 0.25 and summary["vs_random"] == 0.375
    points = strategies.grid_points(seed=1)
    assert len(points) == 3**6 * 2 * 2 == len({json.dumps(p, sort_keys=True) for p in points})
    assert points != strategies.grid_points(seed=2) and points == strategies.grid_points(seed=1)


def test_the_plot_draws_the_latest_trainer_comparison_of_each_space(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    import plot

    def line(space, ratio, ours, theirs):
        return {"bench": "vs_hf_trainer", "space": space, "seeds": [0, 1, 2], "cpus_per_trial": [2],
                "to_target_ratio": ratio, "favour": {"2": {"tune_service": ours, "hf_trainer": theirs}}}  # fmt: skip

    results = tmp_path / "results.jsonl"
    lines = [line("narrow", 0.9, 1, 2), line("wide", 0.25, 2, 1), line("narrow", 0.3, 2, 1)]
    results.write_text("".join(json.dumps(o) + "\n" for o in lines))
    rows = [r for r in plot.ratios(*plot.latest(results)) if "HF Trainer" in r[0]]

    # a later run of a space replaces its bar; each bar says how many seeds each side won
    assert [(label.split("\n")[1].split(",")[0], ratio) for label, ratio, _, _ in rows] == [
        ("narrow space", 0.3), ("wide space", 0.25)
    ]  # fmt: skip
    assert "first on 2, Trainer on 1" in rows[0][0] and all(goal == 0.5 for _, _, goal, _ in rows)
