"""The demo's explanation figures: words, the station's flags, and shape/appearance against
the line's ground truth measured on the true mask and the frame from the real video."""

import cv2
import numpy as np

from edge.demo.camera import read_frames
from edge.demo.explanations import score_explanations


def _video(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10.0, (64, 64))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_explanations_are_judged_against_flags_and_the_true_mask(tmp_path):
    # given a 3-frame line whose frame 1 has a thin dark scratch along the top
    frames = [np.full((64, 64, 3), 170, np.uint8) for _ in range(3)]
    truth_mask = np.zeros((64, 64), bool)
    truth_mask[10:12, 5:50] = True
    frames[1][truth_mask] = 40
    video = _video(tmp_path / "line.avi", frames)
    assert set(read_frames(video, {1, 2})) == {1, 2}
    truth = {"frame_index": 1, "label": "NG", "defect": "scratch"}
    right = "A scratch in the top left of the image. It is small, elongated and darker than its surroundings."
    wrong = "A scratch in the top left of the image. It is small, compact and brighter than its surroundings."
    items = [
        {"text": right, "consistent": True, "disagreements": [], "truth": truth, "truth_mask": truth_mask},
        {"text": wrong, "consistent": False, "disagreements": ["shape"], "truth": truth, "truth_mask": truth_mask},
        # an overkill part (truly good): counted for words and flags, not for the truth figures
        {
            "text": "A stain in the centre.",
            "consistent": False,
            "disagreements": ["location"],
            "truth": None,
            "truth_mask": None,
        },
    ]
    # when scored
    q = score_explanations(items, ["scratch", "stain"], video)
    # then each figure counts what it says
    assert q["explanations"] == 3 and q["median_words"] == 18
    assert q["consistent"] == round(1 / 3, 4) and q["class_location_agreement"] == round(2 / 3, 4)
    assert q["shape_agreement"] == 0.5 and q["appearance_agreement"] == 0.5 and q["truly_defective"] == 2
    assert q["judged"]["passed"] is False and q["judged"]["goals"]["median_words"]["met"] is True
