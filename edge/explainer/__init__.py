"""Explanations for inspected parts, off the verdict path: the worker thread and its
bounded backlog (`worker.py`), its settings (`config.py`), the feed that offers it each
result (`feed.py`), explanation requests over MQTT (`requests.py`) and the exported
language model's ONNX Runtime decoder (`runtime.py`)."""
