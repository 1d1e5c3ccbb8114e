"""Hand-written MBPP-style problems (ours, not copied from any dataset), and writers for the formats we read."""

import json

# task_id, text, reference code, asserts, setup code
MBPP_PROBLEMS = [
    (1, "Write a function to return the sum of the squares of a list of numbers.",
     "def sum_squares(xs):\r\n    return sum(x * x for x in xs)\r\n",  # MBPP's code uses CRLF line ends
     ["assert sum_squares([1, 2, 3]) == 14", "assert sum_squares([]) == 0", "assert sum_squares([-2]) == 4"], ""),
    (2, "Write a function to reverse the order of the words in a sentence.",
     "def reverse_words(s):\n    return ' '.join(s.split()[::-1])\n",
     ["assert reverse_words('a b c') == 'c b a'", "assert reverse_words('one') == 'one'",
      "assert reverse_words('') == ''"], ""),
    (3, "Write a function to compute the area of a circle given its radius.",
     "import math\ndef circle_area(r):\n    return math.pi * r * r\n",
     ["assert math.isclose(circle_area(1), 3.141592653589793)",
      "assert math.isclose(circle_area(2), 12.566370614359172)", "assert circle_area(0) == 0"], "import math"),
    (4, "Write a python function to check whether a number is even.",
     "def is_even(n):\n    return n % 2 == 0\n",
     ["assert is_even(2) == True", "assert is_even(3) == False", "assert is_even(10) == True"], ""),
]

# Inputs for the EvalPlus-style variants: base inputs plus harder "plus" ones (negatives, zero, long inputs).
PLUS_INPUTS = {
    1: ([[[1, 2, 3]], [[]]], [[[0.5, 1.5]], [list(range(50))]]),
    2: ([["a b c"], ["one"]], [["  spaced   out  "], ["x y"]]),
    3: ([[1], [2]], [[0.1], [1e3]]),
    4: ([[2], [3]], [[0], [-4], [-7]]),
}
ENTRY = {1: "sum_squares", 2: "reverse_words", 3: "circle_area", 4: "is_even"}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path




def plus_test_script(t):
    """An evalplus/mbppplus-style `test`: inputs, expected outputs and an asserting helper."""
    code = MBPP_PROBLEMS[t - 1][2].replace("\r\n", "\n")
    ns = {}
    exec(code, ns)
    base, plus = PLUS_INPUTS[t]
    inputs = base + plus
    results = [ns[ENTRY[t]](*i) for i in inputs]
    return (f"import math\n\ndef assertion(out, exp, atol):\n"
            f"    if isinstance(exp, float):\n        assert math.isclose(out, exp, rel_tol=1e-9, abs_tol=atol)\n"
            f"    else:\n        assert out == exp\n\n"
            f"inputs = {inputs!r}\nresults = {results!r}\n"
            f"for i, (inp, exp) in enumerate(zip(inputs, results)):\n    assertion({ENTRY[t]}(*inp), exp, 0)\n")


# MultiPL-E-format problems of our own (the field layout and each language's stop tokens are MultiPL-E's; the
# problems, prompts and tests are ours), with a right and a wrong completion each.
_JAVA_IMPORTS = ("import java.util.*;\nimport java.lang.reflect.*;\nimport org.javatuples.*;\nimport java.security.*;\n"
                 "import java.math.*;\nimport java.io.*;\nimport java.util.stream.*;\n")
