"""OpenCodeEval's answer sanitiser (EvalPlus style): the code OpenCoder's harness keeps from a model's answer.

The rule, as OpenCodeEval's ``sanitize.py`` applies it (OpenCoder-llm, docs/opencoder.md; tests compare our output
with its output on the same inputs, ``tests/oc_synth/eval/fixtures/opencodeeval.json``):

1. normalise the text (``refine_text``: tabs to four spaces, CR LF and CR to LF, strip, one final newline);
2. among the contiguous runs of its first 100 lines that parse as Python, take the one with the most non-blank
   lines (the first such run on a tie): prose, markdown fences and broken code fall outside it;
3. keep its top-level imports, then its classes, its functions that contain a ``return``, and its assignments to a
   plain name (a later definition of a name replaces the earlier one in the earlier one's place), each re-printed by
   ``ast.unparse``; async functions, annotated assignments, expressions, ``print`` calls and ``if __name__`` blocks
   are dropped;
4. given an entry point, keep only the definitions it reaches through the names (and attribute names) they mention.

Written from that description, not from EvalPlus's or OpenCodeEval's code.
"""

from __future__ import annotations

import ast

MAX_LINES = 100  # OpenCodeEval looks at the first 100 lines only


def refine_text(text: str) -> str:
    """OpenCodeEval's normalisation of prompts and answers."""
    text = text.replace("\t", "    ").replace("\r\n", "\n").replace("\r", "\n")
    return text.strip() + "\n"


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: NUL bytes
        return False
    return True


def longest_valid_code(text: str) -> str:
    """The longest run of lines (by non-blank lines, first on a tie) of the first 100 that parses as Python.

    Runs that cannot beat the best found so far are not parsed: the answer is the same as trying every run, without
    the quadratic number of parses on typical answers.
    """
    lines = text.splitlines()[:MAX_LINES]
    nonblank = [0]
    for line in lines:
        nonblank.append(nonblank[-1] + (1 if line.strip() else 0))
    best, best_code = 0, ""
    for i in range(len(lines)):
        if nonblank[len(lines)] - nonblank[i] <= best:
            break  # no run starting here or later can have more non-blank lines
        for j in range(i, len(lines)):
            count = nonblank[j + 1] - nonblank[i]
            if count <= best:
                continue
            snippet = "\n".join(lines[i:j + 1])
            if _parses(snippet):
                best, best_code = count, snippet
    return best_code


def _definition_name(node: ast.stmt) -> str | None:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.Assign) and node.targets and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def _has_return(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Return) for n in ast.walk(node))


def _mentioned_names(node: ast.AST) -> set[str]:
    """Names a definition mentions: variable names, and for ``a.b`` only ``b`` (the walk stops at both)."""
    names: set[str] = set()
    stack = [node]
    while stack:
        for child in ast.iter_child_nodes(stack.pop()):
            if isinstance(child, ast.Name):
                names.add(child.id)
            elif isinstance(child, ast.Attribute):
                names.add(child.attr)
            else:
                stack.append(child)
    return names


def _reachable(entry_point: str, mentions: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [entry_point]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(mentions.get(name, set()) - seen)
    return seen


def sanitize(text: str, entry_point: str | None = None) -> str:
    """The code OpenCodeEval keeps from ``text`` (see the module docstring); ``""`` when nothing is kept."""
    tree = ast.parse(longest_valid_code(refine_text(text)))
    imports: list[ast.stmt] = []
    definitions: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        elif isinstance(node, ast.FunctionDef) and not _has_return(node):
            continue
        else:
            name = _definition_name(node)
            if name is not None:
                definitions[name] = node
    if entry_point:
        wanted = _reachable(entry_point, {name: _mentioned_names(node) for name, node in definitions.items()})
        definitions = {name: node for name, node in definitions.items() if name in wanted}
    return "\n".join(ast.unparse(node) for node in [*imports, *definitions.values()])
