"""The explainer: streams tokens from vision features without torch; backlog drops are counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edge.explainer.config import ExplainerConfig
from edge.explainer.worker import Explainer, facts_of, prompt_for
from edge.results import InspectionResult, Region

ROOT = Path(__file__).resolve().parents[2]


def result(i: int, verdict: str = "NG", features=True) -> InspectionResult:
    mask = np.zeros((64, 64), np.uint8)
    mask[4:20, 6:30] = 255
    return InspectionResult(
        inspection_id=f"st1-{i}",
        sequence=i,
        source_id="cam0",
        frame_id=i,
        verdict=verdict,
        score=0.9,
        defect_class="crack" if verdict == "NG" else None,
        class_confidence=0.8,
        regions=(Region((6, 4, 29, 19), 384, 0.95),) if verdict == "NG" else (),
        model_id="tiny",
        captured_unix_s=0.0,
        mask=mask,
        features=np.ones((16, 32), np.float32) if features else None,
    )


class CollectingSink:
    def __init__(self) -> None:
        self.explanations: list[tuple[str, str, dict]] = []
        self.done = threading.Event()

    def handle(self, result, image=None) -> None:
        pass

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        self.explanations.append((inspection_id, text, meta))
        self.done.set()

    def close(self) -> None:
        pass


class FailingSink(CollectingSink):
    def handle_explanation(self, inspection_id, text, meta) -> None:
        raise OSError("disk full")


@dataclass(frozen=True)
class _Gen:
    token_ids: tuple
    text: str
    tokens_per_s: float = 10.0


class GatedRuntime:
    """A hand-written runtime whose generation waits until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.prompts: list[str] = []

    def prompt_embeds(self, prefix, vision_features, suffix):
        self.prompts.append(suffix)
        return np.zeros((1, 3, 4), np.float32)

    def generate(self, embeds, max_new_tokens=48, on_text=None):
        self.started.set()
        self.gate.wait(5)
        if on_text:
            on_text("a crack")
        return _Gen((1, 2), "a crack")


def test_full_backlog_drops_oldest_and_counts_without_blocking():
    # given a worker stuck on one explanation and a backlog of 2
    runtime, sink = GatedRuntime(), CollectingSink()
    explainer = Explainer(runtime, [sink], ExplainerConfig(backlog_max=2)).start()
    explainer.submit(result(1))
    assert runtime.started.wait(5)
    # when 4 more NG parts arrive
    started = time.perf_counter()
    outcomes = [explainer.submit(result(i)) for i in range(2, 6)]
    elapsed = time.perf_counter() - started
    # then submit never waits for the LLM, 2 oldest waiting are dropped and counted
    assert elapsed < 0.1
    assert outcomes == ["queued"] * 4
    stats = explainer.stats()
    assert stats.dropped == 2 and stats.backlog == 2
    runtime.gate.set()
    deadline = time.time() + 5
    while explainer.stats().explained < 3 and time.time() < deadline:
        time.sleep(0.01)
    explainer.close()
    assert [e[0] for e in sink.explanations] == ["st1-1", "st1-4", "st1-5"]


def test_drain_waits_for_the_backlog_and_meta_splits_backlog_from_generation():
    # given a worker held on the first of two parts
    runtime, sink = GatedRuntime(), CollectingSink()
    explainer = Explainer(runtime, [sink], ExplainerConfig(backlog_max=4)).start()
    explainer.submit(result(1))
    explainer.submit(result(2))
    assert runtime.started.wait(5)
    # when the gate stays shut, drain gives up at its timeout; then it opens
    assert explainer.drain(0.2) is False
    time.sleep(0.1)
    runtime.gate.set()
    # then drain returns once both are explained and the worker is idle
    assert explainer.drain(5) is True
    assert explainer.stats().explained == 2 and explainer.stats().backlog == 0
    explainer.close()
    first, second = (meta for _, _, meta in sink.explanations)
    # the first waited ~0 in the backlog and generated >= 0.3 s; the second waited for the first
    assert first["backlog_ms"] < 100 and first["generation_ms"] >= 250
    assert second["backlog_ms"] >= 250 and second["generation_ms"] < 100
    for meta in (first, second):
        assert abs(meta["waited_ms"] - meta["backlog_ms"] - meta["generation_ms"]) <= 0.2  # rounding to 0.1 ms
        assert meta["prefill_ms"] == 0.0  # the fake's generation reports no prefill


def test_drop_newest_policy_and_modes():
    runtime = GatedRuntime()
    explainer = Explainer(
        runtime, [CollectingSink()], ExplainerConfig(backlog_max=1, drop_policy="drop_newest")
    ).start()
    assert explainer.submit(result(1)) == "queued"
    assert runtime.started.wait(5)
    assert explainer.submit(result(2)) == "queued"
    assert explainer.submit(result(3)) == "dropped"  # newest refused
    assert explainer.submit(result(4, verdict="OK")) == "skipped"  # NG mode skips OK parts
    assert explainer.submit(result(5, features=None)) == "skipped"  # no vision tokens: nothing to explain
    runtime.gate.set()
    explainer.close()
    assert explainer.stats().dropped >= 1 and explainer.stats().skipped_by_mode == 2


def test_on_request_mode_and_failing_sink_is_counted():
    runtime, good = GatedRuntime(), CollectingSink()
    runtime.gate.set()
    explainer = Explainer(runtime, [FailingSink(), good], ExplainerConfig(mode="on_request")).start()
    assert explainer.submit(result(7)) == "skipped"
    assert explainer.request("st1-7") is True
    assert explainer.request("unknown") is False
    assert good.done.wait(5)
    explainer.close()
    stats = explainer.stats()
    assert stats.sink_failures == 1 and stats.requests_unknown == 1
    assert good.explanations[0][2]["requested"] is True


