"""Shared tiny models for the export/LLM/explainer tests (no tests here; imported by them).

A tiny real vision engine (uint8 NHWC BGR in, normalisation inside, the four named
outputs) and a tiny Qwen2 language model with an offline-trained BPE tokenizer, fitted
for a few seconds on fixed answers so its greedy answers have clear logit margins
(a random model's near-tied logits would make quantization parity meaningless).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

VISION_DIM = 32
HEIGHT = WIDTH = 64
CLASSES = ["crack", "hole", "scratch"]
PAIRS = [
    ("verdict NG crack top left. Explain:", " a thin crack, top left."),
    ("verdict NG hole centre. Explain:", " a round hole in the centre."),
    ("verdict NG scratch bottom right. Explain:", " a long scratch, bottom right."),
    ("verdict NG crack centre. Explain:", " a crack splits the centre."),
    ("verdict OK none. Explain:", " clean surface, no defect."),
    # the explainer's own grounded prompt (eiad/grounding.py) ends like this
    ("Refer to this defect and this location.\n", " a crack near the top left."),
]


class EngineOut(NamedTuple):
    anomaly_map: torch.Tensor
    image_score: torch.Tensor
    class_probs: torch.Tensor
    vision_features: torch.Tensor


class TinyEngine(nn.Module):
    """Camera pixels -> anomaly map, score, class probs and 16 vision tokens of width 32."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1) * 255)
        self.register_buffer("inv_std", 1 / (torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1) * 255))
        self.stem = nn.Conv2d(3, VISION_DIM, 8, stride=8)  # 8x8 grid of tokens
        self.mask_head = nn.Conv2d(VISION_DIM, 1, 1)
        self.cls_head = nn.Linear(VISION_DIM, len(CLASSES))
        self.score_head = nn.Linear(VISION_DIM, 1)

    def forward(self, image):
        x = image.permute(0, 3, 1, 2).float().flip(1)
        x = (x - self.mean) * self.inv_std
        feats = torch.relu(self.stem(x))
        tokens = feats.flatten(2).transpose(1, 2)  # (N, 64, D)
        pooled = tokens.mean(1)
        low = self.mask_head(feats)
        amap = torch.sigmoid(
            nn.functional.interpolate(low, size=image.shape[1:3], mode="bilinear", align_corners=False)
        )
        return EngineOut(
            amap,
            torch.sigmoid(self.score_head(pooled))[:, 0],
            torch.softmax(self.cls_head(pooled), -1),
            nn.functional.avg_pool1d(tokens.transpose(1, 2), 4).transpose(1, 2),
        )


def real_images(directory: Path, count: int = 6) -> Path:
    """Real photographs (scikit-image ships them) cut into 64x64 BGR PNGs."""
    import cv2
    from skimage import data

    directory.mkdir(parents=True, exist_ok=True)
    sources = [data.astronaut(), data.coffee(), data.rocket(), data.chelsea()]
    for i in range(count):
        rgb = sources[i % len(sources)]
        y, x = 40 * i, 50 * i
        tile = cv2.resize(rgb[y : y + 256, x : x + 256], (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(directory / f"img{i}.png"), tile[:, :, ::-1])
    return directory


def train_tokenizer(path: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<eos>"],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([p + a for p, a in PAIRS] * 4, trainer=trainer)
    tok.save(str(path))
    return path


def tiny_lm(tokenizer_json: Path, hidden: int = 64, steps: int = 100):
    """A Qwen2 LM (2 layers) fitted to answer PAIRS; returns the model (eval mode)."""
    from tokenizers import Tokenizer
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer.from_file(str(tokenizer_json))
    eos = tok.token_to_id("<eos>")
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=eos,
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(config)
    rows = [tok.encode(p + a).ids + [eos] for p, a in PAIRS]
    width = max(map(len, rows))
    ids = torch.tensor([r + [eos] * (width - len(r)) for r in rows])
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in rows])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead on a shared CPU
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
    torch.set_num_threads(threads)
    return model.eval()


def meta(thresholds_image: float = 0.5, thresholds_pixel: float = 0.5):
    from eiad.manifest import Thresholds
    from export.formats import VisionMeta

    return VisionMeta(
        model_id="tiny-test",
        backbone="tiny-conv",
        preset="test",
        class_names=list(CLASSES),
        thresholds=Thresholds(image_score=thresholds_image, pixel=thresholds_pixel, calibration="test"),
        preprocessing="BGR uint8 NHWC -> RGB -> (x/255-0.5)/0.25 inside the graph",
        height=HEIGHT,
        width=WIDTH,
    )


