"""Training path 1 end to end on the project's real tiny presets, the CLI, and the decoupling
of the two training paths (localization never moves LLM weights; dialog LoRA never moves
the localization outputs)."""

import json

import numpy as np
import pytest
import torch
import yaml

from commands.main import main as eiad_main
from eiad.errors import ConfigError
from eiad.modeling.checkpoint import engine_from_checkpoint
from tests.support.preset_cache import preset_cache  # noqa: F401 (fixture)
from tests.unit.test_localization_support import make_split
from train.config import TrainConfig, load_train_config
from train.localization.data import data_fingerprint
from train.localization.trainer import train_localization
from train.optimization import lr_factor

PRESET = "tiny-llava-siglip"


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_split(tmp_path_factory.mktemp("line"), n_train=8, n_held_out=6, size=96)


def _loc(**kw):
    return {"taps": [1, 3], "epochs": 2, "batch_size": 4, "decoder_channels": 8, "proj_dim": 16, **kw}


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    factors = [lr_factor(s, 100, 10, "cosine", 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # monotone decay
    assert factors[-1] == pytest.approx(0.1, abs=0.01)
    assert lr_factor(500, 100, 10, "cosine", 0.1) == pytest.approx(0.1)  # past the end: stays at the floor


def test_config_errors_name_the_key(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"split": "x.json", "localization": {"learning_rate": -1, "bogus": 1}}))
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    assert "localization.learning_rate" in str(info.value) and "localization.bogus" in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "missing.yaml")


@pytest.mark.slow
def test_cli_trains_writes_the_run_and_eval_reproduces_it(tmp_path, split, preset_cache, capsys):
    # given a config file for the localization path only
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "backbone": PRESET,
                "split": str(split),
                "device": "cpu",
                "localization": _loc(unfreeze_vision=True),
                "dialog": None,
            }
        )
    )
    # when 'eiad train' runs it
    assert eiad_main(["train", "--config", str(config), "--only", "localization", "--out", str(tmp_path / "run")]) == 0
    run = tmp_path / "run" / "localization"
    # then the run has its checkpoint, curve, grid and metrics, and the checkpoint its fingerprint and thresholds
    for name in (
        "loss_curve.png",
        "test_grid.png",
        "metrics.json",
        "checkpoint/localization.safetensors",
        "checkpoint/vision.safetensors",
        "checkpoint/config.yaml",
    ):
        assert (run / name).is_file(), name
    meta = json.loads((run / "checkpoint" / "meta.json").read_text())
    assert meta["data_fingerprint"] == data_fingerprint(split)
    assert 0 <= meta["thresholds"]["pixel"] <= 1 and 0 <= meta["thresholds"]["image_score"] <= 1
    saved = json.loads((run / "metrics.json").read_text())
    trained = saved["metrics"]
    assert saved["test"]["split"] == "test" and saved["test"]["images"] == 6
    assert saved["thresholds"]["calibration"].endswith("on 6 calibration images")
    # and 'eval localization' on the same split reproduces the training run's test figures
    import argparse

    from train.eval.localization import cli as loc_cli

    parser = argparse.ArgumentParser()
    loc_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "localization",
            "--checkpoint",
            str(run / "checkpoint"),
            "--split",
            str(split),
            "--json",
            str(tmp_path / "m.json"),
            "--grid",
            str(tmp_path / "g.png"),
        ]
    )
    assert args.func(args) == 0
    again = json.loads((tmp_path / "m.json").read_text())
    assert again["pixel_auroc"] == pytest.approx(trained["pixel_auroc"], abs=1e-5)
    assert again["aupro"] == pytest.approx(trained["aupro"], abs=1e-5)
    assert again["split"] == "test" and again["verdicts"] == saved["test"]["verdicts"]
    assert (tmp_path / "g.png").stat().st_size > 1000
    assert "pixel AUROC" in capsys.readouterr().out


@pytest.mark.slow
def test_thresholds_are_fitted_on_calibration_and_every_figure_is_scored_on_test(
    tmp_path, split, preset_cache, monkeypatch
):
    # given a spy on what calibration and the quality report are computed from
    import train.localization.finish as loc
    from eiad.split import load_split

    seen: dict[str, set] = {}
    real_calibrate, real_report = loc.calibrate_on, loc.quality_report
    monkeypatch.setattr(
        loc,
        "calibrate_on",
        lambda pred, cfg: seen.setdefault("calibrated", set(pred.paths)) and real_calibrate(pred, cfg),
    )
    monkeypatch.setattr(
        loc,
        "quality_report",
        lambda pred, *a, **k: seen.setdefault("scored", set(pred.paths)) and real_report(pred, *a, **k),
    )
    # when a run finishes
    config = TrainConfig(backbone=PRESET, split=split, out_dir=tmp_path, device="cpu", localization=_loc(epochs=1))
    result = train_localization(config)
    # then thresholds came from the calibration images only and every figure from the test images only
    index = load_split(split)
    assert seen["calibrated"] == {e.image for e in index.calibration}
    assert seen["scored"] == {e.image for e in index.test}
    assert result.metrics and result.thresholds["calibration"].endswith("on 6 calibration images")


def test_a_figure_on_images_the_thresholds_were_fitted_on_is_refused():
    from eiad.errors import ModelError
    from train.localization.finish import report_on_test

    class Pred:  # only the paths matter: the overlap is refused before any metric
        def __init__(self, paths):
            self.paths = paths

    with pytest.raises(ModelError, match="both the calibration and the test split"):
        report_on_test(Pred(("a.png", "b.png")), Pred(("b.png", "c.png")), {}, [])


