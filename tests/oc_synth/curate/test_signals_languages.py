"""Language rules (Python, C, C++, C#, Go, Java, JavaScript, HTML): a normal file passes, a bad one fires."""

import pytest

from oc_synth.curate.signals import SIGNALS, Document
from oc_synth.curate.signals.rules import RuleSet, load_filter_config
from oc_synth.curate.signals.scoring import DocumentScorer

PYTHON = '''"""Statistics over the tokens of a text."""

from collections import Counter


class TokenStats:
    """Counts tokens and answers frequency questions."""

    def __init__(self, tokens):
        self.counts = Counter(tokens)
        self.total = sum(self.counts.values())

    def frequency(self, token):
        if self.total == 0:
            return 0.0
        return self.counts[token] / self.total

    def most_common(self, n=3):
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [token for token, _ in ranked[:n]]


def summarize(text, width=40):
    tokens = [word.lower() for word in text.split() if word.isalpha()]
    stats = TokenStats(tokens)
    lines = []
    for token in stats.most_common():
        share = stats.frequency(token)
        bar = "#" * int(share * width)
        if not bar:
            bar = "."
        lines.append(f"{token:>12} {bar} {share:.2f}")
    while len(lines) < 3:
        lines.append("-")
    return "\\n".join(lines)
'''

C_FILE = '''#include <stdlib.h>
#include <string.h>

/* A growable buffer of bytes. */
typedef struct {
    unsigned char *data;
    size_t length;
    size_t capacity;
} buffer_t;

int buffer_reserve(buffer_t *buf, size_t wanted)
{
    if (wanted <= buf->capacity)
        return 0;
    size_t grown = buf->capacity ? buf->capacity * 2 : 64;
    while (grown < wanted)
        grown *= 2;
    unsigned char *bigger = realloc(buf->data, grown);
    if (bigger == NULL)
        return -1;
    buf->data = bigger;
    buf->capacity = grown;
    return 0;
}

int buffer_append(buffer_t *buf, const void *bytes, size_t count)
{
    if (buffer_reserve(buf, buf->length + count) != 0)
        return -1;
    memcpy(buf->data + buf->length, bytes, count);
    buf->length += count;
    return 0;
}
'''

CPP_FILE = '''#include <vector>
#include <numeric>

namespace geom {

double mean(const std::vector<double>& values)
{
    if (values.empty()) {
        throw std::invalid_argument("mean of nothing");
    }
    double total = std::accumulate(values.begin(), values.end(), 0.0);
    return total / static_cast<double>(values.size());
}

double variance(const std::vector<double>& values)
{
    const double m = mean(values);
    double acc = 0.0;
    for (double v : values) {
        acc += (v - m) * (v - m);
    }
    return acc / static_cast<double>(values.size());
}

}  // namespace geom
'''

CSHARP = '''using System;
using System.Collections.Generic;

namespace Geometry
{
    public class Polygon
    {
        private readonly List<double> xs = new List<double>();
        private List<double> ys = new();

        public void Add(double x, double y)
        {
            xs.Add(x);
            ys.Add(y);
        }

        public double Area()
        {
            double sum = 0;
            int n = xs.Count;
            for (int i = 0; i < n; i++)
            {
                int j = (i + 1) % n;
                sum += xs[i] * ys[j] - xs[j] * ys[i];
            }
            return Math.Abs(sum) / 2.0;
        }
    }
}
'''

GO = '''package geometry

import "math"

// Point is a position on the plane.
type Point struct {
	X, Y float64
}

// Distance returns the Euclidean distance between two points.
func Distance(a, b Point) float64 {
	dx := a.X - b.X
	dy := a.Y - b.Y
	return math.Sqrt(dx*dx + dy*dy)
}

// Perimeter walks the polygon and sums the lengths of its edges.
func Perimeter(points []Point) float64 {
	total := 0.0
	for i := range points {
		next := points[(i+1)%len(points)]
		total += Distance(points[i], next)
	}
	return total
}
'''

JAVA = '''package demo.geometry;

import java.util.ArrayList;
import java.util.List;

public class Polyline {
    private final List<double[]> points = new ArrayList<>();

    public void add(double x, double y) {
        points.add(new double[] {x, y});
    }

    public double length() {
        double total = 0;
        for (int i = 1; i < points.size(); i++) {
            double[] a = points.get(i - 1);
            double[] b = points.get(i);
            total += Math.hypot(b[0] - a[0], b[1] - a[1]);
        }
        return total;
    }
}
'''

