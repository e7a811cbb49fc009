"""DDQA question rules in isolation: distractor preference, letter round-robin, split sizes."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from train.data.ddqa.build import held_out_counts, split_samples
from train.data.ddqa.questions import assign_letters, dc_option_count, distractors
from train.data.ddqa.scan import Sample


def sample(dataset: str, sub: str, defect: str | None, key: str = "k") -> Sample:
    return Sample(Path("/x") / key, None, dataset, sub, "NG" if defect else "OK", defect, key, 10, 10, None)


CATALOG = {("A", "x"): ["a1", "a2"], ("A", "y"): ["a3", "a4"], ("B", "z"): ["b1", "b2", "b3"]}


def test_distractors_prefer_same_sub_then_same_dataset():
    for seed in range(20):
        # given an a1 image of A/x, when 3 distractors are drawn
        chosen = distractors(sample("A", "x", "a1"), CATALOG, 3, random.Random(seed))
        # then: a2 (same sub) always, then two of A's other names, never B's, never a1
        assert "a2" in chosen and len(set(chosen)) == 3
        assert set(chosen) <= {"a2", "a3", "a4"}


def test_distractors_fall_back_to_other_datasets_and_vary_with_seed():
    # given a sub with a single defect name, the other names come from dataset B
    catalog = {("A", "y"): ["a3"], ("B", "z"): ["b1", "b2", "b3"]}
    draws = {frozenset(distractors(sample("A", "y", "a3"), catalog, 3, random.Random(s))) for s in range(10)}
    assert draws == {frozenset({"b1", "b2", "b3"})}
    # and the order of the drawn names depends on the seed
    orders = {tuple(distractors(sample("B", "z", "b1"), CATALOG, 3, random.Random(s))) for s in range(30)}
    assert len(orders) > 1


def test_letters_round_robin_balanced_and_seeded():
    samples = [sample("A", "x", "a1", key=f"img{i}") for i in range(11)]
    letters = assign_letters(samples, 4, seed=0, task="RDL", split="train")
    assert sorted(Counter(letters.values()).values()) == [2, 3, 3, 3]
    assert letters == assign_letters(samples, 4, seed=0, task="RDL", split="train")
    assert letters != assign_letters(samples, 4, seed=1, task="RDL", split="train")


def test_dc_option_count_rules():
    assert [dc_option_count(n) for n in range(7)] == [0, 0, 2, 3, 4, 4, 4]


def test_held_out_counts_and_stratified_three_way_split():
    # (calibration, test) per stratum: test first, one image always left for training
    assert [held_out_counts(n, 0.2, 0.2) for n in (0, 1, 2, 3, 10, 12)] == [
        (0, 0),
        (0, 0),
        (0, 1),
        (1, 1),
        (2, 2),
        (2, 2),
    ]
    assert held_out_counts(5, 0.0, 0.2) == (0, 1) and held_out_counts(3, 0.9, 0.9) == (0, 2)
    samples = (
        [sample("A", "x", "a1", f"a{i}") for i in range(3)]
        + [sample("A", "x", "b1", f"b{i}") for i in range(2)]
        + [sample("A", "x", None, f"ok{i}") for i in range(1)]
    )
    parts = split_samples(samples, seed=0, calibration_fraction=0.2, test_fraction=0.2)
    assert [s.defect for s in parts["test"]] == ["a1", "b1"]  # a single OK image stays in train
    assert [s.defect for s in parts["calibration"]] == ["a1"]  # two b1 images: one trains, one tests
    keys = [s.key for part in parts.values() for s in part]
    assert sorted(keys) == sorted(s.key for s in samples) and len(set(keys)) == len(keys)
