"""Stand-ins that let the station be measured (and tested) without a trained model or a
plant: a tiny ONNX artifact with the real artifact contract (`artifact.py`), synthetic
line frames and videos (`frames.py`), inspection results (`results.py`), an MQTT
subscriber (`subscriber.py`) and the check that every verdict arrived once (`delivery.py`).
Generated here, nothing downloaded; the tests use the same ones."""
