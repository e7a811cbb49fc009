"""The Sparkplug B sink (at most once, beside the lossless JSON MQTT sink): `sink.py`
(birth/death certificates, NDATA per inspection), `payload.py` (the protobuf payload)."""