JAVASCRIPT = '''// A click counter for the demo page.
const button = document.querySelector("#counter");
let clicks = 0;

function render(count) {
  const label = count === 1 ? "click" : "clicks";
  button.textContent = `${count} ${label}`;
}

button.addEventListener("click", () => {
  clicks += 1;
  render(clicks);
  if (clicks % 10 === 0) {
    button.classList.add("milestone");
  }
});

render(clicks);
'''

HTML = '''<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Geometry demo</title>
  <link rel="stylesheet" href="style.css">
</head>
<body>
  <h1>Geometry demo</h1>
  <p>This page shows how the polygon helpers compute areas and perimeters.
     Click the button to add a random point and watch the numbers change.</p>
  <button id="counter">0 clicks</button>
  <p>The source code of every helper is in the repository, with tests.</p>
  <script src="counter.js"></script>
</body>
</html>
'''

GOOD_FILES = {
    "Python": (PYTHON, "textkit/stats.py"),
    "C": (C_FILE, "src/vec2.c"),
    "C++": (CPP_FILE, "src/stats.cpp"),
    "C#": (CSHARP, "Geometry/Polygon.cs"),
    "Go": (GO, "geometry/point.go"),
    "Java": (JAVA, "demo/geometry/Polyline.java"),
    "JavaScript": (JAVASCRIPT, "web/counter.js"),
    "HTML": (HTML, "web/index.html"),
}


@pytest.fixture(scope="module")
def scorer():
    return DocumentScorer(RuleSet(load_filter_config()))


def verdict(scorer, language, text, path=None, rid="doc"):
    path = path or GOOD_FILES[language][1]
    return scorer.score({"id": rid, "text": text, "language": language, "doc_type": "code", "path": path})


@pytest.mark.parametrize("language", sorted(GOOD_FILES))
def test_normal_files_pass_their_language_rules(scorer, language):
    text, path = GOOD_FILES[language]
    v = verdict(scorer, language, text, path)
    assert v.profile == {"C++": "cpp", "C#": "csharp"}.get(language, language.lower())
    assert v.keep, v.drop_reasons
    assert any(name.startswith(f"qsc_code{v.profile}_") for name in v.values)


def prints(statement, n=30):
    return "".join(statement.format(i=i) + "\n" for i in range(n))


FIRING = [
    ("Python", PYTHON.replace("width=40):", "width=40)"), "qsc_codepython_cate_ast"),
    ("Python", PYTHON + prints("print('step {i} of the report is done')"), "qsc_codepython_frac_lines_print"),
    ("Python", PYTHON + prints("class Placeholder{i}(Exception):\n    pass", 8), "qsc_codepython_frac_lines_pass"),
    ("Python", "".join(f"import package_number_{i}\n" for i in range(12)) + PYTHON, "qsc_codepython_frac_lines_import"),
    ("Python", prints("def get_{i}(self):\n    return self.value_{i}", 15), "qsc_codepython_frac_lines_func_ratio"),
    ("Python", "import os\nimport sys\n\nprint(os.getcwd())\nprint(sys.argv)\n" * 3, "qsc_codepython_cate_var_zero"),
    ("C", C_FILE + "int main(void) { return 0; }\nint main(int argc, char **argv) { return 1; }\n",
     "qsc_codec_nums_lines_main"),
    ("C", C_FILE + prints('    printf("value %d is %d\\n", {i}, {i} * {i});'), "qsc_codec_frac_lines_print"),
    ("C", prints("#define CONSTANT_{i} ({i} * 4)") + "int f(void) { return 0; }\n",
     "qsc_codec_frac_lines_preprocessor_directives"),
    ("C++", CPP_FILE + prints('    std::cout << "value " << {i} << std::endl;'), "qsc_codecpp_frac_lines_print"),
    ("C#", CSHARP + prints('Console.WriteLine("line {i} of the report");'), "qsc_codecsharp_frac_lines_print"),
    ("Go", GO + prints('\tfmt.Println("step", {i})'), "qsc_codego_frac_lines_print"),
    ("Java", JAVA + prints('System.out.println("line {i}");'), "qsc_codejava_frac_lines_print"),
    ("Java", "package demo;\n\npublic interface Shape {\n" + prints("    double measure{i}(Object a, Object b);", 12)
     + "}\n", "qsc_codejava_cate_var_zero"),
    ("JavaScript", JAVASCRIPT.replace("function render(count) {", "function render(count {"),
     "qsc_codejavascript_cate_ast"),
    ("JavaScript", JAVASCRIPT + prints('console.log("tick", {i});'), "qsc_codejavascript_frac_lines_print"),
    ("HTML", "<html><body><script>\n" + prints("var widget{i} = createWidget({i}, 'panel-{i}');", 20)
     + "</script></body></html>\n", "qsc_codehtml_num_chars_text"),
    ("HTML", HTML.replace("</body>", "<style>\n" + prints(".item-{i} {{ color: #{i:06d}; margin: {i}px; }}")
                          + "</style></body>"), "qsc_codehtml_frac_words_text"),
]


