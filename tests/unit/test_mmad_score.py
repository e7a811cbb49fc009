"""MMAD scoring rules, each checked against values computed by hand."""

import json

import pytest

from eiad.errors import DataError
from train.eval.mmad.score import (
    AVERAGE_ROW,
    COLUMNS,
    TASKS,
    _mean,
    format_score_table,
    load_answers,
    score_answers,
    write_score_csv,
)

GOOD = "DS-MVTec/bottle/image/good/000.png"
BAD = "DS-MVTec/bottle/image/broken_large/000.png"
VISA_BAD = "VisA/candle/image/Anomaly/001.JPG"


def rec(image, qtype, correct, given):
    return {
        "image": image,
        "question": {"type": "text", "text": "Question: ..."},
        "question_type": qtype,
        "correct_answer": correct,
        "gpt_answer": given,
    }


def hits(image, qtype, n_right, n_wrong):
    """n_right records answered correctly, n_wrong answered wrongly (correct is A)."""
    return [rec(image, qtype, "A", "A")] * n_right + [rec(image, qtype, "A", "B")] * n_wrong


@pytest.fixture()
def records():
    r = []
    # DS-MVTec, AD: normal 3/4, anomalous 1/2 -> balanced (75 + 50) / 2 = 62.5 (plain 4/6 = 66.7)
    r += hits(GOOD, "Anomaly Detection", 3, 1) + hits(BAD, "Anomaly Detection", 1, 1)
    r += hits(BAD, "Defect Classification", 1, 1)  # 50
    r += hits(BAD, "Defect Localization", 1, 0)  # 100
    r += hits(BAD, "Defect Description", 0, 1)  # 0
    r += hits(BAD, "Defect Analysis", 1, 0)  # 100
    r += hits(GOOD, "Object Classification", 2, 0)  # 100
    r += hits(GOOD, "Object Structure", 0, 1)  # merged with Details: 3/4 = 75
    r += hits(GOOD, "Object Details", 3, 0)  # (separately 0 and 100: mean 50)
    # two DS-MVTec DC answers that are not one capital letter: dropped (or wrong if strict)
    r += [rec(BAD, "Defect Classification", "B", "b"), rec(BAD, "Defect Classification", "B", "The answer is B")]
    # VisA: anomalous images only, AD 3/4; DC 1/1
    r += hits(VISA_BAD, "Anomaly Detection", 3, 1) + hits(VISA_BAD, "Defect Classification", 1, 0)
    return r


def test_anomaly_detection_is_balanced_accuracy(records):
    score = score_answers(records)
    assert score.rows["DS-MVTec"]["Anomaly Detection"] == pytest.approx(62.5)
    mvtec = score.datasets[0]
    assert (mvtec.normal.correct, mvtec.normal.total) == (3, 4)
    assert (mvtec.anomalous.correct, mvtec.anomalous.total) == (1, 2)


def test_object_structure_and_details_merge_into_object_analysis(records):
    score = score_answers(records)
    assert score.rows["DS-MVTec"]["Object Analysis"] == pytest.approx(75.0)
    assert "Object Structure" not in score.rows["DS-MVTec"]
    assert score.datasets[0].tasks["Object Analysis"].total == 4


def test_dataset_rows_in_order_then_average_row(records):
    score = score_answers(records)
    assert list(score.rows) == ["DS-MVTec", "VisA", AVERAGE_ROW]
    mvtec_avg = (62.5 + 50 + 100 + 0 + 100 + 100 + 75) / 7
    visa_avg = (75 + 100) / 2  # only the two tasks VisA has
    assert score.rows["DS-MVTec"]["Average"] == pytest.approx(mvtec_avg)
    assert score.rows["VisA"]["Average"] == pytest.approx(visa_avg)
    average = score.rows[AVERAGE_ROW]
    assert average["Anomaly Detection"] == pytest.approx((62.5 + 75) / 2)
    assert average["Defect Classification"] == pytest.approx((50 + 100) / 2)
    assert average["Defect Localization"] == pytest.approx(100)  # VisA has none: skipped
    assert average["Average"] == pytest.approx((mvtec_avg + visa_avg) / 2)
    assert score.headline == pytest.approx((mvtec_avg + visa_avg) / 2)


