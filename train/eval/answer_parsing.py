"""Turn a model's free-text reply to a multiple-choice question into an option letter.

Two behaviours:

- `mmad_compat=True` is exactly MMAD's rule: every capital A-E that stands alone as a
  word (`\\b([A-E])\\b`) is a candidate; `rule="last"` keeps the last one (MMAD's query
  scripts), `rule="first"` the first one (upstream EIAD). Nothing else is looked at, so
  the article in "A scratch is visible ..." counts as the letter A, and lower-case
  letters never count.
- `mmad_compat=False` (the default) tries, in this order, and stops at the first tier
  that finds something (the rule picks inside that tier):
    1. an explicit answer marker: "Answer: B", "answer is (C)", "Answer - d." (a
       lower-case letter only when followed by ".", ")" or the end);
    2. the whole reply is one letter, optionally bracketed or followed by ".", ")" or
       ":" ("B", "(b)", "C.", "d)"); lower-case accepted here only;
    3. a capital letter written as an option: "(B)", "B.", "B)", "B:";
    4. MMAD's standalone capital, skipping the article "A" at the start of a sentence
       when a lower-case word follows ("A scratch ...", "... seen. A dent ...").
  So "A scratch is visible. Answer: C" gives C under both rules, where MMAD's rule
  gives A (first) or C (last).

In both behaviours, when no letter is found and `fallback_to_option_text` is set, the
reply is matched against the option texts with `difflib.get_close_matches(...,
cutoff=0.0)` (MMAD's fallback); the non-compat behaviour compares lower-cased texts and
returns None for an empty reply instead of picking an arbitrary option.

Pure functions, thread-safe.
"""

from __future__ import annotations

import difflib
import logging
import re
from typing import Literal

log = logging.getLogger(__name__)

LETTERS = ("A", "B", "C", "D", "E")
Rule = Literal["first", "last"]

# MMAD's candidate pattern, verbatim.
_MMAD_LETTER = re.compile(r"\b([A-E])\b")
# Only the keyword is case-insensitive: "answer: a scratch" must not read as "A".
_MARKER = re.compile(
    r"\b(?i:answer)\b\s*(?:(?i:is)|:|-|=)?\s*[:\-]?\s*[(\[]?\s*"
    r"(?:(?P<cap>[A-E])\b|(?P<low>[a-e])(?=\s*[.)\]]|\s*$))"
)
_WHOLE = re.compile(r"^\s*[(\[]?\s*([A-Ea-e])\s*[)\].:]?\s*$")
_OPTION_FORM = re.compile(r"\(([A-E])\)|\b([A-E])(?=[.):])")
# "A" opening a sentence and followed by a lower-case word reads as the article.
_ARTICLE = re.compile(r"(?:^|[.!?]\s+|\n\s*)(A)(?=\s+[a-z])")


def parse_answer(
    reply: str,
    options: dict[str, str] | None = None,
    rule: Rule = "first",
    fallback_to_option_text: bool = False,
    *,
    mmad_compat: bool = False,
) -> str | None:
    """Return the option letter ("A".."E") a reply gives, or None when it gives none.

    `options` maps letters to option texts; it is used only by the option-text
    fallback. `rule` picks the first or last candidate; see the module docstring for
    the tiers and for what `mmad_compat` changes.
    """
    if rule not in ("first", "last"):
        raise ValueError(f"rule must be 'first' or 'last', not {rule!r}")
    text = reply if isinstance(reply, str) else ""
    found = _mmad_letters(text) if mmad_compat else _tiered_letters(text)
    if found:
        return found[0] if rule == "first" else found[-1]
    if fallback_to_option_text and options:
        return _closest_option(text, options, mmad_compat=mmad_compat)
    return None


def _mmad_letters(text: str) -> list[str]:
    return _MMAD_LETTER.findall(text)


def _tiered_letters(text: str) -> list[str]:
    marked = [(m.group("cap") or m.group("low")).upper() for m in _MARKER.finditer(text)]
    if marked:
        return marked
    whole = _WHOLE.match(text)
    if whole:
        return [whole.group(1).upper()]
    option_form = [m.group(1) or m.group(2) for m in _OPTION_FORM.finditer(text)]
    if option_form:
        return option_form
    articles = {m.start(1) for m in _ARTICLE.finditer(text)}
    return [m.group(1) for m in _MMAD_LETTER.finditer(text) if m.start(1) not in articles]


def _closest_option(text: str, options: dict[str, str], *, mmad_compat: bool) -> str | None:
    letters = [k for k in options if k in LETTERS]
    if not letters:
        return None
    if mmad_compat:
        values = [options[k] for k in letters]
        query = text
    else:
        if not text.strip():
            return None
        values = [str(options[k]).lower() for k in letters]
        query = text.lower()
    matches = difflib.get_close_matches(query, values, n=1, cutoff=0.0)
    if not matches:
        return None
    letter = letters[values.index(matches[0])]
    log.debug("no letter in reply %r; closest option text gives %s", text[:80], letter)
    return letter
