"""The training sampler (train/localization/data.py): a seeded order per epoch whose indices
carry the epoch, and with `good_share` every defect image plus a fresh draw of good ones."""

from __future__ import annotations

from train.localization.data import EpochSampler

DEFECTIVE = [True] * 6 + [False] * 30  # 6 defect images, 30 good ones


def _epoch(sampler: EpochSampler, epoch: int) -> list[int]:
    sampler.start_epoch(epoch)
    return list(sampler)


def test_without_a_share_every_image_comes_once_per_epoch_with_the_epoch_in_its_index():
    sampler = EpochSampler(len(DEFECTIVE), seed=3, defective=DEFECTIVE)
    first, second = _epoch(sampler, 0), _epoch(sampler, 1)
    assert sorted(first) == list(range(36)) and len(sampler) == 36
    assert sorted(i - 36 for i in second) == list(range(36))
    assert first != [i - 36 for i in second]  # another order


def test_a_good_share_keeps_every_defect_image_and_draws_other_good_images_each_epoch():
    sampler = EpochSampler(len(DEFECTIVE), seed=3, defective=DEFECTIVE, good_share=0.4)
    assert len(sampler) == 6 + 4  # 4 good of 10 = 0.4
    seen_good = set()
    for epoch in range(8):
        items = [i - epoch * 36 for i in _epoch(sampler, epoch)]
        assert sorted(i for i in items if DEFECTIVE[i]) == list(range(6))
        good = [i for i in items if not DEFECTIVE[i]]
        assert len(good) == len(set(good)) == 4
        seen_good.update(good)
    assert len(seen_good) > 20  # the draw changes from epoch to epoch
    again = EpochSampler(len(DEFECTIVE), seed=3, defective=DEFECTIVE, good_share=0.4)
    assert _epoch(again, 5) == _epoch(sampler, 5)  # a resumed run sees the same batches


def test_a_share_the_split_cannot_fill_leaves_the_natural_mix():
    few_good = [True] * 10 + [False] * 2
    sampler = EpochSampler(len(few_good), seed=0, defective=few_good, good_share=0.5)
    assert len(sampler) == 12
    assert sorted(_epoch(sampler, 0)) == list(range(12))
