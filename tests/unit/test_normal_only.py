"""A line with no defect samples: the normal bank, pseudo-defects, normal-only training, its
export and edge inference; the bank fused with a supervised module inside the graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eiad.modeling.checkpoint import Checkpoint
from eiad.modeling.normal_bank import NormalBank, NormalBankSpec, greedy_coreset
from tests.support.preset_cache import preset_cache  # noqa: F401 (fixture)
from tests.unit.test_localization_support import make_split
from train.localization.pseudo_defects import PseudoDefects, draw


def _features(
    rng: np.random.Generator, n: int, grid: int, dim: int, odd: tuple[int, int] | None = None
) -> torch.Tensor:
    """(n, grid*grid, dim) features near one direction; `odd` = (image, patch) pointing elsewhere."""
    base = np.zeros(dim, np.float32)
    base[0] = 1.0
    feats = base + 0.05 * rng.standard_normal((n, grid * grid, dim)).astype(np.float32)
    if odd is not None:
        feats[odd[0], odd[1]] = 0.0
        feats[odd[0], odd[1], 1] = 1.0
    return torch.from_numpy(feats)


def test_the_bank_scores_a_foreign_patch_above_every_good_one():
    # given a bank fitted on good patches that all point one way
    rng = np.random.default_rng(0)
    spec = NormalBankSpec(taps=(0,), feature_dim=8, dim=8, size=32, grid=(4, 4), image_size=(16, 16), blur_sigma_px=0)
    bank = NormalBank(spec)
    bank.fit(bank.embed([_features(rng, 10, 4, 8)]).reshape(-1, 8))
    bank.calibrate_scale(bank.distances([_features(rng, 5, 4, 8)]))
    # when an image has one patch pointing elsewhere (patch 5: row 1, column 1)
    with torch.no_grad():
        odd = torch.sigmoid(bank([_features(rng, 1, 4, 8, odd=(0, 5))]))[0, 0].numpy()
        good = torch.sigmoid(bank([_features(rng, 1, 4, 8)]))[0, 0].numpy()
    # then the map is high over that patch (pixels 4..7; its 3x3 context spreads it to its neighbours),
    # low far from it, and a good image stays near or below 0.5 everywhere
    assert odd[4:8, 4:8].mean() > 0.9 and odd[12:, 12:].max() < 0.75 and good.max() < 0.75
    assert bank.spec.size == 32 and bank.bank.shape == (32, 8)


def test_the_banks_image_score_puts_good_parts_low_and_a_foreign_patch_high():
    # given a bank whose patch scale puts 0.1 % of good patches above 0.5 (some good images peak there)
    rng = np.random.default_rng(1)
    spec = NormalBankSpec(taps=(0,), feature_dim=8, dim=8, size=32, grid=(4, 4), image_size=(16, 16), blur_sigma_px=0)
    bank = NormalBank(spec)
    bank.fit(bank.embed([_features(rng, 10, 4, 8)]).reshape(-1, 8))
    calibration = [_features(rng, 40, 4, 8)]
    bank.calibrate_scale(bank.distances(calibration))
    with torch.no_grad():
        peaks = bank(calibration).flatten(1).amax(dim=1)
        # when the image score gets its own scale from the good calibration images' peaks
        bank.calibrate_image_scale(peaks)
        good = bank.image_score(bank(calibration))
        fresh = bank.image_score(bank([_features(rng, 40, 4, 8)]))
        odd = bank.image_score(bank([_features(rng, 1, 4, 8, odd=(0, 5))]))
    # then the strangest good calibration image scores 0.5, the median one 0.01, new good parts
    # stay low, and an image with a foreign patch scores far above every good one
    assert float(good.max()) == pytest.approx(0.5, abs=1e-5)
    assert float(good.median()) == pytest.approx(0.01, abs=2e-3)
    assert float(torch.quantile(fresh, 0.5)) < 0.05
    assert float(odd[0]) > 0.99
    # and a bank stored before the image scale existed scores the map's maximum, as it did
    state = {k: v for k, v in bank.state_dict().items() if not k.startswith("image_")}
    meta = {"normal_bank_spec": spec.to_dict()}
    old = Checkpoint(Path("old"), meta, None, None, {}, bank_state=state).build_bank()
    with torch.no_grad():
        logits = old(calibration)
    torch.testing.assert_close(old.image_score(logits), torch.sigmoid(logits).flatten(1).amax(dim=1))


def test_the_coreset_keeps_the_farthest_points_and_all_of_a_small_set():
    points = torch.tensor([[0.0, 0.0], [0.01, 0.0], [10.0, 0.0], [0.0, 10.0], [0.02, 0.01]])
    chosen = set(greedy_coreset(points, 3).tolist())
    assert {2, 3} <= chosen  # the two far points are always kept
    assert greedy_coreset(points, 10).tolist() == [0, 1, 2, 3, 4]


def test_a_pseudo_defect_changes_exactly_its_mask():
    rng = np.random.default_rng(3)
    image = rng.integers(60, 200, (64, 64, 3), dtype=np.uint8)
    other = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for _ in range(20):
        edited, mask = draw(rng, image, other, PseudoDefects(max_size=0.4))
        changed = np.abs(edited.astype(int) - image.astype(int)).max(axis=2) > 2
        assert np.array_equal(changed, mask.astype(bool)) and edited.dtype == np.uint8


def _loc(**kw):
    return {
        "taps": [1, 3],
        "epochs": 2,
        "batch_size": 4,
        "decoder_channels": 8,
        "proj_dim": 16,
        "bank_taps": [1],
        "bank_size": 64,
        **kw,
    }


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_split(tmp_path_factory.mktemp("normal_line"), n_train=8, n_held_out=6, size=64)


@pytest.mark.slow
def test_normal_only_trains_exports_and_runs_at_the_edge(tmp_path, split, preset_cache):
    from commands.main import main
    from edge.runners.onnxruntime_runner import OnnxRuntimeRunner
    from edge.verdict import UNKNOWN_CLASS, ThresholdOverrides, decide_outputs
    from eiad.manifest import load_manifest
    from eiad.split import load_split
    from export.vision.parity import load_images
    from train.config import TrainConfig
    from train.localization.trainer import train_localization

    # given only the split's good images (its defective ones are never read for training)
    config = TrainConfig(
        backbone="tiny-llava-siglip",
        split=split,
        out_dir=tmp_path / "run",
        device="cpu",
        localization=_loc(normal_only=True, unfreeze_vision=True),
    )
    # when the normal-only model trains
    result = train_localization(config)
    # then its checkpoint holds a module without classes and a bank; thresholds come from good parts alone
    checkpoint = result.checkpoint
    meta = json.loads((checkpoint / "meta.json").read_text())
    assert (checkpoint / "normal_bank.safetensors").is_file() and meta["localizer_spec"]["class_names"] == []
    assert "good parts" in result.thresholds["calibration"] and "no defect pixel" in result.thresholds["calibration"]
    report = json.loads((result.checkpoint.parent / "metrics.json").read_text())["test"]
    assert report["model"].startswith("normal-only") and report["calibration_images"] == 3  # 3 good of 6
    # when exported (parity included) and run by the edge runner
    out = tmp_path / "artifact"
    assert (
        main(["-q", "export", "onnx", "--checkpoint", str(checkpoint), "--out", str(out), "--split", str(split)]) == 0
    )
    manifest = load_manifest(out)
    assert manifest.class_names == [] and manifest.output("class_probs").shape[-1] == 1
    runner = OnnxRuntimeRunner(out, manifest=manifest)
    images = load_images([e.image for e in load_split(split).test], manifest.input.height, manifest.input.width)
    outputs = runner.run(images)
    runner.close()
    decisions = [
        decide_outputs({k: v[i] for k, v in outputs.items()}, manifest, ThresholdOverrides())
        for i in range(len(images))
    ]
    # then every part gets a verdict, and a rejected one has no class to name
    assert {d.verdict for d in decisions} <= {"OK", "NG"}
    assert all(d.defect_class == UNKNOWN_CLASS for d in decisions if d.verdict == "NG")


@pytest.mark.slow
def test_a_supervised_module_and_the_bank_fuse_inside_the_exported_graph(tmp_path, split, preset_cache):
    from commands.main import main
    from eiad.modeling.checkpoint import engine_from_checkpoint
    from train.config import TrainConfig
    from train.localization.trainer import train_localization

    # given a supervised run that also keeps the normal bank
    config = TrainConfig(
        backbone="tiny-llava-siglip",
        split=split,
        out_dir=tmp_path / "run",
        device="cpu",
        localization=_loc(normal_bank=True),
    )
    result = train_localization(config)
    engine, _ = engine_from_checkpoint(result.checkpoint)
    assert engine.bank is not None and engine.localizer is not None
    # then the engine's map is the larger of the module's and the bank's, pixel by pixel
    images = torch.randint(0, 256, (2, engine.height, engine.width, 3), dtype=torch.uint8)
    with torch.no_grad():
        fused = engine(images)
        pixels = engine.preprocess(images)
        feats = engine.backbone.forward_vision(pixels, engine.taps).layer_features
        module = torch.sigmoid(engine.localizer([feats[i] for i in engine._localizer_taps], pixels).mask_logits)
        normal = torch.sigmoid(engine.bank([feats[i] for i in engine._bank_taps]))
        halves = engine.halves(images)
    torch.testing.assert_close(fused.anomaly_map, torch.maximum(module, normal))
    score = torch.maximum(torch.sigmoid(halves.module.image_logit), halves.bank_score)
    torch.testing.assert_close(fused.image_score, score)
    # and `halves` (what benchmarks/normal_only.py weighs one by one) gives each half unfused
    torch.testing.assert_close(torch.sigmoid(halves.module.mask_logits), module)
    torch.testing.assert_close(halves.bank_map, normal)
    # and the fused graph exports with parity against PyTorch
    out = tmp_path / "artifact"
    assert (
        main(["-q", "export", "onnx", "--checkpoint", str(result.checkpoint), "--out", str(out), "--split", str(split)])
        == 0
    )
    parity = json.loads((out / "parity_vision.json").read_text())["result"]
    assert parity["verdict_agreement"] == 1.0 and parity["map_max_abs"] <= 1e-3


def test_the_pseudo_defect_kinds_are_a_config_choice():
    from train.config import LocalizationConfig

    # given only strokes
    rng = np.random.default_rng(4)
    image = rng.integers(60, 200, (224, 224, 3), dtype=np.uint8)
    masks = [draw(rng, image, image, PseudoDefects(kinds=("stroke",)))[1] for _ in range(10)]
    # then every edit is a thin line: its area over its centre line's length (its mean width,
    # anti-aliased edges included) is at most 12 px (a blob of that area: 50 and more), and it is longer than it is wide
    from train.localization.data import skeleton_of

    for mask in masks:
        length = int(skeleton_of(mask).sum())
        assert mask.any() and mask.sum() / max(length, 1) <= 12 and length >= 20
    # and the config takes the four kinds by default and refuses one that does not exist
    assert LocalizationConfig().pseudo_defect_kinds == ["scar", "patch", "foreign", "stroke"]
    with pytest.raises(ValueError):
        LocalizationConfig(pseudo_defect_kinds=["glitter"])
