"""Greedy generation on the exported language model with ONNX Runtime: no torch.

Reads the `llm/` part of an export artifact (export/llm/graphs.py writes it): a decoder
graph `(inputs_embeds, [attention_mask], position_ids, *states) -> (logits, *new states)`
whose state tensors (a KV cache, or conv + recurrent states for linear-attention layers)
are listed in llm_config.json `states`, the embedding table as .npy, the tokenizer as
tokenizer.json and an optional projector graph turning the vision engine's
`vision_features` into LLM embeddings. So a frame's vision pass is done once, by the
vision engine, and the explainer only projects and splices its tokens.

Thread safety: one LlmRuntime per thread (ONNX Runtime sessions are thread-safe for
`run`, but `generate` keeps per-call state only, so sharing is safe; the explainer uses
one worker thread anyway).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eiad.errors import ArtifactError
from eiad.manifest import LLM_CONFIG, LLM_DECODER, LLM_EMBEDDINGS, LLM_PROJECTOR, LLM_TOKENIZER

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    token_ids: tuple[int, ...]
    text: str
    prompt_tokens: int
    seconds: float  # whole call, prefill included
    prefill_s: float = 0.0  # prompt processing (one run, or one run per token for stepwise decoders)

    @property
    def tokens_per_s(self) -> float:
        return len(self.token_ids) / self.seconds if self.seconds > 0 else 0.0


class LlmRuntime:
    """Load the LLM parts of an artifact; `generate` streams greedy tokens through a callback."""

    def __init__(self, llm_dir: Path, precision: str = "int8", threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        llm_dir = Path(llm_dir)
        self.precision = precision
        config_path = llm_dir / LLM_CONFIG
        if not config_path.is_file():
            raise ArtifactError(f"{config_path} not found: export the language model with 'eiad export llm'")
        self.config = json.loads(config_path.read_text(encoding="utf-8"))
        if precision not in self.config.get("precisions", []):
            raise ArtifactError(
                f"{llm_dir} has no {precision} decoder (it has {self.config.get('precisions')}): "
                f"choose one of those, or re-run 'eiad export llm --precisions {precision}'"
            )
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.decoder = _session(ort, llm_dir / LLM_DECODER.format(precision=precision), options)
        self.projector = _session(ort, llm_dir / LLM_PROJECTOR, options) if self.config.get("has_projector") else None
        self.embeddings = np.load(llm_dir / LLM_EMBEDDINGS, mmap_mode="r")
        self.tokenizer = Tokenizer.from_file(str(llm_dir / LLM_TOKENIZER))
        self.eos = set(self.config.get("eos_token_ids") or [])
        # "full": the whole prompt in one run (KV cache); "stepwise": one token per run
        # (recurrent-state decoders, whose graph takes exactly one token).
        self.stepwise = self.config.get("prefill", "full") == "stepwise"
        self._states = list(self.config.get("states", []))
        self._inputs = {i.name for i in self.decoder.get_inputs()}
        missing = [s["input"] for s in self._states if s["input"] not in self._inputs]
        if missing:
            raise ArtifactError(
                f"{llm_dir / LLM_DECODER.format(precision=precision)} lacks the state inputs {missing[:4]} that "
                "llm_config.json lists: re-run 'eiad export llm'"
            )

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def embed_ids(self, ids: list[int]) -> np.ndarray:
        """(1, S, hidden) float32 embeddings of token ids."""
        return np.asarray(self.embeddings[np.asarray(ids, dtype=np.int64)], dtype=np.float32)[None]

    def project(self, vision_features: np.ndarray) -> np.ndarray:
        """Vision engine tokens (T, D) or (1, T, D) -> (1, T', hidden) LLM embeddings."""
        feats = np.asarray(vision_features, dtype=np.float32)
        feats = feats[None] if feats.ndim == 2 else feats
        if self.projector is not None:
            return self.projector.run(None, {"vision_features": feats})[0]
        if feats.shape[-1] != self.config["hidden_size"]:
            raise ArtifactError(
                f"vision features have width {feats.shape[-1]} but the LLM expects {self.config['hidden_size']} "
                "and the artifact has no projector: export the LLM from the same checkpoint as the vision engine"
            )
        return feats

    def prompt_embeds(self, prefix: str, vision_features: np.ndarray | None, suffix: str) -> np.ndarray:
        """prefix tokens + projected vision tokens + suffix tokens, as one (1, S, hidden) array."""
        parts = [self.embed_ids(self.encode(prefix))] if prefix else []
        if vision_features is not None:
            parts.append(self.project(vision_features))
        parts.append(self.embed_ids(self.encode(suffix)))
        return np.concatenate(parts, axis=1)

    def generate(
        self, embeds: np.ndarray, max_new_tokens: int = 48, on_text: Callable[[str], None] | None = None
    ) -> Generation:
        """Greedy decoding from prompt embeddings; `on_text` receives each new piece of text."""
        started = time.perf_counter()
        ids: list[int] = []
        emitted = ""
        logits, state = self._prefill(embeds)
        prefill_s = time.perf_counter() - started
        for _ in range(max_new_tokens):
            token = int(np.argmax(logits))
            if token in self.eos:
                break
            ids.append(token)
            if on_text is not None:
                text = self.tokenizer.decode(ids)
                if not text.endswith("\ufffd") and len(text) > len(emitted):  # wait for whole UTF-8 chars
                    on_text(text[len(emitted) :])
                    emitted = text
            if len(ids) == max_new_tokens:
                break
            logits, state = self._step(token, state)
        text = self.tokenizer.decode(ids)
        if on_text is not None and len(text) > len(emitted):
            on_text(text[len(emitted) :])
        return Generation(tuple(ids), text, int(embeds.shape[1]), time.perf_counter() - started, prefill_s)

    def forced_choices(self, embeds: np.ndarray, tokens: list[int]) -> list[int]:
        """The greedy choice at every step when the given answer is fed back instead of the
        model's own tokens (teacher forcing): len(tokens) + 1 choices, the last one after the
        whole answer. Parity checks compare these with PyTorch's step by step."""
        logits, state = self._prefill(embeds)
        choices = [int(np.argmax(logits))]
        for token in tokens:
            logits, state = self._step(token, state)
            choices.append(int(np.argmax(logits)))
        return choices

    def generate_ids(self, prompt_ids: list[int], max_new_tokens: int = 16) -> Generation:
        return self.generate(self.embed_ids(prompt_ids), max_new_tokens)

    # --- decoding steps -----------------------------------------------------------------
    # State: (tokens seen, [state arrays in llm_config "states" order]).

    def _initial_states(self) -> list[np.ndarray]:
        return [np.zeros((1, *spec["shape"]), np.float32) for spec in self._states]

    def _run(self, embeds: np.ndarray, start: int, states: list[np.ndarray]):
        seq = embeds.shape[1]
        feeds = {
            "inputs_embeds": np.ascontiguousarray(embeds, dtype=np.float32),
            "position_ids": np.arange(start, start + seq, dtype=np.int64)[None],
        }
        if "attention_mask" in self._inputs:
            feeds["attention_mask"] = np.ones((1, start + seq), np.int64)
        for spec, value in zip(self._states, states):
            feeds[spec["input"]] = value
        outputs = self.decoder.run(None, feeds)
        return outputs[0][0, -1], outputs[1:]

    def _prefill(self, embeds: np.ndarray):
        states = self._initial_states()
        if not self.stepwise:
            logits, states = self._run(embeds, 0, states)
            return logits, (embeds.shape[1], states)
        for position in range(embeds.shape[1]):  # the graph takes one token: feed the prompt through it
            logits, states = self._run(embeds[:, position : position + 1], position, states)
        return logits, (embeds.shape[1], states)

    def _step(self, token: int, state):
        length, states = state
        logits, states = self._run(self.embed_ids([token]), length, states)
        return logits, (length + 1, states)


def _session(ort, path: Path, options):
    if not path.is_file():
        raise ArtifactError(f"{path} not found: the artifact's LLM part is incomplete; re-run 'eiad export llm'")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ORT's own exception types
        raise ArtifactError(f"ONNX Runtime cannot load {path}: {error}") from error
