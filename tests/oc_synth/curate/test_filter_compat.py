"""``curate filter --compat reference``, the Chinese (zh) text rules and ``--reference-bugs``."""

import pytest
from typer.testing import CliRunner

from oc_common.records import read_file_records, write_records
from oc_synth.curate.filter import run_filter
from oc_synth.curate.signals import SIGNALS, QualitySignal
from oc_synth.curate.signals.document import Document
from oc_synth.curate.signals.natural_language import detect_natural_language, natural_language_of
from oc_synth.curate.signals.rules import RuleSet, load_filter_config
from oc_synth.curate.signals.scoring import DocumentScorer, reference_groups, reference_signal_order

PYTHON = '''"""Inventory helpers for a small shop."""

import json


def load_stock(path):
    with open(path) as handle:
        stock = json.load(handle)
    return {name: int(count) for name, count in stock.items()}


def restock(stock, name, amount):
    if amount <= 0:
        raise ValueError("amount must be positive")
    current = stock.get(name, 0)
    stock[name] = current + amount
    return stock[name]


def low_items(stock, threshold=5):
    found = []
    for name, count in sorted(stock.items()):
        if count < threshold:
            found.append(name)
    return found
'''
CHINESE = "\n".join(["数据清洗是训练代码大模型的重要步骤，我们需要去除重复和低质量的文件。",
                     "过滤规则分为三类：自然语言规则、通用代码规则和特定语言规则。",
                     "每一条规则都有一个阈值，超过阈值的文件会被删除。"] * 4) + "\n"
BRACKETS = "\n".join(f"【{i}】【新闻】【标题】今天天气很好我们去公园散步吧" for i in range(12)) + "\n"
MODERN_JS = """// Cart totals with optional chaining, nullish coalescing and class fields (ES2020+).
export class Cart {
  items = [];
  currency = "EUR";

  add(product, quantity = 1) {
    const price = product?.price ?? 0;
    this.items.push({ name: product?.name ?? "unknown", price, quantity });
    return this.items.length;
  }

  total() {
    let sum = 0;
    for (const item of this.items) {
      sum += item.price * item.quantity;
    }
    return Math.round(sum * 100) / 100;
  }

  cheapest() {
    const sorted = [...this.items].sort((a, b) => a.price - b.price);
    return sorted[0]?.name ?? null;
  }
}

export function describe(cart) {
  const count = cart.items.length;
  return `${count} items, ${cart.total()} ${cart.currency}`;
}
"""
GO_NO_VARS = "package geo\n\n" + "".join(f"func F{i}(a int, b int) int {{\n\treturn a*{i} + b\n}}\n\n"
                                         for i in range(6))


def scorer(*overrides):
    return DocumentScorer(RuleSet(load_filter_config(overrides=overrides)))


def rec(rid, text, language="Python", doc_type="code", path="m.py", **extra):
    return {"id": rid, "text": text, "language": language, "doc_type": doc_type, "path": path, **extra}


# --- natural language and the zh rules -------------------------------------------------------------------------------
def test_natural_language_detection():
    assert detect_natural_language(CHINESE) == "zh"
    assert detect_natural_language(PYTHON + "# 中文注释\n") == "en"  # a few Han characters in code
    assert detect_natural_language("これは日本語の文章です。漢字も使います。") == "en"  # kana: not Chinese
    assert natural_language_of(PYTHON, "zh-TW") == "zh" and natural_language_of(CHINESE, "fr") == "en"


def test_chinese_text_is_split_by_jieba_and_gets_the_zh_rules():
    doc = Document(CHINESE, doc_type="text", natural_language="zh")
    assert "数据" in doc.words and "，" not in doc.words  # jieba words, punctuation normalized away
    assert SIGNALS["qsc_doc_frac_chars_alphabet"].compute(doc) is None  # English-only in the reference
    assert SIGNALS["qsc_code_frac_chars_alphabet"].compute(doc) > 0.5
    verdict = scorer().score(rec("zh", CHINESE, language="Text", doc_type="text", path="说明.txt"))
    assert verdict.profile == "text_zh"
    assert "qsc_doc_mean_word_length" not in verdict.drop_reasons  # ~2 characters a word: fine for zh, not for en
    english = scorer("text_profiles={}").score(rec("en", CHINESE, language="Text", doc_type="text", path="a.txt"))
    assert english.profile == "text"
    bracketed = scorer().score(rec("b", BRACKETS, language="Text", doc_type="text", path="n.txt"))
    assert "qsc_doc_frac_words_full_bracket" in bracketed.drop_reasons  # the zh-only rule


def test_traditional_characters_are_folded_before_splitting():
    doc = Document("資料清洗與過濾規則說明文件" * 3, doc_type="text", natural_language="zh")
    assert "资料" in doc.words and len(doc) == 39  # the length stays the original text's


