"""Run a chat model over MMAD questions and write MMAD's answers file.

Input `mmad.json` (MMAD's format): a dict keyed by relative image path; each value holds
`conversation` (a list of {"Question", "Answer", "Options": {"A": ...}, "type"}) and, for
1-shot, `similar_templates` / `random_templates` (relative paths of normal images).

Prompt: "Question: <question>" + one "A. <option>" line per option + an instruction to
answer with the letter. 0-shot: the query image then the prompt. 1-shot (MMAD's
protocol): a short text, the first normal template image, "Following is the query
image:", the query image, then the prompt: two images in one user turn.

Output: a JSON list of {"image", "question", "question_type", "correct_answer",
"gpt_answer"} (MMAD's answers file). `gpt_answer` is the parsed letter, or the raw reply
when no letter could be found (so no reply is lost; the scorer counts it unparseable and
`eiad eval mmad-score --reparse` can re-read it).

Not thread-safe (generation mutates the model's caches).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from eiad.errors import DataError, ModelError
from train.eval.answer_parsing import LETTERS, Rule, parse_answer

log = logging.getLogger(__name__)

INSTRUCTION = "Answer with the option's letter from the given choices directly."
ONE_SHOT_INTRO = (
    "Following is 1 image of a normal sample, which can be used as a template to compare the image being queried.\n"
)
ONE_SHOT_QUERY = "Following is the query image:\n"

# (images in order, prompt text) -> raw reply
Answerer = Callable[[Sequence, str], str]


@dataclass(frozen=True)
class MmadQuestion:
    """One MMAD question. `template` is the normal image for 1-shot (relative path), else None."""

    image: str
    question: str
    options: dict[str, str]
    answer: str
    qtype: str
    template: str | None = None

    def prompt(self) -> str:
        lines = [f"Question: {self.question.strip()}"]
        lines += [f"{letter}. {text}" for letter, text in self.options.items()]
        return "\n".join(lines + [INSTRUCTION])

    def question_record(self) -> dict:
        """MMAD's `question` field: the text it sent, as {"type": "text", "text": ...}."""
        text = f"Question: {self.question.strip()} \n" + "".join(f"{k}. {v}\n" for k, v in self.options.items())
        return {"type": "text", "text": text}


def load_mmad(
    path: Path, *, shots: int = 0, template: str = "similar", max_questions: int | None = None
) -> list[MmadQuestion]:
    """Questions of an MMAD json, in file order; DataError naming the image key on bad entries."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the MMAD json ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object keyed by relative image path (MMAD's mmad.json)")
    out: list[MmadQuestion] = []
    for image, entry in data.items():
        where = f"{path}: {image!r}"
        conversation = entry.get("conversation") if isinstance(entry, dict) else None
        if not isinstance(conversation, list):
            raise DataError(f"{where}: needs a 'conversation' list of questions")
        ref = _template(entry, where, template) if shots == 1 else None
        for index, turn in enumerate(conversation):
            out.append(_question(turn, f"{where} conversation[{index}]", image, ref))
            if max_questions is not None and len(out) >= max_questions:
                return out
    return out


def _template(entry: dict, where: str, kind: str) -> str:
    key = f"{kind}_templates"
    templates = entry.get(key)
    if not isinstance(templates, list) or not templates or not isinstance(templates[0], str):
        raise DataError(f"{where}: 1-shot needs a non-empty '{key}' list of normal image paths")
    return templates[0]


def _question(turn: object, where: str, image: str, template: str | None) -> MmadQuestion:
    if not isinstance(turn, dict):
        raise DataError(f"{where}: expected an object with Question, Answer, Options, type")
    missing = [k for k in ("Question", "Answer", "Options", "type") if k not in turn]
    if missing:
        raise DataError(f"{where}: missing {', '.join(missing)}")
    options = turn["Options"]
    if not isinstance(options, dict) or not options or any(k not in LETTERS for k in options):
        raise DataError(f"{where}: 'Options' must map letters A-E to texts, found {options!r}")
    return MmadQuestion(
        image,
        str(turn["Question"]),
        {k: str(v) for k, v in options.items()},
        str(turn["Answer"]),
        str(turn["type"]),
        template,
    )


def answer_record(q: MmadQuestion, reply: str, rule: Rule, fallback_to_option_text: bool) -> dict:
    """One answers-file record; `gpt_answer` = the parsed letter, or the raw reply if none."""
    letter = parse_answer(reply, q.options, rule, fallback_to_option_text)
    return {
        "image": q.image,
        "question": q.question_record(),
        "question_type": q.qtype,
        "correct_answer": q.answer,
        "gpt_answer": letter if letter is not None else reply,
    }


def run_mmad(
    answer: Answerer,
    questions: Sequence[MmadQuestion],
    image_root: Path,
    *,
    rule: Rule = "first",
    fallback_to_option_text: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Ask every question (images read from image_root) and return MMAD answer records."""
    from PIL import Image
    from tqdm.auto import tqdm

    records = []
    cache: dict[str, object] = {}

    def image(rel: str):
        if rel not in cache:
            path = Path(image_root) / rel
            try:
                with Image.open(path) as img:
                    loaded = img.convert("RGB")
            except OSError as exc:
                raise DataError(
                    f"{path}: cannot read image for MMAD entry {rel!r} ({exc}); check --image-root"
                ) from exc
            if len(cache) >= 4:  # questions come grouped by image: a few recent images suffice
                cache.pop(next(iter(cache)))
            cache[rel] = loaded
        return cache[rel]

    for q in tqdm(questions, desc="MMAD", unit="q", disable=not progress):
        if q.template is None:
            reply = answer([image(q.image)], q.prompt())
        else:
            reply = answer([image(q.template), image(q.image)], q.prompt())
        records.append(answer_record(q, reply, rule, fallback_to_option_text))
    return records


