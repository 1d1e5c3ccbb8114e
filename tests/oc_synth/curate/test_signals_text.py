"""Text-family signals (qsc_doc_*) and the shared tokenization, against values computed by hand from the reference's
definitions, plus the text rules firing / not firing."""

import math

import pytest

from oc_synth.curate.signals import SIGNALS, Document
from oc_synth.curate.signals.rules import RuleSet, load_filter_config
from oc_synth.curate.signals.scoring import DocumentScorer
from oc_synth.curate.signals.text_normalization import normalized_words, raw_words


def value(name, text, **kw):
    return SIGNALS[name].compute(Document(text, **kw))


def test_normalized_words_follow_the_reference_normalization():
    # ASCII punctuation -> space, lowercase, full-width punctuation folded, control characters dropped, NFKC.
    assert normalized_words("Hello, World!  foo_bar x.y") == ["hello", "world", "foo", "bar", "x", "y"]
    assert normalized_words("Ｈｉ，ｔｈｅｒｅ") == ["hi", "there"]  # full-width letters via NFKC, comma folded
    assert normalized_words("a\x00b\u200bc") == ["ab", "c"]  # NUL dropped, zero-width space -> space
    assert normalized_words("wait… ok") == ["wait", "...", "ok"]  # NFKC runs last: the ellipsis becomes a token
    assert raw_words("Hello, World!") == ["Hello", ",", "World", "!"]


def test_word_and_ngram_signals_match_hand_computed_values():
    text = "The cat sat on the mat. The cat sat."
    # words: the cat sat on the mat the cat sat -> 9 words, 26 characters
    assert value("qsc_doc_num_words", text) == 9
    assert value("qsc_doc_mean_word_length", text) == round(26 / 9, 8)
    assert value("qsc_doc_frac_words_unique", text) == round(5 / 9, 8)
    # most common bigram: "the cat" (first of the two bigrams seen twice): 6 chars x 2 / 26
    assert value("qsc_doc_frac_chars_top_2grams", text) == round(12 / 26, 8)
    assert value("qsc_doc_frac_chars_dupe_5grams", text) == 0.0
    counts = [3, 2, 2, 1, 1]
    entropy = -sum(c / 9 * math.log(c / 9) for c in counts)
    assert value("qsc_doc_entropy_unigram", text) == round(entropy, 8)
    assert value("qsc_doc_num_sentences", text) == 2


def test_duplicate_ngram_characters_count_overlapping_words_once():
    text = "alpha beta gamma delta epsilon alpha beta gamma delta epsilon zeta"
    # the 5-gram alpha..epsilon occurs twice: words 0-9 are duplicated (2 x 26 chars), "zeta" (4) is not
    assert value("qsc_doc_frac_chars_dupe_5grams", text) == round(52 / 56, 8)
    assert value("qsc_code_frac_chars_dupe_10grams", text) == 0.0
    repeated = " ".join(["one two three four five six"] * 3)  # every 5-gram repeats: all characters duplicated
    assert value("qsc_doc_frac_chars_dupe_5grams", repeated) == 1.0


def test_line_and_character_signals():
    text = "abc\nabc\n\n  xyz  \n123\n"
    assert value("qsc_doc_num_lines", text) == 5  # the blank line counts, no phantom line after the last newline
    assert value("qsc_doc_frac_lines_dupe_lines", text) == round(2 / 4, 8)  # blank lines are left out
    assert value("qsc_doc_frac_chars_dupe_lines", text) == round(6 / 12, 8)
    visible = "abcabcxyz123"
    assert value("qsc_doc_frac_chars_alphabet", text) == round(9 / len(visible), 8)
    assert value("qsc_doc_frac_chars_digital", text) == round(3 / len(visible), 8)
    assert value("qsc_doc_frac_chars_whitespace", text) == round((len(text) - len(visible)) / len(text), 8)
    assert value("qsc_doc_frac_chars_replacement_symbols", "ab\ufffd\ufffd") == 0.5
    assert value("qsc_doc_frac_chars_hex_words", "x 0xFF 0x10") == round(8 / 11, 8)
    assert value("qsc_doc_frac_chars_hyperlink_html_tag", "<b>x</b> (https://a.b)") == round((3 + 4 + 13) / 22, 8)
    assert value("qsc_doc_frac_lines_end_with_readmore", "a...\nb\nmore…)\n") == round(2 / 3, 8)
    assert value("qsc_doc_frac_lines_start_with_bullet", "• a\n  ▪ b\nc\n") == round(2 / 3, 8)
    assert value("qsc_doc_frac_words_all_caps", "NASA and ESA") == round(2 / 3, 8)


def test_signals_of_an_empty_document_are_defined_or_none():
    assert value("qsc_doc_num_words", "") == 0
    assert value("qsc_doc_mean_word_length", "") is None
    assert value("qsc_doc_frac_chars_whitespace", "") == 1.0
    assert value("qsc_doc_frac_chars_digital", "") == 1.0
    assert value("qsc_doc_frac_chars_alphabet", "") == 0.0
    assert value("qsc_doc_frac_lines_dupe_lines", "") is None
    assert value("qsc_doc_frac_chars_top_2grams", "") == 0.0
    assert value("qsc_doc_frac_chars_dupe_5grams", "too few words") == 0.0
    assert value("qsc_doc_frac_chars_top_2grams", "x y x y") == 1.0


GOOD_README = """# textkit

textkit is a small library for splitting English text into sentences and words.
It was written for teaching, so the code favours clarity over speed.

## Installation

Install it from the repository with pip, then import the package in your own scripts.
The only dependency is the Python standard library, which keeps installation simple.

## Usage

Call the tokenize function with a string and you get back a list of tokens.
Every token keeps its position in the original text, which helps when you highlight results.
Questions and bug reports are welcome on the issue tracker of the project.
"""


@pytest.fixture(scope="module")
def scorer():
    return DocumentScorer(RuleSet(load_filter_config()))


def test_a_normal_readme_passes_the_text_rules(scorer):
    verdict = scorer.score({"id": "r", "text": GOOD_README, "doc_type": "text", "language": "Markdown"})
    assert verdict.profile == "text"
    assert verdict.keep, verdict.drop_reasons


FIRING = [
    ("Too short to be useful.", "qsc_doc_num_chars"),
    (GOOD_README.replace("e", "\ufffd"), "qsc_doc_frac_chars_replacement_symbols"),
    ("\n".join(["buy now buy now buy now"] * 20), "qsc_doc_frac_lines_dupe_lines"),
    ("\n".join(f"• item number {i} of the list" for i in range(20)), "qsc_doc_frac_lines_start_with_bullet"),
    (" ".join(f"{i:08d}" for i in range(60)), "qsc_doc_frac_chars_digital"),
]


@pytest.mark.parametrize("text, reason", FIRING, ids=[reason for _, reason in FIRING])
def test_text_rules_fire(scorer, text, reason):
    verdict = scorer.score({"id": "x", "text": text, "doc_type": "text"})
    assert reason in verdict.drop_reasons
