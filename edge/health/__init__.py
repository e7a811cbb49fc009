"""The station's health: the counters every part of the station reports into and the
/metrics and /health server (`metrics.py`), and the per-component view of /health
(`components.py`: sources, sinks, outbox, explainer)."""
