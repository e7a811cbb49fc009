"""Run a localization model over a split; metrics, a result grid PNG and a loss curve PNG."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Predictions:
    """Outputs over one split; maps are probabilities (N,H,W) float32, masks bool (N,H,W).
    `paths` are the images in order (which split a figure came from can be checked)."""

    labels: np.ndarray
    image_scores: np.ndarray
    masks: np.ndarray
    maps: np.ndarray
    class_index: np.ndarray
    class_probs: np.ndarray
    images: np.ndarray | None = None  # uint8 BGR (N,H,W,3), kept only when asked
    paths: tuple[str, ...] = ()


@torch.no_grad()
def predict(
    engine, dataset, batch_size: int = 8, device: str | torch.device = "cpu", keep_images: bool = False
) -> Predictions:
    """Run the EiadVisionEngine (eval mode) over every item of a LocalizationDataset."""
    was_training = engine.training
    engine.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("labels", "scores", "masks", "maps", "cls", "probs", "images")
    }
    for batch in tqdm(loader, desc="predict", leave=False, unit="batch"):
        out = engine(batch["image"].to(device))
        parts["labels"].append(batch["label"].numpy().astype(np.int64))
        parts["scores"].append(out.image_score.float().cpu().numpy())
        parts["masks"].append(batch["mask"][:, 0].numpy() > 0.5)
        parts["maps"].append(out.anomaly_map[:, 0].float().cpu().numpy())
        parts["cls"].append(batch["class_index"].numpy())
        parts["probs"].append(out.class_probs.float().cpu().numpy())
        if keep_images:
            parts["images"].append(batch["image"].numpy())
    engine.train(was_training)
    return Predictions(
        labels=np.concatenate(parts["labels"]),
        image_scores=np.concatenate(parts["scores"]),
        masks=np.concatenate(parts["masks"]),
        maps=np.concatenate(parts["maps"]).astype(np.float32),
        class_index=np.concatenate(parts["cls"]),
        class_probs=np.concatenate(parts["probs"]),
        images=np.concatenate(parts["images"]) if keep_images else None,
        paths=tuple(e.image for e in getattr(dataset, "entries", [])),
    )


def save_grid(pred: Predictions, path: Path, max_rows: int = 8, pixel_threshold: float | None = None) -> Path:
    """PNG grid, one row per image: image | ground truth | predicted map (| thresholded mask)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if pred.images is None:
        raise ValueError("predictions were made without keep_images=True")
    # Show the defective images first: they are the interesting rows.
    order = np.argsort(-pred.labels, kind="stable")[:max_rows]
    cols = 4 if pixel_threshold is not None else 3
    fig, axes = plt.subplots(len(order), cols, figsize=(2.2 * cols, 2.2 * len(order)), squeeze=False)
    for row, i in enumerate(order):
        panels = [pred.images[i][..., ::-1], pred.masks[i], pred.maps[i]]
        titles = ["image", "ground truth", f"map (score {pred.image_scores[i]:.2f})"]
        if pixel_threshold is not None:
            panels.append(pred.maps[i] >= pixel_threshold)
            titles.append(f"mask >= {pixel_threshold:.2f}")
        for col, (panel, title) in enumerate(zip(panels, titles)):
            ax = axes[row][col]
            ax.imshow(panel, cmap=None if col == 0 else "magma", vmin=0, vmax=1 if col else None)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def save_loss_curve(history: list[dict], path: Path) -> Path:
    """Loss parts per optimizer step, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [h["step"] for h in history]
    for key in ("loss", "focal", "dice", "skeleton", "image", "cls", "class_map"):
        if history and key in history[0]:
            ax.plot(steps, [max(h[key], 1e-6) for h in history], label=key, linewidth=1.5 if key == "loss" else 0.8)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
