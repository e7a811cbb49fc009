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

    from edge.explainer.runtime import LlmRuntime
    from export.llm.graphs import split_language_model
    from export.llm.parity import torch_greedy

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


@pytest.mark.parametrize(
    "preset,cache,tokens,image_embeds",
    [("tiny-minicpmv46", "recurrent", 64, 16), ("tiny-llava-siglip", "kv", 256, 256)],
)
def test_image_questions_through_projector_and_decoder_match_torch(
    preset, cache, tokens, image_embeds, tmp_path_factory
):
    # given a real tiny backbone of each family and its vision engine exported at 224 px
    import numpy as np
    import torch

    from edge.explainer.runtime import LlmRuntime
    from export.llm.exporter import export_llm_artifact
    from tests.unit.test_llm_fixtures import backbone_artifact

    backbone, art, prompts = backbone_artifact(tmp_path_factory, preset)
    tokenizer_json = art.parent / "tokenizer.json"
    backbone.tokenizer.backend_tokenizer.save(str(tokenizer_json))
    # when the LLM is exported with the backbone's projector and checked on image questions
    # (random weights: near-tied steps are excluded by a tiny margin, and recorded)
    result = export_llm_artifact(
        backbone.hf_model, tokenizer_json, art, [], prompts, max_new_tokens=6, min_margin=1e-3, backbone=backbone
    )
    # then the decoder has the family's cache form and every evaluated prompt gives torch's tokens
    config = json.loads((art / "llm" / "llm_config.json").read_text())
    assert config["cache"] == cache and config["vision_tokens"] == tokens and config["has_projector"]
    assert result["image_prompts"] == len(prompts) and result["evaluated"] >= len(prompts) - 1
    assert result["precisions"][0]["match_rate"] == 1.0
    assert len(result["excluded"]) == len(prompts) - result["evaluated"]
    # and the exported projector reproduces the torch projector on the engine's features
    runtime = LlmRuntime(art / "llm", "fp32")
    feats = np.random.default_rng(0).normal(size=(1, tokens, backbone.vision_hidden_size)).astype(np.float32)
    with torch.no_grad():
        ref = backbone.project_vision(torch.from_numpy(feats)).numpy()
    np.testing.assert_allclose(runtime.project(feats), ref, atol=1e-4)
    assert runtime.project(feats).shape == (1, image_embeds, backbone.text_hidden_size)


@pytest.mark.parametrize(
    "choices,agrees",
    [
        ([5, 6, 9, 8, 2], True),  # another wording at the near tie (step 2): rounding, not a bug
        ([5, 6, 7, 8, 2], True),
        ([5, 4, 7, 8, 2], False),  # another token at a confident step: a broken export
        ([5, 6, 7, 8, 3], False),  # talks on where torch ended its turn
        ([5, 6], False),  # fewer steps than compared
    ],
)
def test_parity_compares_every_confident_step_under_teacher_forcing(choices, agrees):
    from export.llm.parity import agrees_with_reference, confident_steps

    reference, margins, eos = [5, 6, 7, 8], [3.0, 2.0, 0.1, 4.0, 1.5], {2}  # the fifth step chose end of turn
    steps = confident_steps(margins, 0.5)
    assert steps == [0, 1, 3, 4] and confident_steps(margins, 0.0) == [0, 1, 2, 3, 4]
    assert agrees_with_reference(choices, reference, steps, eos) is agrees


def test_teacher_forced_choices_of_the_runtime_follow_its_own_greedy_answer(llm_artifact):  # noqa: F811
    # given the exported fitted LM: fed its own greedy answer, it makes the same choices, then ends
    _, art, _ = llm_artifact
    from tokenizers import Tokenizer

    from edge.explainer.runtime import LlmRuntime

    runtime = LlmRuntime(art / "llm", "fp32")
    ids = Tokenizer.from_file(str(art / "llm" / "tokenizer.json")).encode(PAIRS[0][0]).ids
    answer = list(runtime.generate_ids(ids, 16).token_ids)
    choices = runtime.forced_choices(runtime.embed_ids(ids), answer)
    assert choices[:-1] == answer and len(choices) == len(answer) + 1
    # and a different forced prefix changes what follows (the state really carries the tokens)
    assert runtime.forced_choices(runtime.embed_ids(ids), answer[:1] + [answer[1] + 1])[-1] != answer[2]
