"""The backbone adapter: one interface over Hugging Face vision-language models.

`EiadBackbone` wraps a transformers image-text-to-text model and exposes what the rest of
the project needs: the vision tower's patch features at chosen depths plus the tokens the
language model consumes, in ONE vision pass (`forward_vision`, exportable to ONNX at a
fixed input size); the chat/generate path; mean text embeddings of prompts; the
preprocessing spec as data; and the regex of the linear layers LoRA may touch.

Families live beside this file (`llava.py`, `minicpmv46.py`, ...) and subclass
`EiadBackbone`; `loading.load_backbone` picks one from the saved config's `model_type`.
Instances are not thread-safe (generate mutates caches); use one per thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from eiad.errors import ModelError
from eiad.preprocess import PreprocessSpec

log = logging.getLogger(__name__)

# LoRA goes on the attention/MLP projections of the language model and on the
# projector/resampler/merger linears; the leading alternation keeps it out of the
# vision tower whatever the family calls its modules.
LLM_PROJ = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


class VisionFeatures(NamedTuple):
    """Output of one vision pass. Field names become exported tensor names.

    layer_features: one (N, gh*gw, D) tensor per requested layer, in request order.
    tokens: (N, T, D) last hidden state of the tower, what the language side consumes.
    """

    layer_features: list[torch.Tensor]
    tokens: torch.Tensor


class EiadBackbone(torch.nn.Module):
    """Common adapter; subclasses implement the vision pass and the processor call."""

    family: str = ""
    lora_target_regex: str = ""
    # How each pixel key of single-image processor outputs is concatenated into a batch.
    pixel_cat_dims: dict[str, int] = {"pixel_values": 0}

    def __init__(self, hf_model: Any, processor: Any, spec: PreprocessSpec) -> None:
        super().__init__()
        self.hf_model = hf_model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.spec = spec

    # --- vision (subclasses) -------------------------------------------------------
    vision_hidden_size: int
    text_hidden_size: int
    num_vision_layers: int

    def patch_grid(self) -> tuple[int, int]:
        raise NotImplementedError

    def forward_vision(self, pixel_values: torch.Tensor, layers: Sequence[int]) -> VisionFeatures:
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor, layers: Sequence[int] = (-1,)) -> VisionFeatures:
        return self.forward_vision(pixel_values, layers)

    def _layer_indices(self, layers: Sequence[int]) -> list[int]:
        out = []
        for layer in layers:
            idx = layer + self.num_vision_layers if layer < 0 else layer
            if not 0 <= idx < self.num_vision_layers:
                raise ModelError(
                    f"vision layer {layer} out of range for {self.family} with {self.num_vision_layers} layers"
                )
            out.append(idx)
        return out

    def _encode(self, image: Image.Image, text: str) -> dict[str, torch.Tensor]:
        """Processor call for one image + one prompt text (image placeholder expanded)."""
        raise NotImplementedError

    # --- vision tokens -> language model (the explainer's path) --------------------
    def project_vision(self, tokens: torch.Tensor) -> torch.Tensor:
        """`forward_vision(...).tokens` (N, T, D) -> (N, T', text_hidden_size) image embeddings, batched.

        Exactly the embeddings the HF model writes over its image-placeholder tokens (tested),
        at the spec's fixed input size; exportable with a dynamic batch.
        """
        raise NotImplementedError

    def _image_wrap(self) -> tuple[str, str]:
        """Text the processor puts right before / after the image embeddings (family-specific)."""
        return "", ""

    def prompt_template(self) -> tuple[str, str]:
        """(text before the image embeddings, text after them with a `{prompt}` field).

        prefix + project_vision(tokens) + suffix.format(prompt=question) is the prompt the
        processor builds for (image, question); other braces are escaped for str.format.
        """
        marker = "\ue000"
        text = self.format_prompt(marker)
        before, _, after = text.partition(self.image_placeholder)
        if marker not in after:
            raise ModelError(f"{self.family}: the chat template puts the question before the image; unsupported")
        start, end = self._image_wrap()
        escape = lambda s: s.replace("{", "{{").replace("}", "}}")  # noqa: E731
        return escape(before + start), escape(end + after).replace(marker, "{prompt}")

    @torch.no_grad()
    def image_prompt_embeds(self, tokens: torch.Tensor, question: str) -> torch.Tensor:
        """(1, S, text_hidden) prompt embeddings for one image's vision tokens (1, T, D) and a question."""
        before, after = self.prompt_template()
        table = self.hf_model.get_input_embeddings()
        parts = []
        for text in (before.format(), None, after.format(prompt=question.replace("<image>", "").strip())):
            if text is None:
                parts.append(self.project_vision(tokens.to(self.device)).to(table.weight.dtype))
            elif text:
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                parts.append(table(torch.tensor([ids], device=table.weight.device)))
        return torch.cat(parts, dim=1)

    # --- text side -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.hf_model.parameters()).device

    def prepare_image(self, image: np.ndarray | Image.Image) -> Image.Image:
        """Bring an image to the spec size by the spec's resize rule, as RGB PIL."""
        if isinstance(image, np.ndarray):
            arr = image if image.ndim == 3 else np.stack([image] * 3, axis=-1)
            if self.spec.channel_order == "BGR":
                arr = arr[..., ::-1]
            image = Image.fromarray(np.ascontiguousarray(arr).astype(np.uint8))
        image = image.convert("RGB")
        if image.size != (self.spec.width, self.spec.height):
            image = image.resize((self.spec.width, self.spec.height), Image.BILINEAR)
        return image

    def format_prompt(self, question: str) -> str:
        """The chat-formatted user turn with one image, ending where the answer starts."""
        question = question.replace("<image>", "").strip()
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        for owner in (self.processor, self.tokenizer):
            if getattr(owner, "chat_template", None):
                text = owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                break
        else:
            text = f"{self.image_placeholder}\n{question}\n"
        if self.image_placeholder not in text:
            text = f"{self.image_placeholder}\n{text}"
        return text

    @property
    def image_placeholder(self) -> str:
        return self.tokenizer.image_token if hasattr(self.tokenizer, "image_token") else "<image>"

    @property
    def answer_suffix(self) -> str:
        """Text that closes an assistant answer (the template's end-of-turn)."""
        return self.tokenizer.eos_token or ""

    def chat_inputs(
        self,
        images: Sequence[np.ndarray | Image.Image],
        questions: Sequence[str],
        answers: Sequence[str] | None = None,
        pad_side: str = "right",
    ) -> dict[str, torch.Tensor]:
        """Model inputs for a batch of (image, question[, answer]).

        With answers, `labels` hold the answer tokens (+ end of turn) and -100 on every
        prompt, image and padding token, so the loss is on answers only.
        """
        if len(images) != len(questions) or (answers is not None and len(answers) != len(questions)):
            raise ModelError("chat_inputs: images, questions and answers must have the same length")
        rows, pixels = [], []
        for i, (image, question) in enumerate(zip(images, questions)):
            enc = self._encode(self.prepare_image(image), self.format_prompt(question))
            ids = enc.pop("input_ids")[0].tolist()
            labels = [-100] * len(ids)
            if answers is not None:
                ans = self.tokenizer(answers[i] + self.answer_suffix, add_special_tokens=False)["input_ids"]
                ids, labels = ids + ans, labels + ans
            rows.append((ids, labels))
            pixels.append({k: v for k, v in enc.items() if k in self.pixel_cat_dims})
        batch = _pad_rows(rows, self.tokenizer.pad_token_id or 0, pad_side)
        for key, dim in self.pixel_cat_dims.items():
            batch[key] = torch.cat([p[key] for p in pixels], dim=dim)
        if answers is None:
            batch.pop("labels")
        return batch

    @torch.no_grad()
    def generate(
        self, images: list[np.ndarray | Image.Image], prompts: list[str], max_new_tokens: int = 64
    ) -> list[str]:
        """Greedy answers, one per (image, prompt); prompts are plain questions."""
        batch = self.chat_inputs(images, prompts, pad_side="left")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        self.hf_model.eval()
        out = self.hf_model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        new = out[:, batch["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    @torch.no_grad()
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), text_hidden_size): mean of the LLM's input token embeddings (no grad)."""
        table = self.hf_model.get_input_embeddings()
        rows = []
        for text in texts:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] or [self.tokenizer.pad_token_id or 0]
            rows.append(table(torch.tensor(ids, device=table.weight.device)).float().mean(dim=0))
        return torch.stack(rows)


def _pad_rows(rows: list[tuple[list[int], list[int]]], pad_id: int, side: str) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids_t = torch.full((len(rows), width), pad_id, dtype=torch.long)
    lab_t = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (ids, labels) in enumerate(rows):
        sl = slice(width - len(ids), width) if side == "left" else slice(0, len(ids))
        ids_t[r, sl] = torch.tensor(ids)
        lab_t[r, sl] = torch.tensor(labels)
        mask[r, sl] = 1
    return {"input_ids": ids_t, "attention_mask": mask, "labels": lab_t}