MULTIPLE_PROBLEMS = {
    "py": {
        "prompt": 'from typing import List\n\ndef sum_of_squares(xs: List[int]) -> int:\n    """Return the sum of the '
                  'squares of the numbers in xs.\n    >>> sum_of_squares([1, 2, 3])\n    14\n    """\n',
        "tests": "def check(candidate):\n    assert candidate([1, 2, 3]) == 14\n    assert candidate([]) == 0\n"
                 "    assert candidate([-2]) == 4\n\ndef test_check():\n    check(sum_of_squares)\n\ntest_check()\n",
        "stop_tokens": ["\ndef", "\n#", "\nif", "\nclass"],
        "right": "    return sum(x * x for x in xs)\n", "wrong": "    return sum(xs)\n"},
    "cpp": {
        "prompt": "#include<assert.h>\n#include<bits/stdc++.h>\n"
                  "// Return the sum of the squares of the numbers in xs.\n"
                  "// >>> sum_of_squares((std::vector<long>({(long)1, (long)2, (long)3})))\n// (14)\n"
                  "long sum_of_squares(std::vector<long> xs) {\n",
        "tests": "}\nint main() {\n    auto candidate = sum_of_squares;\n"
                 "    assert(candidate((std::vector<long>({(long)1, (long)2, (long)3}))) == (14));\n"
                 "    assert(candidate((std::vector<long>())) == (0));\n"
                 "    assert(candidate((std::vector<long>({(long)-2}))) == (4));\n}\n",
        "stop_tokens": ["\n}"],
        "right": "    long s = 0;\n    for (long x : xs) s += x * x;\n    return s;",
        "wrong": "    long s = 0;\n    for (long x : xs) s += x;\n    return s;"},
    "java": {
        "prompt": _JAVA_IMPORTS + "class Problem {\n    // Return the sum of the squares of the numbers in xs.\n"
                  "    // >>> sumOfSquares((new ArrayList<Long>(Arrays.asList((long)1l, (long)2l, (long)3l))))\n"
                  "    // (14l)\n    public static long sumOfSquares(ArrayList<Long> xs) {\n",
        "tests": "    }\n    public static void main(String[] args) {\n"
                 "    assert(sumOfSquares((new ArrayList<Long>(Arrays.asList((long)1l, (long)2l, (long)3l)))) == "
                 "(14l));\n"
                 "    assert(sumOfSquares((new ArrayList<Long>(Arrays.asList()))) == (0l));\n"
                 "    assert(sumOfSquares((new ArrayList<Long>(Arrays.asList((long)-2l)))) == (4l));\n    }\n\n}\n",
        "stop_tokens": ["\n    }\n"],
        "right": "        long s = 0;\n        for (long x : xs) s += x * x;\n        return s;",
        "wrong": "        long s = 0;\n        for (long x : xs) s += x;\n        return s;"},
    "js": {
        "prompt": "//Return the sum of the squares of the numbers in xs.\n// >>> sum_of_squares([1, 2, 3])\n// 14\n"
                  "function sum_of_squares(xs){\n",
        "tests": "}\n\nconst assert = require('node:assert');\n\n\nfunction test() {\n"
                 "  let candidate = sum_of_squares;\n"
                 "  assert.deepEqual(candidate([1, 2, 3]),14);\n  assert.deepEqual(candidate([]),0);\n"
                 "  assert.deepEqual(candidate([-2]),4);\n}\n\ntest();",
        "stop_tokens": ["\nfunction ", "\n/*", "\n//", "\nconsole.log"],
        "right": "  return xs.reduce((s, x) => s + x * x, 0);", "wrong": "  return xs.reduce((s, x) => s + x, 0);"},
    "rs": {
        "prompt": "/// Return the sum of the squares of the numbers in xs.\n"
                  "/// >>> sum_of_squares(vec![1, 2, 3])\n/// 14\n"
                  "fn sum_of_squares(xs: Vec<isize>) -> isize {\n",
        "tests": "}\n\nfn main() {\n    let candidate = sum_of_squares;\n"
                 "    assert_eq!(candidate(vec![1, 2, 3]), 14);\n"
                 "    assert_eq!(candidate(Vec::<isize>::new()), 0);\n    assert_eq!(candidate(vec![-2]), 4);\n}\n",
        "stop_tokens": ["\n}"],
        "right": "    xs.iter().map(|x| x * x).sum()", "wrong": "    xs.iter().sum()"},
    "sh": {
        "prompt": "#!/bin/bash\n# Return the sum of the squares of the numbers in xs.\n"
                  "# >>> $(sum_of_squares \"1 2 3\")\n"
                  "# \"14\"\n#\n# $1 is a space-separated list\nsum_of_squares() {\n",
        "tests": "}\n\ncandidate() {\n    sum_of_squares \"$@\"\n}\n\nset -e\nrun_test() {\n"
                 "    [[ $(candidate \"1 2 3\") = \"14\" ]]\n    [[ $(candidate \"\") = \"0\" ]]\n"
                 "    [[ $(candidate \"-2\") = \"4\" ]]\n}\n\nrun_test",
        "stop_tokens": ["\n}"],
        "right": "    local s=0\n    for x in $1; do s=$((s + x * x)); done\n    echo $s",
        "wrong": "    local s=0\n    for x in $1; do s=$((s + x)); done\n    echo $s"},
}
# A Java problem whose signature needs javatuples (MultiPL-E compiles it with the javatuples jar).
JAVA_PAIR_PROBLEM = {
    "prompt": _JAVA_IMPORTS + "class Problem {\n    // Return the smallest and the largest number in xs.\n"
              "    public static Pair<Long, Long> minMax(ArrayList<Long> xs) {\n",
    "tests": "    }\n    public static void main(String[] args) {\n"
             "    assert(minMax((new ArrayList<Long>(Arrays.asList((long)3l, (long)1l))))"
             ".equals((Pair.with(1l, 3l))));\n"
             "    }\n\n}\n",
    "stop_tokens": ["\n    }\n"],
    "right": "        return Pair.with(Collections.min(xs), Collections.max(xs));"}


def multiple_row(language, problem=None, name="OC_0_sum_of_squares"):
    """One MultiPL-E dataset row (as datasets' to_json writes it) for ``language``."""
    p = problem or MULTIPLE_PROBLEMS[language]
    return {"name": name, "language": language, "prompt": p["prompt"], "doctests": "transform",
            "original": f"ours/{name}.py", "prompt_terminology": "reworded", "tests": p["tests"],
            "stop_tokens": p["stop_tokens"]}
