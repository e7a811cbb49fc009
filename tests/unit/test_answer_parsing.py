"""The reply parser: MMAD's regex rule (mmad_compat) and the tiered default."""

import pytest

from train.eval.answer_parsing import parse_answer

OPTIONS = {"A": "No", "B": "Yes, there is a crack on the rim"}


@pytest.mark.parametrize(
    ("reply", "first", "last"),
    [
        ("B", "B", "B"),
        ("1. Answer: B.\n2. Answer: D.", "B", "D"),
        ("C or E, probably E", "C", "E"),
        ("A scratch is visible. Answer: C", "A", "C"),
        ("The defect is on the left (D), not B", "D", "B"),
    ],
)
def test_mmad_compat_keeps_first_or_last_standalone_capital(reply, first, last):
    # given a reply with several standalone capitals
    # when parsed with MMAD's exact rule
    # then "first" and "last" pick the ends of the regex matches
    assert parse_answer(reply, None, "first", False, mmad_compat=True) == first
    assert parse_answer(reply, None, "last", False, mmad_compat=True) == last


def test_mmad_compat_ignores_letters_inside_words_and_lower_case():
    # given letters only inside words or in lower case
    reply = "Based on the image, b is my choice; DEFECT present"
    # then MMAD's rule finds nothing (lower-case is not a letter by its rule)
    assert parse_answer(reply, None, "last", False, mmad_compat=True) is None
    assert parse_answer("b", None, "first", False, mmad_compat=True) is None


def test_article_a_counts_as_letter_in_mmad_compat_but_not_by_default():
    # given free text opening with the article "A" and no option letter
    reply = "A scratch is visible on the left side of the part."
    # then MMAD's rule reads the article as option A; the default rule reads no letter
    assert parse_answer(reply, None, "first", False, mmad_compat=True) == "A"
    assert parse_answer(reply, None, "first", False) is None
    # and an explicit answer after the article wins under both first and last
    assert parse_answer("A scratch is visible. Answer: C", None, "first", False) == "C"
    assert parse_answer("A scratch is visible. Answer: C", None, "last", False) == "C"
    # and an option-form letter beats the article even with rule "first"
    assert parse_answer("A dent near the rim, so B.", None, "first", False) == "B"


def test_article_after_a_sentence_end_is_skipped_but_chosen_a_is_kept():
    # given "A" as an article mid-text and "A" as a real choice
    assert parse_answer("Looks fine. A crack? No, I choose A because it is clean", None, "last", False) == "A"
    assert parse_answer("Looks fine. A crack runs along the edge", None, "last", False) is None


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("b", "B"),
        ("(c)", "C"),
        ("d.", "D"),
        ("Answer: e", "E"),
        ("The answer is (b).", "B"),
        ("answer: a scratch on the surface", None),  # lower-case article, not a choice
    ],
)
def test_default_accepts_lower_case_only_where_unambiguous(reply, expected):
    # given lower-case letters alone or after an answer marker
    # when parsed with the default rule
    # then the letter is upper-cased; an article after "answer:" is not a choice
    assert parse_answer(reply, None, "first", False) == expected


def test_answer_marker_with_rule_first_and_last():
    reply = "Question 1: Answer: B. Question 2: Answer: A."
    assert parse_answer(reply, None, "first", False) == "B"
    assert parse_answer(reply, None, "last", False) == "A"


def test_fallback_to_closest_option_text_only_when_asked():
    # given a reply with no letter that paraphrases option B
    reply = "yes there is a crack on the rim"
    # when the fallback is off, then no letter
    assert parse_answer(reply, OPTIONS, "last", False) is None
    # when it is on, then difflib picks B (both behaviours)
    assert parse_answer(reply, OPTIONS, "last", True) == "B"
    assert parse_answer(reply, OPTIONS, "last", True, mmad_compat=True) == "B"


def test_fallback_never_overrides_a_found_letter_and_empty_reply():
    # given a letter in the reply, the option text is not consulted
    assert parse_answer("A. No", OPTIONS, "last", True) == "A"
    # given an empty reply: MMAD's fallback (cutoff 0) still picks an option,
    # the default returns None rather than an arbitrary option
    assert parse_answer("", OPTIONS, "last", True, mmad_compat=True) in OPTIONS
    assert parse_answer("   ", OPTIONS, "last", True) is None
    # given no options, the fallback has nothing to match
    assert parse_answer("a crack", None, "last", True) is None


def test_rejects_unknown_rule_and_tolerates_non_string_reply():
    with pytest.raises(ValueError, match="rule"):
        parse_answer("B", None, "middle", False)  # type: ignore[arg-type]
    assert parse_answer(None, None, "first", False) is None  # type: ignore[arg-type]