# --- compat reference -------------------------------------------------------------------------------------------------
def _broken(monkeypatch, name):
    real = SIGNALS[name].compute

    def explode(doc):
        if "BOOM" in doc.text:
            raise RuntimeError("broken signal")
        return real(doc)

    monkeypatch.setitem(SIGNALS, name, QualitySignal(name, explode))


def test_compat_reference_keeps_a_file_whose_signal_errors_and_ends_its_group(monkeypatch):
    _broken(monkeypatch, "qsc_code_num_lines")
    text = PYTHON + "# BOOM\n"
    ours = scorer().score(rec("a", text))
    assert ours.drop_reasons == ["error:qsc_code_num_lines"] and ours.errors == ["qsc_code_num_lines"]
    ref = scorer("compat=reference").score(rec("a", text))
    assert ref.keep and ref.errors == ["qsc_code_num_lines"]
    code_group, python_group = reference_groups(RuleSet(load_filter_config()).profiles["python"])
    after = code_group[code_group.index("qsc_code_num_lines") + 1:]
    assert after and not set(after) & set(ref.values)  # the rest of the qsc_code_ group was not computed
    assert set(python_group) <= set(ref.values)  # the next group still was


def test_compat_reference_drops_on_the_same_rules_when_nothing_errors():
    tiny = rec("t", "x = 1\n")
    assert scorer("compat=reference").score(tiny).drop_reasons == scorer().score(tiny).drop_reasons


def test_reference_signal_order_is_the_references():
    order = reference_signal_order()
    assert len(order) == 118 and order[0].startswith("qsc_doc_") and "qsc_codepython_cate_ast" in order
    assert set(SIGNALS) <= set(order)


def test_compat_reference_draws_like_the_reference():
    sampled = "qsc_codepython_score_lines_no_logic"
    s = scorer("compat=reference", f"rules.python.{sampled}.gt=-1")  # fires on every file; nothing else does
    verdicts = [s.score(rec(f"id{i}", PYTHON)) for i in range(300)]
    dropped = sum(v.drop_reasons == [sampled] for v in verdicts)
    assert all(v.drop_reasons in ([sampled], []) for v in verdicts)
    assert sum(sampled in v.spared_by_sampling for v in verdicts) == 300 - dropped
    assert 0.72 < dropped / 300 < 0.88  # random.random() > 0.2
    assert [s.score(rec(f"id{i}", PYTHON)).keep for i in range(20)] == [v.keep for v in verdicts[:20]]  # seeded


# --- bugs of the reference: fixed by default, reproduced on request ---------------------------------------------------
def test_modern_javascript_parses_unless_reference_bugs_are_asked_for():
    pytest.importorskip("esprima")
    js = rec("js", MODERN_JS, language="JavaScript", path="m.js")
    for compat in ("ours", "reference"):
        assert "qsc_codejavascript_cate_ast" not in scorer(f"compat={compat}").score(js).drop_reasons
        bugs = scorer(f"compat={compat}", "reference_bugs=true").score(js)
        assert "qsc_codejavascript_cate_ast" in bugs.drop_reasons  # esprima 4 stops at ES2017


def test_go_and_csharp_no_variable_rules_fire_unless_reference_bugs_are_asked_for():
    go = rec("go", GO_NO_VARS, language="Go", path="geo.go")
    assert "qsc_codego_cate_var_zero" in scorer().score(go).drop_reasons
    assert "qsc_codego_cate_var_zero" in scorer("compat=reference").score(go).drop_reasons
    assert "qsc_codego_cate_var_zero" not in scorer("reference_bugs=true").score(go).drop_reasons
    cs = rec("cs", "namespace A {\n" + "".join(f"  class C{i} {{ int F() {{ return {i}; }} }}\n" for i in range(12))
             + "}\n", language="C#", path="a.cs")
    assert scorer("reference_bugs=true").score(cs).values["qsc_codecsharp_cate_var_zero"] == 0.0


def test_run_filter_and_cli_take_compat_and_reference_bugs(tmp_path):
    pytest.importorskip("esprima")
    from oc_synth.cli import app

    write_records(tmp_path / "in" / "a.jsonl", [rec("js", MODERN_JS, language="JavaScript", path="m.js"),
                                                rec("py", PYTHON)])
    stats = run_filter(tmp_path / "in", tmp_path / "out", compat="reference", quiet=True)
    assert {r["id"] for r in read_file_records(tmp_path / "out" / "a.jsonl")[0]} == {"js", "py"}
    assert stats.counters["records_out"] == 2
    result = CliRunner().invoke(app, ["curate", "filter", str(tmp_path / "in"), str(tmp_path / "cli"), "--compat",
                                      "reference", "--reference-bugs", "-q"])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_file_records(tmp_path / "cli" / "a.jsonl")[0]] == ["py"]
