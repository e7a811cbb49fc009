"""The records a dialog run trains and measures on: DDQA files (the configured tasks) and
the grounded records built beside them (train/dialog/grounded.py)."""

from __future__ import annotations

import random
from pathlib import Path

from eiad.dialog_records import DialogRecord, read_ddqa
from train.dialog.config import DialogConfig


def tasks_of(records: list[DialogRecord], config: DialogConfig) -> list[DialogRecord]:
    """The records of the configured DDQA tasks (each record's task told as `eiad eval ddqa` does)."""
    if config.ddqa_tasks is None:
        return records
    from train.eval.qa.evaluate import infer_task

    return [r for r in records if infer_task(r) in config.ddqa_tasks]


def capped(ddqa: list[DialogRecord], others: int, config: DialogConfig) -> list[DialogRecord]:
    """At most `config.ddqa_share` of all training records from DDQA: a seeded sample, in file order."""
    if config.ddqa_share is None or config.ddqa_share >= 1.0 or not others:
        return ddqa
    keep = min(len(ddqa), int(config.ddqa_share / (1.0 - config.ddqa_share) * others))
    chosen = sorted(random.Random(config.seed).sample(range(len(ddqa)), keep))
    return [ddqa[i] for i in chosen]


def read_records(config: DialogConfig, ddqa_train: Path, ddqa_test: Path | None, extra_train, extra_eval):
    """(train records, held-out records, which split the held-out ones are): the configured DDQA
    tasks of the train/test files plus the extra (grounded) records; the held-out set capped at
    `eval_max_records`, sampled evenly so every task is measured."""
    train_records = capped(tasks_of(read_ddqa(ddqa_train), config), len(extra_train), config) + list(extra_train)
    eval_records = tasks_of(read_ddqa(ddqa_test), config) + list(extra_eval) if ddqa_test is not None else train_records
    eval_split = "test" if ddqa_test is not None else "train (no test file given)"
    if config.eval_max_records is not None and len(eval_records) > config.eval_max_records:
        # An even sample across the file(s), so every task (and the grounded records) is measured.
        step = len(eval_records) / config.eval_max_records
        eval_records = [eval_records[int(i * step)] for i in range(config.eval_max_records)]
    return train_records, eval_records, eval_split
