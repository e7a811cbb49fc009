"""Training side: data (synthetic line, DDQA builder), training loops, evaluation.

Depends on `eiad` (+ torch, transformers, peft for training). Never imported by `edge/`.
"""
