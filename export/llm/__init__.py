"""The language model as ONNX for the edge explainer: `exporter.py` (eiad export llm),
`graphs.py` (decoder with KV cache or recurrent state, projector), `recurrent.py`
(linear-attention state steps), `quantize.py` (int8 / int4), `parity.py` (greedy tokens
against PyTorch)."""
