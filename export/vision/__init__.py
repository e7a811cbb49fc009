"""The vision engine (backbone tower + localizer) as ONNX: `exporter.py` (eiad export
onnx), `parity.py` (the gate against PyTorch, with its float-noise band), `quantize.py`,
`quantize_graph.py` and `quantize_search.py` (fp16 / int8 variants, eiad export quantize)."""
