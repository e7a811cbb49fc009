"""`eiad edge demo`: the synthetic line's camera, a local broker and a PLC subscriber
around the real station, and the report scoring what the PLC received against the
line's ground truth. `run.py` is the entry point; nothing in the station imports this."""
