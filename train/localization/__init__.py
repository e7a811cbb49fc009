"""Training path 1, the defect localization module: `trainer.py` (train_localization),
`data.py` (dataset, camera-like augmentation, sampler), `pseudo_defects.py` and
`normal_bank_fit.py` (a line with good parts only), `calibrate.py` (thresholds on the
calibration split), `finish.py` (calibrate, then report on the test split), `resume.py`
(a checkpoint a run resumes from)."""
