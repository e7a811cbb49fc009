"""A station.yaml whose tiny artifact also has llm/: `eiad bench line` with an explainer.

The vision part is the torch-free tiny graph (benchmarks/stand_ins/artifact.py: a bright
square is NG, 16 vision tokens of width 3); the language part is a 1-layer Qwen2 with
random weights and a projector 3 -> 32, exported by the project's own LLM exporter
(fp32 only: a random model's near-tied logits make int8 parity meaningless). Its text is
noise; what the bench tests need is real ONNX generation of a known token count. ~15 s.
"""

from __future__ import annotations

from pathlib import Path

from tests.support_bench.station import tiny_station


def tiny_llm_station(
    directory: Path, explainer: str = "{mode: NG, precision: fp32, max_new_tokens: 6, threads: 1}"
) -> Path:
    """artifact/ (vision + llm/) and station.yaml with `explainer: <explainer>`; needs torch."""
    import torch
    from tokenizers import Tokenizer
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from export.llm.exporter import export_llm_artifact
    from tests.unit.test_llm_fixtures import train_tokenizer

    path = tiny_station(directory)
    tokenizer = train_tokenizer(Path(directory) / "tokenizer.json")
    vocab = Tokenizer.from_file(str(tokenizer))
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=vocab.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        eos_token_id=vocab.token_to_id("<eos>"),
        tie_word_embeddings=False,
    )
    export_llm_artifact(
        Qwen2ForCausalLM(config).eval(),
        tokenizer,
        Path(directory) / "artifact",
        ["fp32"],
        prompts=["verdict NG crack top left. Explain:"],
        projector=torch.nn.Linear(3, 32),
        vision_dim=3,
    )
    path.write_text(path.read_text(encoding="utf-8") + f"explainer: {explainer}\n", encoding="utf-8")
    return path