def test_prompt_is_grounded_in_the_verdict_and_its_mask():
    part = result(1)
    prompt = prompt_for(part, facts_of(part))
    assert "'crack'" in prompt and "top left" in prompt and "(384 pixels)" in prompt and "0.90" in prompt
    assert "surroundings" not in prompt  # no frame given: how it looks is not claimed
    frame = np.full((64, 64, 3), 200, np.uint8)
    frame[4:20, 6:30] = 40
    assert "looks darker than its surroundings" in prompt_for(part, facts_of(part, frame))
    assert "no defect" in prompt_for(result(2, "OK"), facts_of(result(2, "OK")))


class ScriptedRuntime:
    """Answers each prompt with the next scripted text (the LLM's part is not under test here)."""

    def __init__(self, texts) -> None:
        self.texts, self.prompts = list(texts), []

    def prompt_embeds(self, prefix, vision_features, suffix):
        self.prompts.append(suffix)
        return np.zeros((1, 3, 4), np.float32)

    def generate(self, embeds, max_new_tokens=48, on_text=None):
        return _Gen((1, 2, 3), self.texts.pop(0))


def test_every_explanation_is_checked_against_its_verdict_and_mask():
    # given an explainer whose model says the right thing once, then the wrong place, then the wrong look
    frame = np.full((64, 64, 3), 200, np.uint8)
    frame[4:20, 6:30] = 40  # the defect is darker than the part around it
    texts = [
        "A crack in the top left of the image, compact and darker than its surroundings.",
        "A crack in the bottom right of the image.",
        "A crack in the top left of the image, brighter than its surroundings.",
    ]
    sink = CollectingSink()
    explainer = Explainer(ScriptedRuntime(texts), [sink], ExplainerConfig(mode="NG"), class_names=("crack", "hole"))
    with explainer:
        for i in range(3):
            explainer.submit(result(i), frame)
        assert explainer.drain(10)
    # then each explanation carries the checker's verdict, and the disagreements are counted
    meta = {inspection_id: m for inspection_id, _, m in sink.explanations}
    assert meta["st1-0"]["consistent"] is True and meta["st1-0"]["disagreements"] == ""
    assert meta["st1-1"]["consistent"] is False and meta["st1-1"]["disagreements"] == "location"
    assert meta["st1-2"]["consistent"] is False and meta["st1-2"]["disagreements"] == "appearance"
    assert explainer.stats().inconsistent == 2 and explainer.stats().explained == 3


TORCH_FREE = r"""
import sys, json
sys.modules["torch"] = None  # any import of torch now fails
import numpy as np
from edge.explainer.worker import build_explainer
from edge.explainer.config import ExplainerConfig
from edge.results import InspectionResult, Region
pieces = []
class Sink:
    def __init__(self): self.got = []
    def handle(self, r, image=None): pass
    def handle_explanation(self, i, t, m): self.got.append((i, t, m))
    def close(self): pass
sink = Sink()
exp = build_explainer(sys.argv[1], [sink], ExplainerConfig(mode="all", max_new_tokens=12),
                      on_text=lambda i, p: pieces.append(p)).start()
feats = np.load(sys.argv[2])
mask = np.zeros((64, 64), np.uint8)
r = InspectionResult("st-1", 1, "cam", 1, "NG", 0.9, "crack", 0.8, (Region((1, 1, 9, 9), 81, 0.9),), "m", 0.0,
                     mask=mask, features=feats)
exp.submit(r)
import time
t = time.time()
while exp.stats().explained < 1 and time.time() - t < 30: time.sleep(0.02)
exp.close()
print(json.dumps({"pieces": pieces, "got": sink.got[0][:2], "tokens": sink.got[0][2]["tokens"],
                  "torch_loaded": "torch" in sys.modules and sys.modules["torch"] is not None}))
"""


@pytest.mark.slow
def test_explainer_streams_from_vision_features_without_torch(llm_artifact, vision_artifact, parity_images, tmp_path):  # noqa: F811
    # given the vision engine's own vision_features for a real image, from the exported graph
    import onnxruntime as ort

    _, art, _ = llm_artifact
    session = ort.InferenceSession(str(art / "vision.onnx"))
    feats = session.run(["vision_features"], {"image": parity_images[:1]})[0][0]
    np.save(tmp_path / "feats.npy", feats)
    # when a process without torch explains one NG part
    proc = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(art), str(tmp_path / "feats.npy")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # then tokens were streamed piece by piece and the sink got the whole text with the same id
    assert out["torch_loaded"] is False
    assert out["got"][0] == "st-1"
    assert out["tokens"] >= 1
    # (how many tokens the tiny fitted model says before its end token differs between CPUs)
    assert 1 <= len(out["pieces"]) <= out["tokens"] and "".join(out["pieces"]) == out["got"][1]


from tests.unit.test_llm_fixtures import llm_artifact, parity_images, vision_artifact  # noqa: E402,F401,F811


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread priority on this OS")
def test_explainer_thread_runs_at_lower_priority_than_the_verdict_path():
    runtime = GatedRuntime()
    runtime.gate.set()
    base = os.getpriority(os.PRIO_PROCESS, 0)
    with Explainer(runtime, [CollectingSink()], ExplainerConfig(nice=5)) as explainer:
        deadline = time.monotonic() + 5
        while explainer.native_id is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.getpriority(os.PRIO_PROCESS, explainer.native_id) == min(19, base + 5)
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the calling (verdict) thread is untouched
    with Explainer(runtime, [CollectingSink()], ExplainerConfig(nice=0)) as same:
        while same.native_id is None:
            time.sleep(0.01)
        assert os.getpriority(os.PRIO_PROCESS, same.native_id) == base
