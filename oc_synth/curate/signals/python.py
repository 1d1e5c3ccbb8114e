"""Python signals (``qsc_codepython_*``). The file must parse with ``ast``; the other structural signals read one walk
of that tree.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections import deque
from dataclasses import dataclass

from pygments.token import Comment

from oc_synth.curate.signals.document import Document, per_document
from oc_synth.curate.signals.registry import SignalValue, flag, frac_code_lines_with, fraction, quality_signal

SIMPLE_RETURN = re.compile(r"^\s*return(\s+.+)?\s*$", re.MULTILINE)
_DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef)
_HASH_COMMENT_TOKENS = (Comment.Single, Comment.Hashbang)


@per_document
def python_tree(doc: Document) -> ast.Module | None:
    """The module's AST, or None when it does not parse (syntax error, null bytes, nesting too deep)."""
    try:
        return ast.parse(doc.text)
    except Exception:  # noqa: BLE001 - any parser failure means "does not parse"; timeouts are BaseException
        return None


@per_document
def python_natural_text(doc: Document) -> str:
    """Docstrings and comments (without '#'), as the reference measures Python's comment share."""
    walked = python_statements(doc)
    docstrings = walked[1] if walked is not None else []
    return ("\n".join(docstrings) + "\n" + "".join(_hash_comments(doc, walked is not None)).replace("#", "")).strip()


def _hash_comments(doc: Document, parses: bool) -> list[str]:
    # The reference takes `tokenize`'s COMMENT tokens. For a file that parses they are exactly pygments' comment
    # tokens, which the code/comment split already has (checked on 1,497 standard-library modules); tokenize is
    # only run again for files that do not parse, where it may fail part way (then no comment counts).
    if parses:
        return [value for kind, value in doc.comment_pieces if kind in _HASH_COMMENT_TOKENS]
    try:
        return [tok.string for tok in tokenize.generate_tokens(io.StringIO(doc.text).readline)
                if tok.type == tokenize.COMMENT]
    except Exception:  # noqa: BLE001 - a tokenizer error means no comments are counted, as in the reference
        return []


@dataclass
class PythonStructure:
    functions: int = 0  # `def` statements (async ones are not counted, as in the reference)
    simple_functions: int = 0  # functions whose whole body is one `return`
    classes: int = 0
    class_attributes: int = 0  # assignments in the body of a class that is not itself inside a class
    has_variables: bool = False  # any assignment to a name, `for` target name or function parameter


@per_document
def python_structure(doc: Document) -> PythonStructure | None:
    walked = python_statements(doc)
    return walked[0] if walked is not None else None


_STATEMENT_LIKE = (ast.stmt, ast.excepthandler, ast.match_case)


@per_document
def python_statements(doc: Document) -> tuple[PythonStructure, list[str]] | None:
    """One walk of the tree's statements for the structure counts and the docstrings (None: no tree).

    Only statements (and the except / case clauses holding them) are visited: no expression contains a statement,
    so every ``def``, class, assignment and ``for`` is reached, and, the walk being breadth-first like ``ast.walk``,
    the docstrings come in ``ast.walk``'s order."""
    tree = python_tree(doc)
    if tree is None:
        return None
    found, docstrings = PythonStructure(), []
    queue: deque[tuple[ast.AST, bool]] = deque([(tree, False)])
    while queue:
        node, in_class = queue.popleft()
        if isinstance(node, _DOCSTRING_OWNERS) and (text := ast.get_docstring(node)):
            docstrings.append(text)
        if isinstance(node, ast.FunctionDef):
            found.functions += 1
            found.simple_functions += len(node.body) == 1 and isinstance(node.body[0], ast.Return)
            found.has_variables |= bool(node.args.args)
        elif isinstance(node, ast.ClassDef):
            found.classes += 1
            if not in_class:
                found.class_attributes += sum(_named_targets(item) for item in node.body)
        elif isinstance(node, ast.Assign):
            found.has_variables |= any(isinstance(t, ast.Name) for t in node.targets)
        elif isinstance(node, ast.For):
            found.has_variables |= isinstance(node.target, ast.Name)
        child_in_class = in_class or isinstance(node, ast.ClassDef)
        for _, value in ast.iter_fields(node):
            if isinstance(value, list):
                queue.extend((item, child_in_class) for item in value if isinstance(item, _STATEMENT_LIKE))
    return found, docstrings


def _named_targets(statement: ast.stmt) -> int:
    if isinstance(statement, ast.Assign):
        return sum(isinstance(t, ast.Name) for t in statement.targets)
    if isinstance(statement, ast.AnnAssign):
        return int(isinstance(statement.target, ast.Name))
    return 0


@quality_signal("qsc_codepython_cate_ast")
def cate_ast(doc: Document) -> SignalValue:
    return flag(python_tree(doc) is not None)


@quality_signal("qsc_codepython_frac_lines_func_ratio")
def frac_lines_func_ratio(doc: Document) -> SignalValue:
    structure = python_structure(doc)
    return fraction(structure.functions, len(doc.code_lines)) if structure else None


@quality_signal("qsc_codepython_cate_var_zero")
def cate_var_zero(doc: Document) -> SignalValue:
    structure = python_structure(doc)
    return flag(not structure.has_variables) if structure else None


@quality_signal("qsc_codepython_frac_lines_pass")
def frac_lines_pass(doc: Document) -> SignalValue:
    return frac_code_lines_with(doc, "pass", ignore_case=True) or 0.0


@quality_signal("qsc_codepython_frac_lines_import")
def frac_lines_import(doc: Document) -> SignalValue:
    return frac_code_lines_with(doc, "import", ignore_case=True) or 0.0


@quality_signal("qsc_codepython_frac_lines_simplefunc")
def frac_lines_simplefunc(doc: Document) -> SignalValue:
    structure = python_structure(doc)
    return fraction(structure.simple_functions, len(doc.code_lines)) if structure else None


@quality_signal("qsc_codepython_score_lines_no_logic")
def score_lines_no_logic(doc: Document) -> SignalValue:
    """Declarations without logic (functions, classes, class attributes, import lines, bare returns) per code line."""
    structure = python_structure(doc)
    if structure is None:
        return None
    declarations = (structure.functions + structure.classes + structure.class_attributes
                    + doc.count_code_lines_with("import", ignore_case=True) + len(SIMPLE_RETURN.findall(doc.code_text)))
    return fraction(declarations, len(doc.code_lines))


@quality_signal("qsc_codepython_frac_lines_print")
def frac_lines_print(doc: Document) -> SignalValue:
    return frac_code_lines_with(doc, "print")
