"""LLM export: fp32 ONNX greedy tokens equal torch's; int8/int4 files exist, run and shrink."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_llm_fixtures import PAIRS, llm_artifact, parity_images, vision_artifact  # noqa: F401

pytestmark = pytest.mark.slow


def test_fp32_decoder_gives_torchs_greedy_tokens(llm_artifact):  # noqa: F811
    # given the fitted tiny LM exported into the artifact
    model, art, result = llm_artifact
    from tokenizers import Tokenizer

    from edge.llm_runtime import LlmRuntime
    from export.llm_export import split_language_model
    from export.llm_parity import torch_greedy

    runtime = LlmRuntime(art / "llm", "fp32")
    tok = Tokenizer.from_file(str(art / "llm" / "tokenizer.json"))
    lm = split_language_model(model)
    # when each prompt is decoded greedily by torch and by the ONNX KV-cache loop
    for prompt, answer in PAIRS:
        ids = tok.encode(prompt).ids
        ref, margin = torch_greedy(lm, ids, 16, runtime.eos)
        got = runtime.generate_ids(ids, 16)
        # then the tokens are identical, and the model really learnt its answer
        assert list(got.token_ids) == ref
        assert got.text.startswith(answer[:12])
    fp32 = next(p for p in result["precisions"] if p["precision"] == "fp32")
    assert fp32["match_rate"] == 1.0


def test_quantized_decoders_shrink_and_match(llm_artifact):  # noqa: F811
    _, art, result = llm_artifact
    by = {p["precision"]: p for p in result["precisions"]}
    # then int8 and int4 exist, are smaller than fp32, and int8 meets the gate
    assert by["int8"]["size_bytes"] < by["fp32"]["size_bytes"]
    assert by["int4"]["size_bytes"] < by["fp32"]["size_bytes"]
    assert by["int8"]["match_rate"] >= 0.95
    assert 0.0 <= by["int4"]["match_rate"] <= 1.0
    report = json.loads((art / "llm" / "parity_llm.json").read_text())
    assert report["evaluated"] == len(PAIRS)


def test_llm_files_are_in_the_manifest_and_verify(llm_artifact):  # noqa: F811
    from eiad.manifest import load_manifest

    _, art, _ = llm_artifact
    manifest = load_manifest(art, verify_files=True)
    roles = {e.role for e in manifest.files.values()}
    assert {"llm_decoder_fp32", "llm_decoder_int8", "llm_decoder_int4", "llm_tokenizer", "llm_projector"} <= roles