def _llm_state(backbone):
    model = backbone.hf_model
    return {n: p.detach().clone() for n, p in model.named_parameters() if "vision_tower" not in n}


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["tiny-minicpmv46", "tiny-llava-siglip"])
def test_localization_training_leaves_llm_weights_untouched(tmp_path, split, preset_cache, preset):
    # given a real tiny backbone whose vision tower is unfrozen for localization training
    from eiad.modeling.backbone.loading import load_backbone

    backbone = load_backbone(preset)
    llm_before = _llm_state(backbone)
    vision_before = {n: p.detach().clone() for n, p in backbone.named_parameters() if "vision_tower" in n}
    # when the localization path trains
    config = TrainConfig(
        backbone=preset, split=split, out_dir=tmp_path, device="cpu", localization=_loc(unfreeze_vision=True, epochs=1)
    )
    result = train_localization(config, backbone=backbone)
    # then the vision tower moved (training happened) but no LLM/projector weight did
    assert result.steps == 2
    assert any(not torch.equal(p, vision_before[n]) for n, p in backbone.named_parameters() if n in vision_before)
    for name, value in _llm_state(backbone).items():
        assert torch.equal(value, llm_before[name]), name


def _ddqa(tmp_path, split_path):
    from eiad.split import load_split

    index = load_split(split_path)
    path = tmp_path / "train.jsonl"
    with open(path, "w") as handle:
        for entry in index.train:
            answer = "B" if entry.is_defective else "A"
            handle.write(
                json.dumps(
                    {
                        "query": "<image>Is there any visible defect in this image? Options: A. No B. Yes",
                        "response": answer,
                        "images": [entry.image],
                    }
                )
                + "\n"
            )
    return path


@pytest.mark.slow
def test_dialog_training_leaves_localization_outputs_unchanged(tmp_path, split, preset_cache):
    # given a trained localization checkpoint (frozen vision tower, the default)
    from eiad.modeling.backbone.loading import load_backbone
    from train.dialog.config import DialogConfig
    from train.dialog.merge import merge_lora
    from train.dialog.trainer import train_dialog

    config = TrainConfig(
        backbone=PRESET, split=split, out_dir=tmp_path / "run", device="cpu", localization=_loc(epochs=1)
    )
    loc = train_localization(config)
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8))
    base, _ = engine_from_checkpoint(loc.checkpoint, device="cpu")
    with torch.no_grad():
        before = base(images)
    # when the dialog path trains LoRA (the project's real dialog trainer) and the adapter is merged
    report = train_dialog(
        DialogConfig(max_steps=3, learning_rate=5e-3), PRESET, _ddqa(tmp_path, split), None, tmp_path / "dialog"
    )
    merged_dir = merge_lora(PRESET, tmp_path / "dialog" / "adapter", tmp_path / "merged")
    merged = load_backbone(merged_dir)
    # then the LLM did change ...
    base_llm, merged_llm = _llm_state(base.backbone), _llm_state(merged)
    assert report.steps == 3
    assert any(not torch.equal(v, merged_llm[n]) for n, v in base_llm.items() if n in merged_llm)
    # ... and the localization outputs on the merged model are bit-identical
    after_engine, _ = engine_from_checkpoint(loc.checkpoint, backbone=merged, device="cpu")
    with torch.no_grad():
        after = after_engine(images)
    for name in ("anomaly_map", "image_score", "class_probs"):
        torch.testing.assert_close(getattr(after, name), getattr(before, name), rtol=0, atol=0, msg=name)


@pytest.mark.slow
def test_the_language_side_trains_on_the_features_the_exported_vision_graph_gives(
    tmp_path, split, preset_cache, monkeypatch
):
    # given a localization run that retrains the vision tower (what the tiny presets do)
    import onnxruntime as ort

    import train.dialog.trainer as trainer_module
    from eiad.modeling.backbone.loading import load_backbone
    from eiad.modeling.engine import export_onnx
    from train.dialog.config import DialogConfig
    from train.dialog.merge import merge_lora

    config = TrainConfig(
        backbone=PRESET,
        split=split,
        out_dir=tmp_path / "run",
        device="cpu",
        localization=_loc(epochs=1, unfreeze_vision=True, vision_learning_rate=0.05),
    )
    loc = train_localization(config)
    # when the dialog path trains as 'eiad train' runs it (on that run's tower), keeping the backbone it trained
    trained = {}

    def keep(*args, **kwargs):
        trained["backbone"] = load_backbone(*args, **kwargs)
        return trained["backbone"]

    monkeypatch.setattr(trainer_module, "load_backbone", keep)
    trainer_module.train_dialog(
        DialogConfig(max_steps=2), PRESET, _ddqa(tmp_path, split), None, tmp_path / "dialog", vision_from=loc.checkpoint
    )
    merged = load_backbone(
        merge_lora(PRESET, tmp_path / "dialog" / "adapter", tmp_path / "merged", vision_from=loc.checkpoint)
    )
    # then the vision features its language side saw are the exported vision graph's, for the same images
    engine, _ = engine_from_checkpoint(loc.checkpoint, device="cpu")
    export_onnx(engine, tmp_path / "vision.onnx")
    images = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    (exported,) = ort.InferenceSession(str(tmp_path / "vision.onnx")).run(["vision_features"], {"image": images})

    def tokens(backbone):
        with torch.no_grad():
            pixels = engine.preprocess(torch.from_numpy(images))
            return backbone.forward_vision(pixels, engine.taps).tokens.float().numpy()

    np.testing.assert_allclose(tokens(trained["backbone"]), exported, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(tokens(merged), exported, atol=1e-4, rtol=1e-4)
    # and the preset's own tower, which the dialog path used to train on, gives other features
    assert np.abs(tokens(load_backbone(PRESET)) - exported).max() > 1e-2
