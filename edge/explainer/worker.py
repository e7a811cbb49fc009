"""Explanations for inspected parts, produced later on a separate worker thread.

The pipeline calls `Explainer.submit(result)` right after a verdict is published: it
never blocks (a bounded backlog with a named, counted drop policy) and never runs the
language model on the verdict path. The worker feeds the vision tokens the vision engine
already computed (`InspectionResult.features`: no second vision pass) and a prompt
grounded in the verdict (eiad/grounding.py: class, score and the facts measured on the
published mask and the frame) to the LLM runtime, streams the text to `on_text`, reads
the text back with the consistency checker (eiad/description/check.py) and hands it,
with `meta.consistent` / `meta.disagreements`, to every `ExplanationSink`
(edge/sinks/base.py) with the same inspection id. A failing sink is logged and counted,
never fatal. Facts and check run on the worker thread, never on the verdict path.

Modes: "NG" (default) explains rejected parts; "all" every part; "sampled" every n-th
part; "on_request" only ids asked for with `request(id)`. Any mode also explains ids
asked for over MQTT when `mqtt_requests` is set (edge/explainer/requests.py validates them;
`request_outcome` decides). Requests are refused rather than pushing others out of a full
backlog, and an id already queued or explained is refused as a duplicate.
Thread safety: submit/request/request_outcome/stats/close may be called from any thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edge.explainer.config import ExplainerConfig
from edge.results import InspectionResult
from edge.sinks.base import ExplanationSink
from eiad.description.check import check_explanation
from eiad.description.facts import DefectFacts, measure_defect
from eiad.grounding import grounded_prompt

log = logging.getLogger(__name__)


class Runtime(Protocol):
    def prompt_embeds(self, prefix: str, vision_features: np.ndarray | None, suffix: str) -> np.ndarray: ...
    def generate(self, embeds: np.ndarray, max_new_tokens: int = 48, on_text: Callable[[str], None] | None = None): ...


@dataclass
class ExplainerStats:
    submitted: int = 0
    skipped_by_mode: int = 0
    queued: int = 0
    dropped: int = 0
    explained: int = 0
    failed: int = 0
    sink_failures: int = 0
    requests_unknown: int = 0
    inconsistent: int = 0  # explanations the checker found disagreeing with their verdict
    backlog: int = 0
    last_tokens_per_s: float = 0.0
    drop_policy: str = ""


@dataclass(frozen=True)
class _Job:
    result: InspectionResult
    image: np.ndarray | None = None  # the frame, for how the defect looks (None: not known)
    requested: bool = False
    requested_by: str | None = None
    queued_ns: int = field(default_factory=time.monotonic_ns)


def facts_of(result: InspectionResult, image: np.ndarray | None = None) -> DefectFacts | None:
    """The facts of an NG result's published mask (and its frame, for the appearance); None
    for an OK part or an NG one with no mask pixel."""
    if result.verdict != "NG" or result.mask is None:
        return None
    return measure_defect(result.mask, image)


def prompt_for(result: InspectionResult, facts: DefectFacts | None) -> str:
    """The grounded question for one result: its verdict, class, score and mask facts."""
    verdict = "NG" if result.verdict == "NG" else "OK"
    return grounded_prompt(verdict, result.defect_class, float(min(1.0, max(0.0, result.score))), facts)


class Explainer:
    """One worker thread turning results into explanations; see the module docstring."""

    def __init__(
        self,
        runtime: Runtime,
        sinks: Sequence[ExplanationSink],
        config: ExplainerConfig,
        template: tuple[str, str] = ("", "{prompt}"),
        on_text: Callable[[str, str], None] | None = None,
        class_names: Sequence[str] = (),
    ) -> None:
        self.runtime, self.sinks, self.config = runtime, list(sinks), config
        self.class_names = tuple(class_names)  # what the checker looks for in a text
        self.before_image, self.after_image = template
        self.on_text = on_text  # (inspection_id, piece of text), called on the worker thread
        self._backlog: deque[_Job] = deque()
        self._recent: OrderedDict[str, InspectionResult] = OrderedDict()
        self._taken: OrderedDict[str, None] = OrderedDict()  # ids queued or explained (bounded like _recent)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._stats = ExplainerStats(drop_policy=config.drop_policy)
        self._parts_seen = 0
        self._busy = False  # the worker is explaining a part (guarded by _cond)
        self.native_id: int | None = None  # the worker thread's OS id, once it runs
        self._thread = threading.Thread(target=self._work, name="explainer", daemon=True)

    def start(self) -> Explainer:
        self._thread.start()
        return self

    def submit(self, result: InspectionResult, image: np.ndarray | None = None) -> str:
        """Offer a result (and its frame: kept only while queued, for the appearance fact);
        returns 'queued', 'skipped' or 'dropped'. Never blocks on the LLM."""
        with self._cond:
            self._stats.submitted += 1
            self._parts_seen += 1
            if self.config.remember_recent:
                self._recent[result.inspection_id] = result
                while len(self._recent) > self.config.remember_recent:
                    self._recent.popitem(last=False)
            if not self._wanted(result):
                self._stats.skipped_by_mode += 1
                return "skipped"
            return self._enqueue(_Job(result, image))

    def request(self, inspection_id: str) -> bool:
        """Explain a recent part on demand (any mode); False if it is no longer remembered,
        already queued/explained, or the backlog is full."""
        return self.request_outcome(inspection_id) == "queued"

    def request_outcome(
        self, inspection_id: str, requested_by: str | None = None, admit: Callable[[], bool] | None = None
    ) -> str:
        """Queue an explanation of a remembered part; returns 'queued' or why not: 'unknown_inspection'
        (never seen or forgotten), 'not_explainable' (REJECTED frame or no vision features),
        'duplicate' (already queued or explained), 'rate_limited' (`admit()` said no: called
        only for a request that would otherwise be queued), 'backlog_full', 'stopped'.
        Never blocks on the LLM; never pushes another part out of the backlog."""
        with self._cond:
            result = self._recent.get(inspection_id)
            if result is None:
                self._stats.requests_unknown += 1
                return "unknown_inspection"
            if result.features is None or result.verdict == "REJECTED":
                return "not_explainable"
            if inspection_id in self._taken:
                return "duplicate"
            if self._stop.is_set():
                return "stopped"
            if len(self._backlog) >= self.config.backlog_max:
                return "backlog_full"
            if admit is not None and not admit():
                return "rate_limited"
            return self._enqueue(_Job(result, requested=True, requested_by=requested_by))

    def stats(self) -> ExplainerStats:
        with self._cond:
            snapshot = ExplainerStats(**vars(self._stats))
            snapshot.backlog = len(self._backlog)
            return snapshot

    def drain(self, timeout_s: float) -> bool:
        """Wait until the backlog is empty and no part is being explained (a benchmark's end,
        a shutdown that wants the last explanations); True if idle within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._backlog or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker after the explanation in progress; waiting parts are dropped and counted."""
        self._stop.set()
        with self._cond:
            self._stats.dropped += len(self._backlog)
            self._backlog.clear()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def __enter__(self) -> Explainer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------

    def _wanted(self, result: InspectionResult) -> bool:
        if not self.config.enabled or result.features is None or result.verdict == "REJECTED":
            return False
        mode = self.config.mode
        if mode == "all":
            return True
        if mode == "NG":
            return result.verdict == "NG"
        if mode == "sampled":
            return self._parts_seen % self.config.sample_every_n == 0
        return False  # on_request: only request()

    def _enqueue(self, job: _Job) -> str:
        """Caller holds self._cond."""
        if self._stop.is_set():
            self._stats.dropped += 1
            return "dropped"
        if len(self._backlog) >= self.config.backlog_max:
            self._stats.dropped += 1
            if self.config.drop_policy == "drop_newest":
                log.debug("explanation backlog full: dropped %s (new)", job.result.inspection_id)
                return "dropped"
            old = self._backlog.popleft()
            self._taken.pop(old.result.inspection_id, None)  # dropped: it may be requested again
            log.debug("explanation backlog full: dropped %s (oldest)", old.result.inspection_id)
        self._backlog.append(job)
        self._taken[job.result.inspection_id] = None
        while len(self._taken) > max(self.config.remember_recent, self.config.backlog_max):
            self._taken.popitem(last=False)
        self._stats.queued += 1
        self._cond.notify()
        return "queued"

    def _work(self) -> None:
        _lower_priority(self.config.nice)
        self.native_id = threading.get_native_id()  # published after the priority is set
        while not self._stop.is_set():
            with self._cond:
                while not self._backlog and not self._stop.is_set():
                    self._cond.wait(0.5)
                if self._stop.is_set():
                    return
                job = self._backlog.popleft()
                self._busy = True
            try:
                self._explain(job)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _explain(self, job: _Job) -> None:
        result = job.result
        started_ns = time.monotonic_ns()
        try:
            facts = facts_of(result, job.image)
            prompt = prompt_for(result, facts)
            embeds = self.runtime.prompt_embeds(
                self.before_image, result.features, self.after_image.format(prompt=prompt)
            )
            stream = (lambda piece: self.on_text(result.inspection_id, piece)) if self.on_text else None
            generation = self.runtime.generate(embeds, self.config.max_new_tokens, stream)
        except Exception:  # noqa: BLE001 - one bad part must not stop the worker
            log.exception("explanation of %s failed", result.inspection_id)
            with self._cond:
                self._stats.failed += 1
            return
        done_ns = time.monotonic_ns()
        check = check_explanation(generation.text, result.verdict, result.defect_class, facts, self.class_names)
        meta = {
            "verdict": result.verdict,
            "defect_class": result.defect_class,
            "score": result.score,
            "prompt": prompt,
            "model_id": result.model_id,
            "tokens": len(generation.token_ids),
            "tokens_per_s": round(generation.tokens_per_s, 2),
            "requested": job.requested,
            # waited = backlog (queued -> taken by the worker) + generation (prompt, projection, decoding)
            "waited_ms": round((done_ns - job.queued_ns) / 1e6, 1),
            "backlog_ms": round((started_ns - job.queued_ns) / 1e6, 1),
            "generation_ms": round((done_ns - started_ns) / 1e6, 1),
            "prefill_ms": round(getattr(generation, "prefill_s", 0.0) * 1000, 1),  # prompt processing, in generation_ms
            "consistent": check.consistent,
            "disagreements": ",".join(check.disagreements),
        }
        if job.requested_by:
            meta["requested_by"] = job.requested_by
        for sink in self.sinks:
            try:
                sink.handle_explanation(result.inspection_id, generation.text, meta)
            except Exception:  # noqa: BLE001 - a failing sink never stops the explainer
                log.exception("sink %s failed on the explanation of %s", type(sink).__name__, result.inspection_id)
                with self._cond:
                    self._stats.sink_failures += 1
        with self._cond:
            self._stats.explained += 1
            self._stats.inconsistent += not check.consistent
            self._stats.last_tokens_per_s = generation.tokens_per_s


def _lower_priority(nice: int) -> None:
    """Raise this thread's niceness by `nice`. On Linux setpriority(PRIO_PROCESS, thread id)
    affects only the calling thread, and with `threads: 1` ONNX Runtime runs the language
    model on this thread, so the verdict path wins the CPU when both want it. Raising
    niceness needs no privilege; where the OS has no per-thread priority it is a no-op."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as error:
        log.warning(
            "could not lower the explainer's priority (nice %d): %s; it competes with the verdict path", nice, error
        )


def build_explainer(
    artifact_dir,
    sinks: Sequence[ExplanationSink],
    config: ExplainerConfig,
    on_text: Callable[[str, str], None] | None = None,
) -> Explainer:
    """Wire an Explainer to the artifact's exported LLM (not started: call start())."""

    from edge.explainer.runtime import LlmRuntime
    from eiad.manifest import llm_dir, load_manifest, read_llm_config

    runtime = LlmRuntime(llm_dir(artifact_dir), config.precision, config.threads)
    llm_config = read_llm_config(artifact_dir)
    template = tuple(llm_config.get("prompt_template", ("", "{prompt}")))
    return Explainer(runtime, sinks, config, template, on_text, load_manifest(artifact_dir).class_names)
