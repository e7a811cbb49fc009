"""`generate_line`: the synthetic production line, top to bottom."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from eiad import __version__
from train.data.synth.catalog import defects_for
from train.data.synth.config import GENERATOR_VERSION, SynthConfig
from train.data.synth.contact_sheet import SheetEntry, write_contact_sheet
from train.data.synth.parts import DATASET_DOMAIN, render_pair, sample_rng
from train.data.synth.stream import StreamSummary, write_stream
from train.data.synth.writer import CONTACT_SHEET, REPORT, image_path, mask_path, prepare_output, write_png

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthReport:
    """What `generate_line` wrote. counts: part -> {"OK": n, defect: n, ...}."""

    out_dir: Path
    dataset_dir: Path
    counts: dict[str, dict[str, int]]
    images: int
    ng_images: int
    contact_sheet: Path
    report_json: Path
    stream: StreamSummary | None
    elapsed_s: float


def stem_for(part: str, defect: str | None, index: int) -> str:
    """File stem of a dataset image, unique within the dataset."""
    return f"{part}_{defect or 'ok'}_{index:04d}"


def _jobs(config: SynthConfig) -> list[tuple[str, str | None, int]]:
    jobs = []
    for part in config.parts:
        jobs += [(part, None, i) for i in range(config.ok_per_part)]
        for defect in defects_for(part):
            jobs += [(part, defect, i) for i in range(config.ng_per_defect)]
    return jobs


def _write_dataset(config: SynthConfig, root: Path, tick) -> tuple[dict, list[SheetEntry]]:
    counts: dict[str, dict[str, int]] = {
        part: {"OK": 0, **{defect: 0 for defect in defects_for(part)}} for part in config.parts
    }
    sheet: list[SheetEntry] = []
    for part, defect, index in _jobs(config):
        rng = sample_rng(config.seed, DATASET_DOMAIN, part, defect, index)
        pair = render_pair(rng, part, defect, config.image_size_px)
        stem = stem_for(part, defect, index)
        write_png(image_path(root, part, defect, stem), pair.image)
        if defect is not None:
            write_png(mask_path(root, part, defect, stem), pair.mask)
        counts[part]["OK" if defect is None else defect] += 1
        if index < config.sheet_examples:
            sheet.append(SheetEntry(f"{part} / {defect or 'OK'}", pair.image, pair.mask))
        tick()
    return counts, sheet


def generate_line(config: SynthConfig, out_dir: Path, progress: bool = True, *, force: bool = False) -> SynthReport:
    """Generate the DDQA raw tree, the camera stream, a contact sheet and a report.

    Refuses a non-empty out_dir unless force; with force only this generator's own
    entries are replaced. Same config -> byte-identical files. Not thread-safe for the
    same out_dir.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    prepare_output(out_dir, config.dataset_name, force)
    root = out_dir / config.dataset_name
    total = len(_jobs(config)) + config.stream_frames
    with tqdm(total=total, desc="synth", unit="img", disable=not progress) as bar:
        counts, sheet = _write_dataset(config, root, bar.update)
        stream = write_stream(config, out_dir, bar.update) if config.stream_frames else None
    write_contact_sheet(sheet, out_dir / CONTACT_SHEET)
    ng = sum(n for per_part in counts.values() for name, n in per_part.items() if name != "OK")
    images = sum(sum(per_part.values()) for per_part in counts.values())
    body = {
        "generator": "eiad data synth",
        "eiad_version": __version__,
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "config": config.model_dump(mode="json"),
        "counts": counts,
        "totals": {"images": images, "ok_images": images - ng, "ng_images": ng},
        "dataset_dir": config.dataset_name,
        "contact_sheet": CONTACT_SHEET if sheet else None,
        "stream": None
        if stream is None
        else {
            "video": f"{stream.video.parent.name}/{stream.video.name}",
            "ground_truth": f"{stream.ground_truth.parent.name}/{stream.ground_truth.name}",
            "frames": stream.frames,
            "ng_frames": stream.ng_frames,
            "codec": stream.codec,
            "fps": stream.fps,
            "frame_size_px": config.image_size_px,
        },
    }
    (out_dir / REPORT).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    elapsed = time.perf_counter() - started
    log.info("synthetic line: %d images (%d NG) in %.1f s -> %s", images, ng, elapsed, out_dir)
    return SynthReport(out_dir, root, counts, images, ng, out_dir / CONTACT_SHEET, out_dir / REPORT, stream, elapsed)
