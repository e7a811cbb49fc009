"""Explanations in `eiad bench line`: the station's explainer behind the paced loop.

When the station config enables `explainer:` and the artifact has `llm/`, the paced loop
run wires the explainer as the station does (`edge.explainer.feed.explainer_feed`, last in the sink
order, over the log sink and the MQTT sink) and a second subscriber stamps each
explanation's arrival on the station's explanation topic. Every stamp is
`time.monotonic_ns()` in this one process, so per explained part:

    latency     capture -> explanation received by the subscriber
    backlog     queued in the explainer -> taken by its worker      (meta backlog_ms)
    generation  taken -> text ready: prompt, projection, decoding   (meta generation_ms)
    publish     explanation's outbox commit returned -> received    (outbox + broker)

`explain_alone` runs the same explainer on a few NG results of that run, one at a time,
with no loop running: what an explanation costs without the verdict path beside it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.loop_harness import TimingSink, VerdictListener
from benchmarks.stats import summarize_ms
from eiad.errors import ConfigError
from eiad.manifest import LLM_CONFIG, llm_dir

log = logging.getLogger(__name__)

ALONE_EXPLANATIONS = 5  # timed explanations in the explainer-alone probe (after one warm-up)


@dataclass(frozen=True)
class ExplainPlan:
    """The explainer settings to measure with, or (config None) why explanations are not measured."""

    config: object | None  # edge.explainer.worker.ExplainerConfig
    reason: str = ""


def plan_explanations(
    station, config_path: Path, manifest, choice: str = "config", mode: str | None = None
) -> ExplainPlan:
    """Decide from the station config, the artifact and the CLI choice ('config' or 'off')."""
    if choice == "off":
        return ExplainPlan(None, "explanations: not measured (--explainer off)")
    explainer = station.explainer
    if explainer is None:
        return ExplainPlan(
            None,
            f"explanations: not measured: {config_path} has no explainer: section "
            "(add 'explainer: {mode: NG, precision: int8}' to measure them)",
        )
    if not explainer.enabled:
        return ExplainPlan(None, f"explanations: not measured: explainer.enabled is false in {config_path}")
    mode = mode or explainer.mode
    if mode == "on_request":
        return ExplainPlan(
            None,
            f"explanations: not measured: explainer.mode in {config_path} is on_request and the "
            "benchmark requests nothing; pass --explain-mode NG, all or sampled",
        )
    llm = llm_dir(station.path(station.artifact)) / LLM_CONFIG
    if not llm.is_file():
        return ExplainPlan(
            None,
            f"explanations: not measured: {llm} not found (the artifact has no language model: "
            "export it with 'eiad export llm')",
        )
    if "vision_features" not in {o.name for o in manifest.outputs}:
        return ExplainPlan(
            None,
            "explanations: not measured: the vision engine has no vision_features output, "
            "so the explainer has nothing to explain from (re-export the vision engine)",
        )
    return ExplainPlan(explainer.model_copy(update={"mode": mode}))


def _summary(values) -> dict | None:
    return summarize_ms(values).to_dict() if len(values) else None


def _tokens_per_s(metas: list[dict]) -> dict:
    """p50 of the explainer's own per-explanation figure; overall = all tokens / all generation
    time (prompt included); decode = all tokens / (generation - prefill) time."""
    tokens = sum(int(m["tokens"]) for m in metas)
    seconds = sum(float(m["generation_ms"]) for m in metas) / 1000
    decode_s = seconds - sum(float(m.get("prefill_ms", 0.0)) for m in metas) / 1000
    per_explanation = [float(m["tokens_per_s"]) for m in metas]
    return {
        "p50": float(np.median(per_explanation)) if per_explanation else None,
        "overall": tokens / seconds if seconds > 0 else None,
        "decode": tokens / decode_s if decode_s > 0 else None,
    }


def _tokens(metas: list[dict]) -> dict:
    tokens = [int(m["tokens"]) for m in metas]
    return {
        "total": sum(tokens),
        "mean": sum(tokens) / len(tokens) if tokens else None,
        "min": min(tokens, default=None),
        "max": max(tokens, default=None),
    }


def explanation_section(
    captured_ns: dict[str, int],
    stored_ns: dict[str, int],
    received_ns: dict[str, int],
    messages: dict[str, dict],
    stats: dict,
    settings: dict,
    loop_end_ns: int | None = None,
) -> dict:
    """The report's explanation figures from the stamps (pure).

    captured_ns: inspection id -> capture stamp of its frame; stored_ns: -> the explanation's
    outbox commit; received_ns / messages: -> arrival at the subscriber and its JSON (whose
    meta carries tokens, tokens_per_s, backlog_ms, generation_ms); stats: the explainer's
    counters (edge.explainer.worker.ExplainerStats as a dict). Latencies in ms.
    """
    ids = sorted((i for i in received_ns if i in captured_ns), key=lambda i: captured_ns[i])
    metas = [messages.get(i, {}).get("meta", {}) for i in ids]
    timed = [m for m in metas if {"tokens", "tokens_per_s", "generation_ms"} <= m.keys()]
    counts = {
        "submitted": stats["submitted"],
        "skipped_by_mode": stats["skipped_by_mode"],
        "queued": stats["queued"],
        "dropped_by_backlog": stats["dropped"],
        "explained": stats["explained"],
        "failed": stats["failed"],
        "received": len(ids),
        "not_received": max(0, stats["explained"] - len(ids)),
    }
    if loop_end_ns is not None:
        counts["received_after_loop"] = sum(received_ns[i] > loop_end_ns for i in ids)
    return {
        "measured": True,
        "settings": settings,
        "counts": counts,
        "latency_ms": _summary([(received_ns[i] - captured_ns[i]) / 1e6 for i in ids]),
        "backlog_ms": _summary([float(m["backlog_ms"]) for m in metas if "backlog_ms" in m]),
        "generation_ms": _summary([float(m["generation_ms"]) for m in timed]),
        "prefill_ms": _summary([float(m["prefill_ms"]) for m in timed if "prefill_ms" in m]),
        "publish_ms": _summary([(received_ns[i] - stored_ns[i]) / 1e6 for i in ids if i in stored_ns]),
        "tokens": _tokens(timed),
        "tokens_per_s": _tokens_per_s(timed),
        "words": _summary([len(str(messages.get(i, {}).get("text", "")).split()) for i in ids]),
        # the station's own check of each text against its verdict and mask (null: not checked)
        "consistent_share": _share(
            [messages[i]["consistent"] for i in ids if messages.get(i, {}).get("consistent") is not None]
        ),
    }


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def explainer_settings(config) -> dict:
    return {
        k: getattr(config, k)
        for k in ("precision", "mode", "max_new_tokens", "backlog_max", "drop_policy", "threads", "nice")
    }


def warm_up(runtime, manifest) -> None:
    """One untimed generation (ONNX Runtime's first runs allocate and pick kernels): the
    loop then measures a warm explainer, as a station that has been running does."""
    spec = next(o for o in manifest.outputs if o.name == "vision_features")
    features = np.zeros([int(d) for d in spec.shape[1:]], np.float32)
    runtime.generate(runtime.prompt_embeds("", features, "warm-up"), 4)


class ExplainProbe:
    """The explainer of one loop run and the subscriber on its explanation topic.

    Build it after the MQTT sink and before the pipeline; `finish()` after the run drains
    the backlog (bounded) and returns `explanation_section`; `close()` always.
    """

    def __init__(
        self, station, plan: ExplainPlan, sinks: dict, timing: TimingSink, host: str, port: int, manifest
    ) -> None:
        from edge.explainer.feed import explainer_feed

        self.timing = timing
        self.settings = explainer_settings(plan.config)
        self.listener = VerdictListener(host, port, timing.topics.of("explanation"), keep_messages=True)
        self.feed = None
        if not self.listener.ready.wait(10.0):
            self.listener.close()
            raise ConfigError(f"could not subscribe to the explanation topic at {host}:{port} within 10 s")
        self.feed = explainer_feed(station.model_copy(update={"explainer": plan.config}), sinks)
        warm_up(self.feed.explainer.runtime, manifest)

    def finish(self, loop_end_ns: int, timeout_s: float = 60.0) -> dict:
        started = time.monotonic()
        if not self.feed.explainer.drain(timeout_s):
            log.warning("the explainer's backlog did not drain within %.0f s of the end", timeout_s)
        drained_s = time.monotonic() - started
        stats = dataclasses.asdict(self.feed.explainer.stats())
        missing = self.listener.wait_for(set(self.timing.explained), timeout_s=10.0)
        if missing:
            log.warning("%d explanations not received within 10 s", missing)
        captured = {i: s["captured"] for i, s in self.timing.stamps.items() if "captured" in s}
        section = explanation_section(
            captured,
            dict(self.timing.explained),
            dict(self.listener.received),
            dict(self.listener.messages),
            stats,
            self.settings,
            loop_end_ns,
        )
        section["drain_after_loop_s"] = round(drained_s, 3)
        return section

    def close(self) -> None:
        if self.feed is not None:
            self.feed.close()
        self.listener.close()


class _Collector:
    """A sink that hands each explanation (arrival time, meta) to the waiting caller."""

    def __init__(self) -> None:
        self.got: list[tuple[int, dict]] = []
        self.arrived = threading.Event()

    def handle(self, result, image=None) -> None:
        pass

    def handle_explanation(self, inspection_id: str, text: str, meta: dict) -> None:
        self.got.append((time.monotonic_ns(), meta))
        self.arrived.set()

    def close(self) -> None:
        pass


def explain_alone(
    artifact: Path, config, samples: list, count: int = ALONE_EXPLANATIONS, timeout_s: float = 60.0
) -> dict:
    """The explainer on `samples` (NG results with features), one part at a time, no loop
    running: submit -> explanation handed to the sinks, in ms, after one warm-up."""
    from edge.explainer.worker import build_explainer

    if not samples:
        return {"measured": False, "reason": "the paced run produced no NG result with vision features to explain"}
    collector = _Collector()
    alone = config.model_copy(update={"mode": "all", "mqtt_requests": None, "remember_recent": 0})
    latency, metas = [], []
    with build_explainer(artifact, [collector], alone) as explainer:
        for i in range(count + 1):  # the first is the warm-up
            collector.arrived.clear()
            submitted = time.monotonic_ns()
            explainer.submit(samples[i % len(samples)])
            if not collector.arrived.wait(timeout_s):
                return {"measured": False, "reason": f"no explanation within {timeout_s:g} s of a submit"}
            arrived, meta = collector.got[-1]
            if i:
                latency.append((arrived - submitted) / 1e6)
                metas.append(meta)
    return {
        "measured": True,
        "explanations": len(latency),
        "latency_ms": _summary(latency),
        "generation_ms": _summary([float(m["generation_ms"]) for m in metas]),
        "prefill_ms": _summary([float(m.get("prefill_ms", 0.0)) for m in metas]),
        "tokens": _tokens(metas),
        "tokens_per_s": _tokens_per_s(metas),
    }
