"""The DDQA builder (eiad data ddqa): a tree in the DDQA raw layout -> task files and the
train / calibration / test split. `build.py` (build_ddqa), `scan.py` (the raw tree),
`masks.py` (regions measured on masks), `questions.py` and `records.py` (the tasks in
ms-swift / MMAD record forms), `report.py`, `cli.py`."""
