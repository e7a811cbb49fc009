"""`eiad export`: export the vision engine to ONNX/TensorRT and the language model, verify artifacts.

Only argparse here: torch, onnx and TensorRT are imported inside the handlers, so
`eiad export --help` works on an edge box.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

_EPILOG = (
    "Typical order: 'eiad export onnx' (creates the artifact) -> 'eiad export llm' (adds the explainer's "
    "language model) -> copy the folder to the edge box -> 'eiad export verify DIR' -> 'eiad export tensorrt DIR' "
    "(on the box: engines only run on the TensorRT version and GPU that built them). See docs/export.md."
)


def register(commands) -> None:
    parser = commands.add_parser(
        "export",
        help="export the vision engine to ONNX/TensorRT and the language model, verify artifacts",
        description="Export a trained checkpoint into one self-describing artifact folder (manifest.json "
        "with sha256 of every file, thresholds and class names from calibration).",
        epilog=_EPILOG,
    )
    sub = parser.add_subparsers(dest="export_command", metavar="COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    onnx = sub.add_parser(
        "onnx",
        help="vision engine -> vision.onnx + parity check + manifest (creates the artifact)",
        description="Export the vision engine (uint8 BGR NHWC camera pixels -> anomaly map, score, "
        "class probabilities, vision features) with a dynamic batch axis, then prove it against "
        "PyTorch on real held-out images. Fails (exit 2) past the parity tolerances.",
    )
    onnx.add_argument("--checkpoint", type=Path, required=True, help="localization checkpoint folder (eiad train)")
    onnx.add_argument("--out", type=Path, required=True, help="artifact folder to create")
    onnx.add_argument("--split", type=Path, help="split.json (or its folder): parity on its 'test' images")
    onnx.add_argument("--images", type=Path, help="folder of real line images for parity when there is no split")
    onnx.add_argument("--max-images", type=int, default=16, help="parity images used (default 16)")
    onnx.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default 18)")
    onnx.add_argument(
        "--external-data", action="store_true", help="weights in vision.onnx.data (automatic above 1.5 GB)"
    )
    onnx.add_argument("--force", action="store_true", help="replace an existing artifact in --out")
    onnx.set_defaults(func=_onnx)

    llm = sub.add_parser(
        "llm",
        help="language model -> llm/ (fp32 + int8 + int4 ONNX, projector) + parity",
        description="Export the checkpoint's language model into an existing artifact: the decoder "
        "taking inputs_embeds (KV cache, or one-token steps with explicit recurrent states for "
        "Qwen3.5 linear-attention layers), the projector that turns the artifact's vision_features "
        "into LLM embeddings, the embedding table and tokenizer; quantize it; check greedy answers "
        "against PyTorch (fp32 and int8 must match on >= 95%% of prompts, int4 reported).",
    )
    llm.add_argument("artifact", type=Path, help="artifact folder made by 'eiad export onnx'")
    llm.add_argument(
        "--model",
        required=True,
        help="the dialog model: 'eiad train merge' output folder (or a preset name / backbone folder)",
    )
    llm.add_argument("--precisions", default="int8,int4", help="quantized decoders to add to fp32 (default int8,int4)")
    llm.add_argument(
        "--ddqa",
        type=Path,
        help="parity on DDQA questions WITH their images (the explainer's real use): a DDQA jsonl, or "
        "the 'eiad data ddqa' folder (uses test/Task_DD.jsonl, else test/test.jsonl). Without it: built-in "
        "text prompts",
    )
    llm.add_argument("--max-prompts", type=int, default=20, help="DDQA records used for parity (default 20)")
    llm.add_argument("--prompts", type=Path, help="text file, one text-only parity prompt per line")
    llm.add_argument("--max-new-tokens", type=int, default=16, help="tokens compared per prompt (default 16)")
    llm.add_argument(
        "--parity-min-margin",
        type=float,
        default=0.0,
        help="parity is teacher-forced step by step; skip the steps whose fp32 top-1 logit margin is "
        "below this (a near tie any rounding flips). Default 0: every step compared. Per-step "
        "margins are listed in parity_llm.json",
    )
    llm.add_argument("--opset", type=int, default=18)
    llm.set_defaults(func=_llm)

    quant = sub.add_parser(
        "quantize",
        help="fp32 artifact -> int8 (Q/DQ) or fp16 artifact + parity gate against the fp32 source",
        description="Derive a new artifact whose vision.onnx carries its precision in the graph: int8 = static "
        "Q/DQ (per-channel int8 weights, activation ranges calibrated on real line images), fp16 = fp16 weights "
        "and compute; the uint8 input and float32 outputs stay, so the edge runs it unchanged. The llm/ folder and "
        "other files are copied, the manifest gets the precision and new hashes. Verdicts, image scores and masks "
        "are checked against the fp32 source on held-out images: past the tolerances (docs/export.md) nothing is "
        "written and it exits 2. TensorRT 11 takes precision only from such a graph.",
    )
    quant.add_argument("source", type=Path, help="fp32 artifact folder made by 'eiad export onnx'")
    quant.add_argument(
        "--precision",
        choices=("int8", "fp16"),
        required=True,
        help="int8: smallest, fastest on int8 hardware (TensorRT, VNNI CPUs), needs calibration images; "
        "fp16: near-fp32 accuracy, for GPUs (on most CPUs it is slower than fp32)",
    )
    quant.add_argument("--out", type=Path, required=True, help="new artifact folder")
    quant.add_argument(
        "--split",
        type=Path,
        help="split.json: calibrate int8 ranges on its 'train' images, check parity on its 'test' images",
    )
    quant.add_argument(
        "--images",
        type=Path,
        help="folder of real line images when there is no split (half calibrate, "
        "the other half is held out for parity)",
    )
    quant.add_argument("--max-images", type=int, default=32, help="held-out parity images (default 32)")
    quant.add_argument("--calibration-images", type=int, default=64, help="int8 calibration images (default 64)")
    quant.add_argument(
        "--symmetric",
        action="store_true",
        help="int8 activations with zero point 0 (TensorRT requires it; costs accuracy on small models)",
    )
    quant.add_argument("--force", action="store_true", help="replace an existing artifact in --out")
    quant.set_defaults(func=_quantize)

    trt = sub.add_parser(
        "tensorrt",
        help="vision.onnx -> TensorRT engine (run this on the edge box)",
        description="Build a TensorRT 10 engine from the artifact's vision.onnx. The engine file "
        "name is keyed by ONNX sha256, TensorRT version, GPU, precision and batch profile. A first "
        "build can take minutes (about 10 on a Jetson Orin); progress is logged.",
    )
    trt.add_argument("artifact", type=Path)
    trt.add_argument("--precision", choices=("fp16", "int8"), default="fp16")
    trt.add_argument("--calib-dir", type=Path, help="folder of line images for INT8 calibration")
    trt.add_argument("--max-batch", type=int, default=8, help="largest batch of the optimisation profile")
    trt.add_argument("--workspace-mib", type=int, default=2048, help="builder workspace (MiB)")
    trt.set_defaults(func=_tensorrt)

    verify = sub.add_parser(
        "verify",
        help="check every file's sha256 and load each part",
        description="Check the manifest, every file's size and sha256, then load each part "
        "(ONNX Runtime sessions for the graphs, the LLM runtime). Errors name the file.",
    )
    verify.add_argument("artifact", type=Path)
    verify.set_defaults(func=_verify)


def _quiet_exporters() -> None:
    # The dynamo exporter's passes log one INFO line per node: keep them out of the user's view.
    for name in ("onnxscript", "onnx_ir", "onnxruntime.quantization"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def _onnx(args) -> int:
    from eiad.errors import ModelError
    from eiad.manifest import Thresholds
    from eiad.modeling.checkpoint import engine_from_checkpoint
    from export.formats import FORMATS, VisionMeta
    from export.vision.exporter import export_vision_artifact
    from export.vision.parity import image_paths, load_images

    FORMATS["onnx"].check("fp32")
    _quiet_exporters()
    paths, source = image_paths(args.split, args.images, args.max_images)  # fail on data before a long export
    engine, saved = engine_from_checkpoint(args.checkpoint)
    if not saved.thresholds:
        raise ModelError(
            f"{args.checkpoint}/meta.json has no calibrated thresholds: finish training (calibration) first"
        )
    preprocess = saved.meta.get("preprocess", {})
    meta = VisionMeta(
        model_id=f"{saved.meta['backbone']}@{Path(args.checkpoint).resolve().name}-step{saved.step}",
        backbone=str(saved.meta["backbone"]),
        preset=str(saved.meta.get("family", "")),
        class_names=saved.class_names,
        thresholds=Thresholds(**saved.thresholds),
        preprocessing=(
            f"inside the graph: uint8 BGR NHWC {engine.height}x{engine.width} -> RGB -> float -> "
            f"(x/255 - mean)/std with mean={preprocess.get('mean')} std={preprocess.get('std')}; "
            "outside: resize the camera image to the input size (cv2.resize)"
        ),
        height=engine.height,
        width=engine.width,
    )
    images = load_images(paths, meta.height, meta.width)
    out = export_vision_artifact(
        engine, meta, args.out, images, source, args.opset, args.force, True if args.external_data else None
    )
    print(f"artifact: {out}")
    return 0


def _llm(args) -> int:
    import tempfile

    from eiad.errors import DataError, ModelError
    from eiad.modeling.backbone.loading import load_backbone
    from export.formats import FORMATS
    from export.llm.exporter import export_llm_artifact
    from export.llm.parity import ddqa_prompts

    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    for precision in precisions:
        FORMATS["llm"].check(precision)
    _quiet_exporters()
    prompts = None
    if args.ddqa and args.prompts:
        raise DataError("give either --ddqa or --prompts, not both")
    if args.ddqa:
        prompts = ddqa_prompts(args.ddqa, args.max_prompts)  # fail on data before a long export
    elif args.prompts:
        if not args.prompts.is_file():
            raise DataError(f"{args.prompts} not found: give a text file with one prompt per line")
        prompts = [line.strip() for line in args.prompts.read_text(encoding="utf-8").splitlines() if line.strip()]
    backbone = load_backbone(args.model)
    fast = getattr(backbone.tokenizer, "backend_tokenizer", None)
    if fast is None:
        raise ModelError(f"{args.model} has no fast tokenizer (tokenizer.json): the edge runtime needs one")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer_json = Path(tmp) / "tokenizer.json"
        fast.save(str(tokenizer_json))
        result = export_llm_artifact(
            backbone.hf_model,
            tokenizer_json,
            args.artifact,
            precisions,
            prompts,
            args.opset,
            args.max_new_tokens,
            args.parity_min_margin,
            backbone=backbone,
        )
    print(
        f"parity prompts: {result['evaluated']} of {result['prompts']} ({result['image_prompts']} with images); "
        f"excluded {len(result['excluded'])}"
    )
    print(f"{'precision':<10}{'match':>8}{'size MB':>10}{'tokens/s':>10}{'prefill ms':>12}")
    for row in result["precisions"]:
        print(
            f"{row['precision']:<10}{row['match_rate']:>8.0%}{row['size_bytes'] / 1e6:>10.2f}"
            f"{row['tokens_per_s']:>10.0f}{row['prefill_ms_mean']:>12.1f}"
        )
    return 0


def _quantize(args) -> int:
    from export.formats import FORMATS
    from export.vision.parity import load_images
    from export.vision.quantize import image_sets, quantize_artifact, source_artifact

    FORMATS["quantize"].check(args.precision)
    _quiet_exporters()
    _, manifest, _ = source_artifact(args.source)  # a missing / corrupt / non-fp32 source fails before any work
    calibration, parity, source = image_sets(args.split, args.images, args.max_images, args.calibration_images)
    size = (manifest.input.height, manifest.input.width)
    calib = load_images(calibration, *size) if args.precision == "int8" else load_images(calibration[:0], *size)
    summary = quantize_artifact(
        args.source, args.out, args.precision, calib, load_images(parity, *size), source, args.force, args.symmetric
    )
    p = summary.parity
    print(f"artifact: {summary.artifact}")
    print(f"parity on {p.images} held-out images ({source}); int8 calibration images: {summary.calibration_images}")
    print(
        f"{'precision':<10}{'size MB':>9}{'agreement':>11}{'mask IoU':>10}{'score diff':>12}{'ms/image':>10}"
        f"{'speed-up':>10}"
    )
    print(
        f"{'fp32':<10}{summary.source_bytes / 1e6:>9.2f}{'-':>11}{'-':>10}{'-':>12}"
        f"{summary.source_ms_per_image:>10.2f}{'1.00x':>10}"
    )
    print(
        f"{summary.precision:<10}{summary.quantized_bytes / 1e6:>9.2f}{p.verdict_agreement:>11.1%}"
        f"{p.mask_iou_mean:>10.3f}{p.score_max_abs:>12.3g}{summary.quantized_ms_per_image:>10.2f}"
        f"{summary.source_ms_per_image / summary.quantized_ms_per_image:>9.2f}x"
    )
    print("ms/image: batch 1, ONNX Runtime CPU on this machine")
    if summary.excluded_nodes:
        print(
            f"kept in float: {len(summary.excluded_nodes)} nodes (attention's activation x activation MatMuls and the "
            f"nodes most sensitive to int8; names and sensitivities in {summary.artifact}/parity_vision.json)"
        )
    return 0


def _tensorrt(args) -> int:
    from export.formats import FORMATS
    from export.tensorrt.build import build_engine_for_artifact

    FORMATS["tensorrt"].check(args.precision)
    path = build_engine_for_artifact(args.artifact, args.precision, args.calib_dir, args.max_batch, args.workspace_mib)
    print(f"engine: {path}")
    return 0


def _verify(args) -> int:
    from export.verify import verify_artifact

    for line in verify_artifact(args.artifact):
        print(line)
    return 0
