"""`eiad data synth`: generate the synthetic production line.

Declares arguments only; numpy/OpenCV/scikit-image load when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train.data.synth.catalog import DEFAULT_PARTS, describe


def register(sub) -> None:
    parser = sub.add_parser(
        "synth",
        help="generate a synthetic production line (images, exact masks, camera stream)",
        description="Generate inspection images of parts on a line with pixel-exact defect masks, "
        "in the DDQA raw layout (<out>/SynthLine/<part>/OK/image, .../NG/<defect>/{image,mask}), "
        "plus a camera stream (<out>/stream/line.avi + ground_truth.jsonl), a contact sheet "
        "(<out>/contact_sheet.png) and <out>/synth_report.json. Same --seed -> identical files. " + describe(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory (must be empty unless --force)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives byte-identical files")
    parser.add_argument("--size", type=int, default=256, help="image and frame side in pixels (64..2048)")
    parser.add_argument("--ok-per-part", type=int, default=8, help="defect-free images per part type")
    parser.add_argument("--ng-per-defect", type=int, default=4, help="defective images per (part type, defect type)")
    parser.add_argument(
        "--parts", default=",".join(DEFAULT_PARTS), help="comma-separated part types (see the list above)"
    )
    parser.add_argument("--stream-frames", type=int, default=60, help="frames in the camera stream (0: none)")
    parser.add_argument(
        "--stream-codec",
        choices=("ffv1", "mjpg"),
        default="ffv1",
        help="ffv1: lossless, frames equal the ground truth exactly; mjpg: lossy, smaller",
    )
    parser.add_argument("--stream-ng-fraction", type=float, default=0.2, help="share of defective frames in the stream")
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty directory, replacing only this command's own outputs",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_synth)


# Config key -> the flag a user typed, so errors name what to change.
_FLAGS = {
    "image_size_px": "--size",
    "ok_per_part": "--ok-per-part",
    "ng_per_defect": "--ng-per-defect",
    "parts": "--parts",
    "stream_frames": "--stream-frames",
    "stream_ng_fraction": "--stream-ng-fraction",
    "seed": "--seed",
}


def run_synth(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from eiad.errors import ConfigError
    from train.data.synth import SynthConfig, generate_line

    try:
        config = SynthConfig(
            seed=args.seed,
            image_size_px=args.size,
            ok_per_part=args.ok_per_part,
            ng_per_defect=args.ng_per_defect,
            parts=args.parts,
            stream_frames=args.stream_frames,
            stream_codec=args.stream_codec,
            stream_ng_fraction=args.stream_ng_fraction,
        )
    except ValidationError as error:
        problems = "; ".join(f"{_FLAGS.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"eiad data synth: {problems}") from None
    report = generate_line(config, args.out, progress=not args.no_progress, force=args.force)
    print(f"synthetic line -> {report.out_dir}  ({report.elapsed_s:.1f} s)")
    print(f"{'part':<16}{'OK':>5}  NG per defect")
    for part, counts in report.counts.items():
        ng = ", ".join(f"{name} {n}" for name, n in counts.items() if name != "OK")
        print(f"{part:<16}{counts['OK']:>5}  {ng}")
    print(f"images: {report.images} ({report.ng_images} NG) in {report.dataset_dir}")
    if report.stream is not None:
        print(
            f"stream: {report.stream.frames} frames ({report.stream.ng_frames} NG, {report.stream.codec}) "
            f"in {report.stream.video}"
        )
    print(f"contact sheet: {report.contact_sheet}   report: {report.report_json}")
    return 0
