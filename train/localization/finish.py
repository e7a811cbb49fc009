"""The end of a localization run: thresholds on the calibration split, figures on the test split.

    thresholds, report, test_pred = calibrate_and_report(engine, split, cfg, device)
    write_run_files(run_dir, history, thresholds, report, metrics, test_pred)

Calibration sees the calibration split only (for a normal-only model, only its good
images: a line on day one has no defect to calibrate on); the report sees the test split
only, and an image in both is refused. What each split is for: eiad/split.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from eiad.errors import ModelError
from train.eval.localization.predict import predict, save_grid, save_loss_curve
from train.eval.localization.quality import format_quality, quality_report
from train.localization.calibrate import calibrate
from train.localization.data import LocalizationDataset

log = logging.getLogger(__name__)


def calibrate_on(cal_pred, cal_cfg) -> dict:
    """Thresholds fitted on the calibration split's predictions (and only there)."""
    return calibrate(
        cal_pred.labels,
        cal_pred.image_scores,
        cal_pred.masks,
        cal_pred.maps,
        class_index=cal_pred.class_index,
        class_probs=cal_pred.class_probs,
        image_rule=cal_cfg.image_rule,
        target_false_reject_rate=cal_cfg.target_false_reject_rate,
        target_class_precision=cal_cfg.target_class_precision,
        min_defect_area_px=cal_cfg.min_defect_area_px,
    ).to_dict()


def report_on_test(
    test_pred, cal_pred, thresholds: dict, class_names: list[str], defect_types: list[str] | None = None
) -> dict:
    """The quality report on the test split; refuses to score an image its thresholds were fitted on."""
    shared = set(test_pred.paths) & set(cal_pred.paths)
    if shared:
        raise ModelError(
            f"{len(shared)} images are in both the calibration and the test split (e.g. {sorted(shared)[0]}): "
            "a figure scored on them would not be held out; rebuild the split with 'eiad data ddqa'"
        )
    report = quality_report(test_pred, thresholds, class_names, "test", defect_types)
    report["calibration_images"] = len(cal_pred.paths)
    return report


def calibrate_and_report(engine, split, cfg, device) -> tuple[dict, dict, object]:
    """(thresholds, test report, test predictions) of a trained engine; `cfg` is the LocalizationConfig."""
    class_names = [] if cfg.normal_only else list(split.classes)
    cal_set = LocalizationDataset(split, "calibration", engine.height, engine.width, only_good=cfg.normal_only)
    test_set = LocalizationDataset(split, "test", engine.height, engine.width)
    cal_pred = predict(engine, cal_set, batch_size=cfg.batch_size, device=device)
    test_pred = predict(engine, test_set, batch_size=cfg.batch_size, device=device, keep_images=True)
    thresholds = calibrate_on(cal_pred, cfg.calibration)
    report = report_on_test(test_pred, cal_pred, thresholds, class_names, list(split.classes))
    report["model"] = (
        "normal-only (pseudo-defects + normal bank)"
        if cfg.normal_only
        else "supervised + normal bank"
        if cfg.normal_bank
        else "supervised"
    )
    return thresholds, report, test_pred


def write_run_files(
    run_dir: Path, history: list[dict], thresholds: dict, report: dict, metrics: dict, test_pred
) -> None:
    """loss_curve.png, test_grid.png and metrics.json beside the checkpoint; the report to the log."""
    save_loss_curve(history, run_dir / "loss_curve.png")
    save_grid(test_pred, run_dir / "test_grid.png", pixel_threshold=thresholds["pixel"])
    (run_dir / "metrics.json").write_text(
        json.dumps({"metrics": metrics, "thresholds": thresholds, "test": report, "history": history}, indent=1) + "\n"
    )
    log.info("localization, %s", format_quality(report))
