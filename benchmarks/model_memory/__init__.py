"""Memory of the real checkpoints, for training and at the edge, counted from their architectures.

No real checkpoint can be downloaded on the development machines, so this builds each
supported model from its published configuration on PyTorch's meta device (shapes, no
weights, no memory), counts its parameters by part, and derives:

- training (the documented recipe: tower frozen, LoRA on the language model and projector,
  bf16 weights): frozen weights 2 B per parameter; each LoRA parameter 16 B (fp32 weight,
  gradient and AdamW's two moments); activations estimated for one sample with gradient
  checkpointing (bf16 layer inputs kept per LLM layer, plus fp32 logits for the loss);
- edge: the exported files (vision graph = tower + localization module; LLM decoder per
  precision, projector, embedding table) in bytes on disk, as `eiad export onnx|llm`
  writes them: fp32 4 B, fp16 2 B, int8 1 B per MatMul weight (`quantize_dynamic`), int4
  0.5 B plus an fp32 scale per block of 32 (`MatMulNBitsQuantizer`); parameters outside
  MatMuls (norms, convolutions, biases) stay fp32. The embedding table is memory-mapped
  at the edge: only the rows of the tokens in use are resident.

Run: python -m benchmarks.model_memory [--out benchmarks/results/model_memory]
Writes result.json and report.md there. Counts are exact for the architectures built;
the activation figure is an estimate and says so.
"""

from benchmarks.model_memory.checkpoints import (
    LOCALIZER_OPTIONS,
    LOCALIZER_TAPS,
    Checkpoint,
    Parts,
    llava_interleave,
    minicpmv26,
    minicpmv46,
)
from benchmarks.model_memory.estimate import memory, report

__all__ = [
    "LOCALIZER_OPTIONS",
    "LOCALIZER_TAPS",
    "Checkpoint",
    "Parts",
    "llava_interleave",
    "memory",
    "minicpmv26",
    "minicpmv46",
    "report",
]