def test_overkill_miss_recall_precision_f1(records):
    mvtec = score_answers(records).rows["DS-MVTec"]
    assert mvtec["Overkill"] == pytest.approx(25.0)  # 1 of 4 normal called defective
    assert mvtec["Miss"] == pytest.approx(50.0)  # 1 of 2 anomalous called normal
    assert mvtec["Recall"] == pytest.approx(50.0)
    assert mvtec["Precision"] == pytest.approx(50.0)  # TP 1 / (TP 1 + FP 1)
    assert mvtec["F1"] == pytest.approx(50.0)


def test_dataset_without_normal_images_uses_anomalous_side_and_is_flagged(records):
    score = score_answers(records)
    visa = score.rows["VisA"]
    assert visa["Anomaly Detection"] == pytest.approx(75.0)  # not (0 + 75) / 2
    assert visa["Overkill"] is None and visa["Miss"] == pytest.approx(25.0)
    assert visa["Precision"] == pytest.approx(100.0)
    assert visa["F1"] == pytest.approx(2 * 100 * 75 / 175)
    assert visa["Defect Localization"] is None
    assert score.rows[AVERAGE_ROW]["Overkill"] == pytest.approx(25.0)  # DS-MVTec only
    assert any(n.startswith("VisA: no normal images") for n in score.notes)
    assert "note: VisA: no normal images" in format_score_table(score)


def test_non_letter_answers_are_dropped_and_counted(records):
    score = score_answers(records)
    assert score.rows["DS-MVTec"]["Defect Classification"] == pytest.approx(50.0)  # 1/2, drops left out
    assert (score.unparseable, score.dropped_bad_answer, score.dropped_bad_correct) == (2, 2, 0)
    assert score.scored == len(records) - 2


def test_strict_counts_non_letter_answers_wrong(records):
    score = score_answers(records, strict=True)
    assert score.rows["DS-MVTec"]["Defect Classification"] == pytest.approx(25.0)  # 1/4
    assert (score.unparseable, score.dropped) == (2, 0)
    assert score.scored == len(records)


def test_exact_letters_only_and_bad_correct_answer_dropped():
    # given answers with whitespace/punctuation (MMAD compares exactly) and a bad key
    records = [
        rec(BAD, "Defect Analysis", "C", "C "),
        rec(BAD, "Defect Analysis", "C", "C."),
        rec(BAD, "Defect Analysis", "F", "F"),
        rec(BAD, "Defect Analysis", "D", "D"),
    ]
    score = score_answers(records)
    assert (score.dropped_bad_answer, score.dropped_bad_correct, score.scored) == (2, 1, 1)
    assert score.rows["DS-MVTec"]["Defect Analysis"] == pytest.approx(100.0)


def test_all_answers_unparseable_gives_empty_table():
    records = [rec(GOOD, "Anomaly Detection", "A", "yes"), rec(BAD, "Defect Analysis", "B", None)]
    score = score_answers(records)
    assert score.scored == 0 and score.dropped == 2
    assert all(v is None for row in score.rows.values() for v in row.values())
    assert score.headline is None
    strict = score_answers(records, strict=True)
    assert strict.rows["DS-MVTec"]["Defect Analysis"] == 0.0
    assert strict.rows["DS-MVTec"]["Anomaly Detection"] == 0.0  # normal side only, 0/1


def test_normal_flag_is_a_case_sensitive_path_substring():
    records = hits("Line1/plate/OK/image/1.png", "Anomaly Detection", 1, 1) + hits(
        "Line1/plate/NG/crack/image/2.png", "Anomaly Detection", 2, 0
    )
    by_ok = score_answers(records, normal_flag="OK").rows["Line1"]
    assert by_ok["Anomaly Detection"] == pytest.approx((50 + 100) / 2)
    assert by_ok["Overkill"] == pytest.approx(50.0)
    by_good = score_answers(records).rows["Line1"]  # "good" matches nothing: all anomalous
    assert by_good["Anomaly Detection"] == pytest.approx(75.0) and by_good["Overkill"] is None
    with pytest.raises(DataError, match="normal flag"):
        score_answers(records, normal_flag="")


