"""General code signals (qsc_code_*) and the data / shell / sql / html variants of the code rules."""

import json

import pytest

from oc_synth.curate.signals import SIGNALS, Document
from oc_synth.curate.signals.rules import RuleSet, load_filter_config
from oc_synth.curate.signals.scoring import DocumentScorer

RUBY = '''# Geometry helpers for the drawing demo.
module Geometry
  class Point
    attr_reader :x, :y

    def initialize(x, y)
      @x = x
      @y = y
    end

    def distance_to(other)
      dx = other.x - x
      dy = other.y - y
      Math.sqrt(dx * dx + dy * dy)
    end

    def translate(offset_x, offset_y)
      Point.new(x + offset_x, y + offset_y)
    end

    def to_s
      "(#{x}, #{y})"
    end
  end

  def self.centroid(points)
    return nil if points.empty?
    sum_x = points.sum(&:x)
    sum_y = points.sum(&:y)
    Point.new(sum_x / points.size.to_f, sum_y / points.size.to_f)
  end
end
'''


@pytest.fixture(scope="module")
def scorer():
    return DocumentScorer(RuleSet(load_filter_config()))


def verdict(scorer, text, language="Ruby", doc_type="code", path="lib/file.rb"):
    return scorer.score({"id": "doc", "text": text, "language": language, "doc_type": doc_type, "path": path})


def value(name, text, language="Ruby", **kw):
    return SIGNALS[name].compute(Document(text, language=language, **kw))


def test_code_signals_match_hand_computed_values():
    code = 'x = 1  # set "x"\n// not a comment in Ruby\ny = "hello world"\n\n"a" == \'b\'\n'
    # pygments' Ruby lexer: the comment is '# set "x"' (9 chars); code lines are the 4 non-blank lines without it
    assert value("qsc_code_frac_chars_comments", code) == round(9 / len(code), 8)
    assert value("qsc_code_num_lines", code) == 5
    assert value("qsc_code_num_chars_line_max", code) == len("// not a comment in Ruby\n")
    # strings (same-line quotes) in the code: "hello world", "a", 'b' -> 11 + 1 + 1 characters
    doc = Document(code, language="Ruby")
    assert value("qsc_code_frac_chars_string_length", code) == round(13 / len(doc.code_text), 8)
    dupes = "foo()\nfoo()\n}\n}\n},\n},\nbar()\n"
    # duplicated lines count unless one character long or '},': 2 of 7
    assert value("qsc_code_frac_lines_dupe_lines", dupes) == round(2 / 7, 8)
    assert value("qsc_code_size_file_byte", "é") == 2.0  # UTF-8 bytes when the record has no size_bytes
    assert SIGNALS["qsc_code_size_file_byte"].compute(Document("x", size_bytes=123)) == 123.0


def test_encoded_data_flags_long_runs_and_mostly_encoded_files():
    assert value("qsc_code_cate_encoded_data", RUBY) == 0.0
    blob = "A" * 1100
    assert value("qsc_code_cate_encoded_data", f'data = "{blob}"\n') == 1.0
    escapes = "\\u0041" * 20
    assert value("qsc_code_cate_encoded_data", f's = "{escapes}"') == 1.0  # 120 of 126 characters encoded


def test_a_normal_ruby_file_passes_every_code_rule(scorer):
    v = verdict(scorer, RUBY)
    assert v.profile == "code"
    assert v.keep, v.drop_reasons


FIRING = [
    ('<?xml version="1.0"?>\n' + RUBY, "qsc_code_cate_xml_start"),
    ("# This file is auto-generated, do not edit.\n" + RUBY, "qsc_code_cate_autogen"),
    (RUBY.replace("  def self.centroid", "  # TODO: handle empty input\n  def self.centroid"),
     "qsc_code_frac_lines_prompt_comments"),
    (RUBY + "# " + "x" * 1200 + "\n", "qsc_code_num_chars_line_max"),
    ("\n".join(RUBY.splitlines()[:8]) + "\n", "qsc_code_num_lines"),
    ("\n".join(f"# comment line {i} explains the geometry of the points" for i in range(40)) + "\nx = 1\n",
     "qsc_code_frac_chars_comments"),
    (RUBY + "".join(f"assert_equal {i}, f({i})\n" for i in range(40)), "qsc_code_frac_lines_assert"),
    (RUBY + f'BLOB = "{"Q" * 1100}"\n', "qsc_code_cate_encoded_data"),
    (RUBY + "".join(f'MSG_{i} = "{"Supercalifragilisticexpialidocious" * 2}"\n' for i in range(30)),
     "qsc_code_frac_chars_long_word_length"),
    (RUBY + "TABLE = [" + ", ".join(f"0x{i:08X}" for i in range(200)) + "]\n", "qsc_code_frac_chars_hex_words"),
]


@pytest.mark.parametrize("text, reason", FIRING, ids=[reason for _, reason in FIRING])
def test_general_code_rules_fire(scorer, text, reason):
    assert reason in verdict(scorer, text).drop_reasons


def test_data_variant_bounds_size_and_word_variety_and_ignores_strings(scorer):
    record = {"name": "demo", "version": "1.0.0", "description": "A small demo package for the tests",
              "keywords": ["geometry", "points", "drawing"], "license": "MIT", "main": "index.js",
              "scripts": {"test": "node test.js", "build": "node build.js"}, "author": "Jane Doe"}
    small = json.dumps(record, indent=2)
    v = verdict(scorer, small, language="JSON", doc_type="data", path="package.json")
    assert v.profile == "data"
    assert v.keep, v.drop_reasons
    assert "qsc_code_frac_chars_string_length" not in v.values  # rule off for data: not even computed
    big = json.dumps([{"id": i, "value": "same text here"} for i in range(300)], indent=2)
    v = verdict(scorer, big, language="JSON", doc_type="data", path="rows.json")
    assert {"qsc_code_num_chars", "qsc_code_frac_words_unique"} <= set(v.drop_reasons)


def test_shell_variant_allows_string_heavy_scripts(scorer):
    script = "#!/bin/sh\n" + "".join(f'echo "Step {i}: copying the configuration files into place now"\n'
                                     for i in range(12))
    assert "qsc_code_frac_chars_string_length" in verdict(scorer, script, language="Ruby").drop_reasons
    v = verdict(scorer, script, language="Shell", path="install.sh")
    assert v.profile == "shell"
    assert "qsc_code_frac_chars_string_length" not in v.drop_reasons


def test_sql_variant_tolerates_more_digits(scorer):
    sql = "".join(f"INSERT INTO points (id, x, y) VALUES ({i}, {i * 37 % 1000}, {i * 91 % 1000});\n"
                  for i in range(1000, 1030))
    digits = value("qsc_code_frac_chars_digital", sql, language="SQL")
    assert 0.2 < digits < 0.3
    assert "qsc_code_frac_chars_digital" in verdict(scorer, sql, language="Ruby").drop_reasons
    v = verdict(scorer, sql, language="SQL", path="seed.sql")
    assert v.profile == "sql"
    assert "qsc_code_frac_chars_digital" not in v.drop_reasons


def test_html_variant_ignores_comments_and_uses_lower_dupe_ngram_thresholds(scorer):
    rules = RuleSet(load_filter_config()).profiles["html"].rules
    thresholds = {r.signal: r.spec for r in rules}
    assert "qsc_code_frac_chars_comments" not in thresholds
    assert thresholds["qsc_code_frac_chars_dupe_5grams"].gt == 0.6
    assert thresholds["qsc_code_num_chars"].lt == 50  # inherited from the code profile
