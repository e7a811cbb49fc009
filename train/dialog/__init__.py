"""Training path 2, the dialog: LoRA on the language side from DDQA answers (`trainer.py`),
its settings (`config.py`), resumable checkpoints (`checkpoint.py`) and the merge of the
adapter into the model that `eiad export llm` takes (`merge.py`)."""