def test_unknown_question_type_is_rejected_with_the_record_index():
    with pytest.raises(DataError, match=r"record 1: unknown question_type 'Colour'"):
        score_answers([rec(BAD, "Defect Analysis", "A", "A"), rec(BAD, "Colour", "A", "A")])


def test_mean_reproduces_mmad_published_averages_bit_for_bit():
    # MMAD all_result/answers_1_shot_gpt-4o_accuracy.csv, row DS-MVTec (7 task cells, Average,
    # Recall, Precision, F1) and the Average row's Anomaly Detection over the 4 datasets.
    cells = [
        81.32786051325229,
        77.09543568464731,
        69.23721709974853,
        82.60511129431163,
        92.69709543568464,
        99.78448275862068,
        90.8558888076079,
    ]
    assert _mean(cells) == 84.80044165626758
    p, r = 90.25210084033614, 87.60195758564437
    assert 2 * p * r / (p + r) == 88.90728476821192
    ad = [81.32786051325229, 63.955799977481284, 66.41716399017805, 58.16184570850409]
    assert _mean(ad) == 67.46566754735393


def test_csv_layout_matches_mmad_published_files(records, tmp_path):
    score = score_answers(records)
    path = write_score_csv(score, tmp_path / "sub" / "result.csv")
    lines = path.read_text().split("\n")
    assert (
        lines[0] == ",Anomaly Detection,Defect Classification,Defect Localization,Defect Description,"
        "Defect Analysis,Object Classification,Object Analysis,Average,Recall,Precision,F1,Overkill,Miss"
    )
    assert [line.split(",")[0] for line in lines[1:-1]] == ["DS-MVTec", "VisA", "Average"]
    assert lines[-1] == ""
    visa = lines[2].split(",")
    assert len(visa) == 1 + len(COLUMNS)
    assert visa[1 + TASKS.index("Defect Localization")] == ""  # no data: empty, like pandas NaN
    assert float(lines[1].split(",")[1 + COLUMNS.index("Average")]) == score.rows["DS-MVTec"]["Average"]


def test_load_answers_errors_name_file_and_record(tmp_path):
    bad_json = tmp_path / "a.json"
    bad_json.write_text('[{"image": "x"')
    with pytest.raises(DataError, match=r"a\.json: not valid JSON at line 1"):
        load_answers(bad_json)
    not_list = tmp_path / "b.json"
    not_list.write_text('{"image": "x"}')
    with pytest.raises(DataError, match=r"b\.json: expected a JSON list"):
        load_answers(not_list)
    missing = tmp_path / "c.json"
    missing.write_text(json.dumps([rec(BAD, "Defect Analysis", "A", "A"), {"image": BAD, "question_type": "x"}]))
    with pytest.raises(DataError, match=r"c\.json: record 1: missing key\(s\) correct_answer, gpt_answer"):
        load_answers(missing)
    no_image = tmp_path / "d.json"
    no_image.write_text(json.dumps([rec("/abs.png", "Defect Analysis", "A", "A")]))
    with pytest.raises(DataError, match=r"d\.json: record 0: 'image' must be a relative path"):
        load_answers(no_image)
    with pytest.raises(DataError, match=r"nope\.json: cannot read"):
        load_answers(tmp_path / "nope.json")
    good = tmp_path / "e.json"
    good.write_text(json.dumps([rec(BAD, "Defect Analysis", "A", "A")]))
    assert load_answers(good)[0]["image"] == BAD


def test_record_after_a_dropped_one_is_scored():
    # MMAD's script removes from the list it iterates, skipping the next record; we do not
    records = [rec(BAD, "Defect Analysis", "A", "?"), rec(BAD, "Defect Analysis", "A", "A")]
    score = score_answers(records)
    assert score.scored == 1 and score.rows["DS-MVTec"]["Defect Analysis"] == 100.0