@pytest.fixture(scope="session")
def parity_images(tmp_path_factory):
    from export.vision.parity import load_images

    folder = real_images(tmp_path_factory.mktemp("images"))
    return load_images(sorted(folder.glob("*.png")), HEIGHT, WIDTH)


@pytest.fixture(scope="session")
def vision_artifact(tmp_path_factory, parity_images):
    """(engine, artifact dir) of the tiny engine exported once per session."""
    from export.vision.exporter import export_vision_artifact

    engine = TinyEngine().eval()
    out = tmp_path_factory.mktemp("art") / "artifact"
    export_vision_artifact(engine, meta(), out, parity_images, "skimage photographs")
    return engine, out


@pytest.fixture(scope="session")
def llm_artifact(tmp_path_factory, vision_artifact):
    """A copy of the vision artifact with the fitted tiny LM exported (fp32, int8, int4)."""
    import shutil

    from export.llm.exporter import export_llm_artifact

    base = tmp_path_factory.mktemp("llm")
    tokenizer = train_tokenizer(base / "tokenizer.json")
    model = tiny_lm(tokenizer)
    art = base / "artifact"
    shutil.copytree(vision_artifact[1], art)
    torch.manual_seed(1)
    projector = nn.Sequential(nn.Linear(VISION_DIM, 64))
    result = export_llm_artifact(
        model,
        tokenizer,
        art,
        ["int8", "int4"],
        prompts=[p for p, _ in PAIRS],
        projector=projector,
        vision_dim=VISION_DIM,
    )
    return model, art, result


class BackboneEngine(nn.Module):
    """A real backbone's fixed-size vision pass as a vision engine: camera pixels -> the four outputs.

    Map/score/probs are simple pooled heads (their values do not matter here); vision_features
    are the backbone's own `forward_vision(...).tokens`, which the LLM export's projector reads.
    """

    def __init__(self, backbone) -> None:
        super().__init__()
        self.backbone = backbone
        spec = backbone.spec
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1))

    def forward(self, image):
        x = image.permute(0, 3, 1, 2).float().flip(1) / 255  # BGR -> RGB
        tokens = self.backbone.forward_vision((x - self.mean) / self.std, [-1]).tokens
        pooled = tokens.mean(1)
        score = torch.sigmoid(pooled[:, 0])
        amap = score.view(-1, 1, 1, 1).expand(-1, 1, image.shape[1], image.shape[2]).contiguous()
        return EngineOut(amap, score, torch.softmax(pooled[:, : len(CLASSES)], -1), tokens)


QUESTIONS = [
    "Is there a defect on this part?\nA. Yes\nB. No\nAnswer with the option's letter.",
    "Describe the {surface}.",  # braces must survive the prompt template
]


def backbone_artifact(tmp_path_factory, preset: str):
    """(backbone, artifact with vision.onnx of that backbone at 224 px, DDQA-style prompts with images)."""
    import cv2

    from eiad.modeling.backbone.loading import load_backbone
    from eiad.modeling.presets import build_tiny_preset
    from export.llm.parity import ParityPrompt
    from export.vision.exporter import export_vision_artifact
    from export.vision.parity import load_images

    root = tmp_path_factory.mktemp(preset)
    backbone = load_backbone(build_tiny_preset(preset, root / "preset"))
    size = backbone.spec.height
    folder = real_images(root / "small", 2)
    paths = []
    for path in sorted(folder.glob("*.png")):  # the 64 px tiles, brought to the model's size
        big = root / f"{path.stem}_{size}.png"
        cv2.imwrite(str(big), cv2.resize(cv2.imread(str(path)), (size, size)))
        paths.append(big)
    from dataclasses import replace

    vision_meta = replace(meta(), height=size, width=size, backbone=preset)
    art = root / "artifact"
    export_vision_artifact(BackboneEngine(backbone).eval(), vision_meta, art, load_images(paths, size, size), "skimage")
    prompts = [ParityPrompt(f"img{i}-q{j}", q, p) for i, p in enumerate(paths) for j, q in enumerate(QUESTIONS)]
    return backbone, art, prompts