def one_shot_parts(text: str) -> list[dict]:
    """MMAD's 1-shot user turn: intro, the normal template image, the query image, the question."""
    return [
        {"type": "text", "text": ONE_SHOT_INTRO},
        {"type": "image"},
        {"type": "text", "text": ONE_SHOT_QUERY},
        {"type": "image"},
        {"type": "text", "text": text},
    ]


def backbone_answerer(backbone, max_new_tokens: int = 32) -> Answerer:
    """Greedy replies from an `EiadBackbone`: one image via `generate`, two via `generate_multi`."""

    def answer(images: Sequence, text: str) -> str:
        if len(images) == 1:
            return backbone.generate([images[0]], [text], max_new_tokens=max_new_tokens)[0]
        return generate_multi(backbone, list(images), one_shot_parts(text), max_new_tokens)

    return answer


def multi_image_inputs(backbone, images: list, parts: list[dict]) -> dict:
    """Model inputs (batch of 1) for one user turn holding several images (`{"type": "image"}` parts, in order)."""
    import torch

    if sum(p["type"] == "image" for p in parts) != len(images):
        raise ModelError("multi_image_inputs: the number of image parts differs from the number of images")
    text = _chat_text(backbone, parts)
    images = [backbone.prepare_image(i) for i in images]
    if backbone.family == "llava_siglip":
        enc = backbone.processor(images=images, text=[text], return_tensors="pt", return_token_type_ids=False)
    elif backbone.family == "minicpmv4_6":
        enc = backbone.processor(images, text)
    else:
        raise ModelError(
            f"backbone family {backbone.family!r} cannot take two images in one prompt here; "
            "1-shot MMAD supports minicpmv4_6 and llava_siglip: use --shots 0"
        )
    batch = {k: v for k, v in enc.items() if k == "input_ids" or k in backbone.pixel_cat_dims}
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    return batch


def generate_multi(backbone, images: list, parts: list[dict], max_new_tokens: int = 32) -> str:
    """Greedy reply to one user turn holding several images (see `multi_image_inputs`)."""
    import torch

    batch = {k: v.to(backbone.device) for k, v in multi_image_inputs(backbone, images, parts).items()}
    tok = backbone.tokenizer
    backbone.hf_model.eval()
    with torch.no_grad():
        out = backbone.hf_model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    return tok.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def _chat_text(backbone, parts: list[dict]) -> str:
    """The chat-formatted user turn (generation prompt added), with one placeholder per image."""
    messages = [{"role": "user", "content": parts}]
    for owner in (backbone.processor, backbone.tokenizer):
        if getattr(owner, "chat_template", None):
            text = owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            break
    else:
        text = "".join(f"{backbone.image_placeholder}\n" if p["type"] == "image" else p["text"] for p in parts) + "\n"
    wanted = sum(p["type"] == "image" for p in parts)
    if text.count(backbone.image_placeholder) != wanted:
        raise ModelError(
            f"{backbone.family}: the chat template rendered {text.count(backbone.image_placeholder)} "
            f"image placeholders for {wanted} images; it cannot take several images per turn"
        )
    return text


def write_answers(records: list[dict], path: Path) -> Path:
    """Write the answers file atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
