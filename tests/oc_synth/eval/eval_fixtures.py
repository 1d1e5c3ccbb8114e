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
