"""The localization module and the vision engine on a tiny real (random-weight) backbone."""

import numpy as np
import pytest
import torch

from eiad import manifest
from eiad.modeling.engine import EiadVisionEngine, VisionEngineOutput
from eiad.modeling.localization import DefectLocalizer, LocalizerSpec, build_localizer, default_prompts, resolve_taps
from eiad.modeling.losses import LossWeights, localization_loss
from tests.unit.test_localization_support import TinyLlavaBackbone


def _spec(size=(32, 48), grid=(4, 6), **kw):
    return LocalizerSpec(
        vision_hidden_size=16,
        text_hidden_size=8,
        grid=grid,
        image_size=size,
        taps=(1, 3),
        class_names=("hole", "stain", "crack"),
        prompts=tuple(default_prompts(["hole", "stain", "crack"])),
        **kw,
    )


@pytest.mark.parametrize(
    "size,grid,stem,fine",
    [((32, 48), (4, 6), True, True), ((64, 64), (8, 8), True, False), ((28, 28), (2, 2), False, False)],
)
def test_outputs_have_image_resolution_at_several_sizes(size, grid, stem, fine):
    # given a localizer for a non-square, a square and a tiny-grid input (the first two with
    # the mask-pooled class head and class maps, the first also with the H/2 stage)
    spec = _spec(size, grid, stem=stem, fine=fine, mask_pooling=stem, class_maps=stem)
    module = DefectLocalizer(spec, torch.randn(len(spec.prompts), 8))
    feats = [torch.randn(3, grid[0] * grid[1], 16) for _ in spec.taps]
    # when it runs on a batch of 3
    out = module(feats, torch.randn(3, 3, *size))
    # then masks are at image resolution, one image logit and C class logits per image
    assert out.mask_logits.shape == (3, 1, *size)
    assert out.image_logit.shape == (3,)
    assert out.class_logits.shape == (3, 3)
    assert out._fields == ("mask_logits", "image_logit", "class_logits", "class_map")
    # class maps: one class per H/4 cell (the stem's resolution), only when asked for
    assert out.class_map is None if not stem else out.class_map.shape == (3, 3, size[0] // 4, size[1] // 4)


def test_prompts_start_from_the_backbones_text_embeddings():
    # given a backbone whose text embeddings the localizer is built from
    backbone = TinyLlavaBackbone()
    module = build_localizer(backbone, (0, 3), ["hole", "stain"])
    # then the fixed buffer holds exactly those embeddings, one per prompt
    expected = backbone.embed_text(default_prompts(["hole", "stain"]))
    torch.testing.assert_close(module.prompt_text, expected)
    assert module.spec.grid == (8, 8) and module.spec.image_size == (64, 64)
    # and the learned prompt embeddings are their projection (delta starts at zero)
    torch.testing.assert_close(
        module.prompt_embeddings(), torch.nn.functional.normalize(module.text_proj(expected), dim=-1)
    )


def test_reference_channel_depends_on_the_reference_image():
    torch.manual_seed(0)
    spec = _spec(reference=True)
    module = DefectLocalizer(spec, torch.randn(len(spec.prompts), 8)).eval()
    feats = [torch.randn(2, 24, 16) for _ in spec.taps]
    image = torch.randn(2, 3, 32, 48)
    # when the query itself is the reference, every patch has a perfect match
    same = module(feats, image, reference_features=[f[:1] for f in feats])
    other = module(feats, image, reference_features=[torch.randn(1, 24, 16) for _ in spec.taps])
    assert not torch.allclose(same.mask_logits, other.mask_logits)
    # and a stored bank gives the same result as passing it explicitly
    module.set_reference([f[:1] for f in feats])
    assert module.has_reference()
    torch.testing.assert_close(module(feats, image).mask_logits, same.mask_logits)


def test_resolve_taps_maps_negative_layers_and_rejects_out_of_range():
    assert resolve_taps([-4, -1, 0], 4) == (0, 3, 0)
    with pytest.raises(ValueError, match="outside"):
        resolve_taps([4], 4)


@pytest.mark.slow
def test_loss_decreases_on_a_fixed_batch():
    # given a tiny backbone (frozen), a localizer and one fixed batch with a defect square
    torch.manual_seed(0)
    backbone = TinyLlavaBackbone()
    engine = EiadVisionEngine(
        backbone, build_localizer(backbone, (1, 3), ["hole", "dent"], fine=True, mask_pooling=True, class_maps=True)
    )
    images = torch.randint(100, 140, (4, 64, 64, 3), dtype=torch.uint8)
    masks = torch.zeros(4, 1, 64, 64)
    images[1:3, 10:30, 20:40] = 10
    masks[1:3, :, 10:30, 20:40] = 1
    labels = torch.tensor([0.0, 1, 1, 0])
    classes = torch.tensor([-1, 0, 0, -1])
    opt = torch.optim.AdamW(engine.localizer.parameters(), lr=3e-3)
    losses = []
    # when it trains 30 steps
    for _ in range(30):
        out, _ = engine.forward_logits(images)
        # every term, the skeleton and per-cell class terms included (the square's skeleton: itself is fine here)
        loss, parts = localization_loss(
            out.mask_logits,
            out.image_logit,
            out.class_logits,
            masks,
            labels,
            classes,
            LossWeights(skeleton=1.0, class_map=1.0),
            masks,
            out.class_map,
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # then the loss falls well below where it started
    assert losses[-1] < 0.5 * losses[0] and {"skeleton", "class_map"} <= parts.keys()


def test_engine_normalises_bgr_uint8_inside_the_graph():
    # given BGR camera pixels
    backbone = TinyLlavaBackbone()
    engine = EiadVisionEngine(backbone, build_localizer(backbone, (3,), ["hole"])).eval()
    bgr = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    # when preprocessed by the engine
    pixels = engine.preprocess(bgr)
    # then it equals RGB, /255, (x - mean)/std computed by hand
    rgb = bgr.numpy()[..., ::-1].astype(np.float32) / 255.0
    expected = ((rgb - 0.5) / 0.5).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(pixels.numpy(), expected, atol=1e-5)
    with torch.no_grad():
        out = engine(bgr)
    assert isinstance(out, VisionEngineOutput)
    assert VisionEngineOutput._fields[:3] == (manifest.ANOMALY_MAP, manifest.IMAGE_SCORE, manifest.CLASS_PROBS)
    assert out.anomaly_map.shape == (2, 1, 64, 64) and float(out.anomaly_map.min()) >= 0
    torch.testing.assert_close(out.class_probs.sum(-1), torch.ones(2))
    assert out.vision_features.shape == (2, 64, 32)
