"""The MLflow UI, in headless Chromium, shows a sweep as a parent run with its trials nested under it,
each trial's data in the Dataset column and the winner's model in the Models column.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe``
(JSON messages on file descriptors 3 and 4), so no browser driver is needed.
The screenshot is saved next to the test's files (and under $UI_SCREENSHOT_DIR when set).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CLI = str(Path(sys.executable).parent / "tune-service")


class Browser:
    """Headless Chromium, one page, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path, size=(1600, 1000)):
        cmd_r, self._cmd_w = os.pipe()  # we write commands, Chromium reads fd 3
        self._out_r, out_w = os.pipe()  # Chromium writes fd 4, we read
        args = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
            f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}", "about:blank",
        ]  # fmt: skip

        def fds():  # in the child: the pipe ends on 3 and 4, out of each other's way first
            high_r, high_w = os.dup(cmd_r) + 100, os.dup(out_w) + 100
            os.dup2(cmd_r, high_r)
            os.dup2(out_w, high_w)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        # close_fds off: subprocess would close 3 and 4 again after fds() ran
        self.proc = subprocess.Popen(
            args, close_fds=False, preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        os.close(cmd_r)
        os.close(out_w)
        self._id, self._buf, self.session = 0, b"", None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._out_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def js(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.js(expression):
                return
            time.sleep(0.5)
        raise AssertionError(f"page never satisfied {expression}: {self.js('document.body.innerText')[:2000]}")

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        self.proc.kill()  # the browser this test started
        self.proc.wait(timeout=30)
        os.close(self._cmd_w)
        os.close(self._out_r)


def test_mlflow_ui_shows_the_sweep_with_nested_trial_runs_their_data_and_the_winners_model(
    make_spec, mlflow_server, tmp_path
):
    assert CHROMIUM, "no chromium on PATH: `make browser` installs Debian's package (make test does it first)"
    server = mlflow_server()
    spec = make_spec(
        **{
            "name": "ui-sweep",
            "search": {"strategy": "grid", "max_concurrent_trials": 2},
            "hyperparameters.groups.head.lr": {"grid": [0.01, 0.03]},
            "hyperparameters.epochs": 1,
        }
    )
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.run(
        [CLI, "run", "sweep.yaml", "--tracking-uri", server.uri, "--num-cpus", "2", "--storage-path", "ray"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("ui-sweep")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trials) == 2
    best = client.get_run(parent.data.tags["tune_service.best_run_id"])
    assert len(best.outputs.model_outputs) == 1  # the winner's logged model
    digests = {i.tags[0].value: i.dataset.digest for i in best.inputs.dataset_inputs}

    browser = Browser(tmp_path / "chromium-profile")
    try:
        url = f"{server.uri}/#/experiments/{experiment.experiment_id}/runs"
        browser.call("Page.enable")
        browser.call("Page.navigate", url=url)
        name = parent.info.run_name
        browser.wait_for(f"document.body.innerText.includes({json.dumps(name)})")
        # collapsed: the sweep is one row, its trials counted under it
        visible = browser.js("document.body.innerText")
        assert "3 matching runs" in visible
        assert not any(t.info.run_name in visible for t in trials)
        # expanding the sweep's row shows its trials, indented under it
        browser.js(
            "document.querySelectorAll('button[data-component-id*=\"runnamecellrenderer\"]').forEach(b => b.click())"
        )
        names = json.dumps([t.info.run_name for t in trials])
        browser.wait_for(f"{names}.every(n => document.body.innerText.includes(n))")
        # the Dataset column: each trial's training and validation rows, by source and digest
        visible = browser.js("document.body.innerText")
        assert "Dataset" in visible and "Models" in visible
        for use in ("training", "validation"):
            assert f"{spec['task']['dataset']['source']} ({digests[use][:8]})" in visible
        # the Models column: the best trial's logged model, linked to its registered version
        links = browser.js("JSON.stringify([...document.querySelectorAll('a')].map(a => a.getAttribute('href')))")
        assert "#/models/ui-sweep/versions/1" in json.loads(links)
        shot = browser.screenshot(tmp_path / "mlflow-ui-sweep.png")
    finally:
        browser.close()
    assert shot[:4] == b"\x89PNG" and len(shot) > 20_000
    if os.environ.get("UI_SCREENSHOT_DIR"):
        Path(os.environ["UI_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "mlflow-ui-sweep.png", Path(os.environ["UI_SCREENSHOT_DIR"]) / "mlflow-ui-sweep.png")
