"""MMAD: `run.py` (a chat model over MMAD questions -> answers file), `score.py` (answers
-> MMAD's accuracy table), `cli.py` (eiad eval mmad-run / mmad-score)."""
