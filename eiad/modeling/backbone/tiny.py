"""What the tiny presets' builders (eiad/modeling/backbone/minicpmv46.py, llava.py) share:
the input and patch size, the text init scale, the chat template and a tiny BPE tokenizer
trained offline on a fixed corpus. A leaf: the preset registry (eiad/modeling/presets.py)
loads the builders, the builders import this.
"""

from __future__ import annotations

# ChatML turns; the image is a content part of the user turn, rendered as the family's
# image placeholder (the processor expands it to the right number of image tokens).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}IMAGE_TOKEN\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_SIZE_PX = 224
TINY_PATCH_PX = 14
# A random LLM's output logits are bounded by |lm_head row| * |final-norm output|; at the
# usual 0.02 init and width 64 that caps answer probabilities near uniform, so LoRA (which
# leaves lm_head alone) cannot fit even one answer. 0.2 lets logits reach ~10.
TEXT_INIT_STD = 0.2


def _corpus() -> list[str]:
    # Words the DDQA prompts, answers and grounded prompts use, so the tiny tokenizer
    # encodes them in few tokens; the rest falls back to bytes.
    words = (
        "Is there any visible defect in this image? Options: A. No B. Yes C. D. Answer with the "
        "option's letter from the given choices directly. What type is the defect? Where is the "
        "defect? top left top right bottom left bottom right Find the defect and give its bounding "
        "box [0.125, 0.250, 0.875, 0.500] scratch crack hole stain dent contamination missing part "
        "The localization module found a defect class confidence located at region box normalised "
        "coordinates explain what is wrong with the part and why it was rejected no defect was found "
        "good OK NG user assistant system"
    )
    # The defect description (eiad/description/sentences.py) and the grounded prompt's findings.
    description = (
        "The part has a There is a This part shows a A is visible in the of the image located in the "
        "image's centre near the centre at the centre close to the image border near the edge at the "
        "edge separate regions split into spread over regions It is Its size is tiny small medium large "
        "it covers about of the image pixels elongated compact in shape of an elongated shape a compact "
        "shape darker brighter than the surface around it its surroundings the area around it as bright "
        "as roughly so the part is rejected as defective which is why the part was rejected does not "
        "pass inspection No defect is visible the surface looks normal and the part is good passes "
        "uniform accepted missing material pitting inspection module anomaly score unknown marked "
        "Describe the for the operator in one sentence what it is where how big its how it looks Tell "
        "the operator whether has % 0.1 0.4 1.0 2.5 10.0 12 345 6789"
    )
    digits = " ".join(f"0.{i:03d}" for i in range(0, 1000, 7))
    return [words, description, digits, "0 1 2 3 4 5 6 7 8 9 , . [ ] ( ) : ? ! ' \" - _ / \n"] * 4


def train_tokenizer(special_tokens: list[str], vocab_size: int = 1000, **tokenizer_kwargs):
    """A tiny byte-level BPE trained offline on `_corpus()`, wrapped as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **tokenizer_kwargs)
