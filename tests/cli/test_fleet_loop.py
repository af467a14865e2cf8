"""docs/guide/deployment.md's loop runs as written (issue 78, "Done when"): its block's commands in order, against a
real `envsound serve --auth` and a real sensor (`listen --follow --snippets`) on 127.0.0.1: the sensor's events come
with their sound, a reviewer answers them through the API the page's Detections view calls, `fleet check` gives the
precision, the snippet folder is embedded and a detector learned from the verdicts, published to a canary (the one
sensor swaps to it, its events tagged with the version), then to every sensor, then rolled back. What the test changes
in a line: the microphone becomes the recording on stdin, the address the server's free port, the paths and the label
those of this test, and the sensor polls every 0.3 s instead of every minute."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import httpx
from test_fleet_sensor import Lines
from test_sensor import ENVSOUND, onnx_model, recording  # noqa: F401 (fixtures used by name)

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "guide" / "deployment.md"


def loop_block() -> list[str]:
    """The loop section's command lines (comments and blank lines left out)."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("## The loop"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = (line.split("  #")[0].strip() for line in block.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def wait(condition, seconds: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


def test_the_guides_loop_runs_as_written(trained_run, onnx_model, recording, synthetic_manifest, tmp_path,
                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(trained_run.checkpoint, "model.ckpt")
    shutil.copy(onnx_model, "model.onnx")
    secrets = {}
    for name, role in (("lab", "sensor"), ("me", "viewer")):  # the five commands' tokens, before the loop
        ran = subprocess.run([*ENVSOUND, "token", "create", name, "--role", role, "--store", "events.sqlite",
                              "--new-store"], capture_output=True, text=True, timeout=60, check=True)
        secrets[name] = ran.stdout.strip().splitlines()[-1]
    snippets = str((tmp_path / "events-fleet" / "snippets").absolute())
    server = sensor = None
    url, target, outputs = None, None, {}
    audio = recording.read_bytes()
    half = len(audio) // 2
    try:
        for line in loop_block():
            words = shlex.split(line.replace("http://127.0.0.1:8000", url or "URL")
                                .replace("/srv/events-fleet/snippets", snippets))
            assert words[0] == "envsound", line
            command = [*ENVSOUND, *words[1:]]
            if words[1] == "serve":
                server = subprocess.Popen([*command, "--port", "0", "--quiet"], stderr=subprocess.PIPE, text=True)
                said = Lines(server.stderr)
                url = re.search(r"(http://[^/\s]+)/", said.wait_for("serving at", 120)).group(1)
                continue
            if words[1] == "listen":
                command[command.index("mic")] = "-"
                sensor = subprocess.Popen([*command, "--token", secrets["lab"], "--queue", "queue.sqlite",
                                           "--follow-seconds", "0.3", "--heartbeat-seconds", "0.3", "--idle-seconds", "0",
                                           "--deliver-seconds", "30"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                heard = Lines(line.decode() for line in sensor.stderr)
                sensor.stdin.write(audio[:half])
                sensor.stdin.flush()
                target = review(url, secrets, snippets, heard)
                continue
            if words[1] == "learn":
                command[command.index("rooster")] = target
            ran = subprocess.run(command, capture_output=True, text=True, timeout=300)
            assert ran.returncode == 0, (line, ran.stdout, ran.stderr)
            outputs.setdefault(" ".join(words[1:3]), []).append(ran.stdout)
            if words[1:3] == ["token", "create"]:
                secrets[words[3]] = ran.stdout.strip().splitlines()[-1]
            if words[1:3] == ["fleet", "publish"] and "--share" in words:  # the canary: the one sensor swaps to it
                heard.wait_for(r"version 1 \(\w+, sha256 \w+\) taken", 60)
                sensor.stdin.write(audio[half:])
                sensor.stdin.flush()
                wait(lambda: running(url, secrets["me"]) == (1, 1), what="lab running version 1")
        sensor.stdin.close()
        assert sensor.wait(120) == 0, "".join(heard.lines)
        events = httpx.get(f"{url}/v1/events", params={"limit": 1000},
                           headers={"Authorization": f"Bearer {secrets['me']}"}, timeout=30).json()["events"]
    finally:
        for process in (sensor, server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)

    check = outputs["fleet check"][0]
    assert re.search(rf"^lab / {target}: precision 1\.000 \(", check, re.M), check
    learned = re.search(rf"^{target}: threshold .*\((\d+) yes, 0 no reviewed", outputs["learn fleet.db"][0], re.M)
    assert learned and int(learned.group(1)) >= 1, outputs["learn fleet.db"]  # the verdicts reached the windows
    assert "version 1 assigned to lab" in outputs["fleet publish"][0]
    assert "every sensor" in outputs["fleet publish"][1] and "rolled back" in outputs["fleet rollback"][0]
    versions = [e["version"] for e in sorted(events, key=lambda e: e["onset"])]
    assert None in versions and 1 in versions  # heard by its own model, then by the published one
    assert Path("learned/model.ckpt").is_file() and Path("fleet.db/journal.sqlite").is_file()


def review(url: str, secrets: dict, snippets: str, heard: Lines) -> str:
    """What a reviewer does in the Detections view: once an event came with its sound, each event of the most
    heard label, in the random sample's order, answered yes (the sensor hears clips its model trained on); returns that label."""
    headers = {"Authorization": f"Bearer {secrets['ana']}"}
    counted: dict[str, int] = {}

    def enough() -> bool:
        found = httpx.get(f"{url}/v1/review/events", params={"k": 100}, headers=headers, timeout=30).json()
        counted.clear()
        for event in found["events"]:
            counted[event["label"]] = counted.get(event["label"], 0) + 1
        return sum(counted.values()) >= 1

    wait(enough, 60, f"an event with its sound; the sensor said: {''.join(heard.lines)[-2000:]}")
    target = max(counted, key=counted.get)
    offered = httpx.get(f"{url}/v1/review/events", params={"label": target, "sample": "true", "k": 100},
                        headers=headers, timeout=30).json()["events"]
    for event in offered:
        answer = httpx.post(f"{url}/v1/review/verdicts", json={"event": event["event"], "verdict": "yes"},
                            headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
    assert Path(snippets).is_dir()
    return target


def running(url: str, viewer: str) -> tuple:
    status = httpx.get(f"{url}/v1/fleet/status", headers={"Authorization": f"Bearer {viewer}"}, timeout=30).json()
    lab = next((row for row in status["sensors"] if row["sensor"] == "lab"), {})
    return lab.get("assigned"), lab.get("running")