@pytest.mark.parametrize("language, text, reason", FIRING, ids=[reason for *_, reason in FIRING])
def test_language_rules_fire(scorer, language, text, reason):
    assert reason in verdict(scorer, language, text).drop_reasons


def test_preprocessor_rule_skips_header_files():
    header = "#ifndef VEC2_H\n#define VEC2_H\nstruct vec2 { double x, y; };\n#endif\n"
    assert SIGNALS["qsc_codec_frac_lines_preprocessor_directives"].compute(
        Document(header, language="C", path="vec2.h")) is None
    assert SIGNALS["qsc_codec_frac_lines_preprocessor_directives"].compute(
        Document(header, language="C", path="vec2.c")) == 1.0


def test_python_structure_signals_match_hand_counts():
    doc = Document(PYTHON, language="Python")
    code_lines = len(doc.code_lines)  # docstrings removed by the lexer
    assert code_lines == 25
    assert SIGNALS["qsc_codepython_frac_lines_func_ratio"].compute(doc) == round(4 / code_lines, 8)
    # functions 4 + classes 1 + class attributes 0 + import lines 1 + return lines 4 (the reference's "simple
    # return" pattern matches any one-line return)
    assert SIGNALS["qsc_codepython_score_lines_no_logic"].compute(doc) == round(10 / code_lines, 8)
    assert SIGNALS["qsc_codepython_cate_var_zero"].compute(doc) == 0.0


def test_javascript_counts_declarations_like_the_reference():
    js = ("var a = 1, b = function () {}, c = () => 2;\nlet d;\nconst {e} = o;\nfor (const f of xs) {}\n"
          "function g() { return (a); }\nclass H {}\nmodule.exports.i = function () {};\nmodule.exports.j = 3;\n")
    doc = Document(js, language="JavaScript")
    from oc_synth.curate.signals.javascript import javascript_structure

    s = javascript_structure(doc)
    assert sorted(s.variables) == ["a", "c", "d", "f", "j"]  # arrow functions count as variables, as in the reference
    assert sorted(s.functions) == ["b", "g", "i"]
    assert s.classes == ["H"]
    assert s.simple_returns == 1
    assert sorted(map(str, s.simple_variables)) == ["None", "a", "d", "f", "j"]  # `{e} = o`: a pattern, no name


def test_html_visible_text_keeps_what_beautifulsoup_get_text_keeps():
    from oc_synth.curate.signals.html import html_visible_text

    page = ("<html><head><title>T &amp; U</title><style>p {}</style></head>\n  \n<body><!-- note -->"
            "<p>a<br>b</p><pre>  x  </pre><script>var x;</script><template>hidden</template></body></html>")
    # whitespace-only strings collapse to one newline/space, except inside <pre>; script/style/template/comments
    # are left out; character references are decoded
    assert html_visible_text(Document(page, language="HTML")) == "T & U\nab  x  "


def test_c_function_pattern_does_not_backtrack_exponentially():
    import time

    words = "  ".join(f"word{i}" for i in range(1000))  # the reference pattern takes ~3 s at 22 such words
    start = time.perf_counter()
    SIGNALS["qsc_codec_frac_lines_func_ratio"].compute(Document(f"/* x */\nint {words};\n", language="C"))
    assert time.perf_counter() - start < 5
