"""DDQA question answering accuracy of a dialog model (`evaluate.py`, `cli.py`)."""
