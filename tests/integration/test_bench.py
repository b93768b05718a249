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


def test_ideal_both_ways_then_the_plot(tmp_path):
    lines = bench("ideal.py", "--trials", "4", "--train-size", "32", cwd=tmp_path)

    assert [line["ray"] for line in lines] == ["embedded", "running"]
    for line in lines:
        assert line["trials"] == 4 and line["slots"] == 2
        assert line["trial_compute_s"] > 0
        # the whole call holds Tune's fit; the ideal is the trials' compute over the slots
        assert line["wall_s"] >= line["wall_in_fit_s"] > 0
        assert line["service_over_ideal"] >= line["fit_over_ideal"] > 0

    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "benchmarks.png"
    plotted = bench("plot.py", "--results", str(results), "--out", str(out), cwd=tmp_path)
    assert plotted == [{"bench": "plot", "figures": 2, "out": str(out)}]  # a bar for each way
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
