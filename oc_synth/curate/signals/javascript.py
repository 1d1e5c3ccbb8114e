"""JavaScript signals (``qsc_codejavascript_*``). The file must parse; the structural signals read its syntax tree.

The reference parses with esprima 4.0.1 (pure Python, unmaintained since 2018, ES2017 at most). We parse with
tree-sitter's JavaScript grammar (maintained, compiled, ES2024 and JSX) and count the same constructs as the
reference does on esprima's tree; the node kinds map as follows:

    esprima                                   tree-sitter
    VariableDeclaration / VariableDeclarator  variable_declaration, lexical_declaration / variable_declarator,
                                              and for_in_statement with a `kind` (``for (const x of xs)``)
    FunctionExpression (not async)            function_expression, generator_function (without `async`)
    ArrowFunctionExpression                   arrow_function
    Literal / Identifier / UnaryExpression    string, number, true, false, null, regex / identifier, undefined /
                                              unary_expression (parentheses are looked through, as esprima drops them)
    FunctionDeclaration, ClassDeclaration     function_declaration, generator_function_declaration, class_declaration
    ReturnStatement, ImportDeclaration        return_statement, import_statement
    AssignmentExpression                      assignment_expression, augmented_assignment_expression

A file "does not parse" when tree-sitter's tree contains an error or a missing node. Modern syntax (optional chaining,
class fields, JSX, ...) that esprima rejects therefore parses here: see docs/filter.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from oc_synth.curate.signals.document import Document, per_document
from oc_synth.curate.signals.registry import SignalValue, flag, frac_code_lines_with, fraction, quality_signal

SIMPLE_VALUE_KINDS = frozenset({"string", "number", "true", "false", "null", "regex", "identifier", "undefined",
                                "unary_expression"})
FUNCTION_EXPRESSION_KINDS = frozenset({"function_expression", "generator_function"})
ARROW_FUNCTION_KINDS = frozenset({"arrow_function"})
NON_STATEMENT_KINDS = frozenset({"comment", "hash_bang_line", "html_comment"})
_NODES_OF_INTEREST = ("variable_declarator", "for_in_statement", "function_declaration",
                      "generator_function_declaration", "class_declaration", "return_statement", "import_statement",
                      "assignment_expression", "augmented_assignment_expression")
LEGAL_VARIABLE_NAME = re.compile(r"^[a-z\$][a-zA-Z0-9]*$")
LEGAL_FUNCTION_NAME = re.compile(r"^[a-zA-Z\$][a-zA-Z0-9]*$")
LEGAL_CLASS_NAME = re.compile(r"^[A-Z][a-zA-Z0-9]*$")


@lru_cache(maxsize=1)
def _javascript():  # noqa: ANN202 - tree-sitter objects, imported lazily (only JavaScript files need them)
    try:
        import tree_sitter_javascript
        from tree_sitter import Language, Parser, Query, QueryCursor  # noqa: F401 - QueryCursor: tree-sitter >= 0.25
    except ImportError as e:
        raise ImportError("JavaScript signals need tree-sitter>=0.25 and tree-sitter-javascript "
                          "(pip install 'tree-sitter>=0.25' tree-sitter-javascript)") from e

    language = Language(tree_sitter_javascript.language())
    query = Query(language, "[" + " ".join(f"({kind})" for kind in _NODES_OF_INTEREST) + "] @node")
    return Parser(language), query


@dataclass
class JavaScriptStructure:
    statements: int = 0  # top-level statements (esprima's Program.body)
    variables: list[str] = field(default_factory=list)  # declared names whose value is not a function expression
    simple_variables: list[str | None] = field(default_factory=list)  # ... whose value is absent or a literal/name
    functions: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    simple_returns: int = 0  # `return;` or returning a literal / name / unary expression
    imports: int = 0


@per_document
def javascript_structure(doc: Document) -> JavaScriptStructure | None:
    """What the reference counts on the syntax tree, or None when the file does not parse."""
    from tree_sitter import QueryCursor

    parser, query = _javascript()
    tree = parser.parse(doc.text.encode("utf-8", "replace"))
    root = tree.root_node
    if root.has_error:
        return None
    found = JavaScriptStructure(statements=sum(c.type not in NON_STATEMENT_KINDS for c in root.named_children))
    for node in QueryCursor(query).captures(root).get("node", []):
        _count(node, found)
    return found


def _count(node, found: JavaScriptStructure) -> None:  # noqa: ANN001 - a tree-sitter Node
    kind = node.type
    if kind == "variable_declarator":
        _count_declaration(_name(node.child_by_field_name("name")), _unwrap(node.child_by_field_name("value")), found)
    elif kind == "for_in_statement" and node.child_by_field_name("kind") is not None:
        _count_declaration(_name(node.child_by_field_name("left")), None, found)  # `for (const x of xs)`
    elif kind in ("function_declaration", "generator_function_declaration"):
        if name := _name(node.child_by_field_name("name")):
            found.functions.append(name)
    elif kind == "class_declaration":
        if name := _name(node.child_by_field_name("name")):
            found.classes.append(name)
    elif kind == "return_statement":
        value = _unwrap(next((c for c in node.named_children if c.type != "comment"), None))
        found.simple_returns += value is None or value.type in SIMPLE_VALUE_KINDS
    elif kind == "import_statement":
        found.imports += 1
    elif (exported := _module_exports_name(node.child_by_field_name("left"))) is not None:
        value = _unwrap(node.child_by_field_name("right"))
        if value.type in FUNCTION_EXPRESSION_KINDS or value.type in ARROW_FUNCTION_KINDS:
            found.functions.append(exported)
        else:
            found.variables.append(exported)
            if value.type in SIMPLE_VALUE_KINDS:
                found.simple_variables.append(exported)


def _count_declaration(name: str | None, value, found: JavaScriptStructure) -> None:  # noqa: ANN001
    if _is_function_expression(value):
        if name:
            found.functions.append(name)
        return
    if name:
        found.variables.append(name)
    if value is None or value.type in SIMPLE_VALUE_KINDS:
        found.simple_variables.append(name)  # the reference counts destructuring patterns here too (name None)


def _is_function_expression(node) -> bool:  # noqa: ANN001
    # esprima gives `async function` expressions another class, which the reference's isinstance check misses.
    return (node is not None and node.type in FUNCTION_EXPRESSION_KINDS
            and not any(c.type == "async" for c in node.children))


def _unwrap(node):  # noqa: ANN001, ANN202 - esprima has no node for parentheses
    while node is not None and node.type == "parenthesized_expression" and node.named_child_count == 1:
        node = node.named_children[0]
    return node


def _name(node) -> str | None:  # noqa: ANN001
    return node.text.decode("utf-8", "replace") if node is not None and node.type == "identifier" else None


def _module_exports_name(left) -> str | None:  # noqa: ANN001
    """X of ``module.exports.X = ...`` (or ``module.exports[X]`` with X a name), else None."""
    if left is None or left.type not in ("member_expression", "subscript_expression"):
        return None
    target = left.child_by_field_name("object")
    if target is None or target.type != "member_expression":
        return None
    module, exports = target.child_by_field_name("object"), target.child_by_field_name("property")
    if module is None or module.type != "identifier" or module.text != b"module" or exports.text != b"exports":
        return None
    key = left.child_by_field_name("property" if left.type == "member_expression" else "index")
    if key is None or key.type not in ("property_identifier", "identifier"):
        return None
    return key.text.decode("utf-8", "replace")


def _frac_legal(names: list[str], legal: re.Pattern) -> SignalValue:
    return fraction(sum(legal.match(n) is not None for n in names), len(names))


@quality_signal("qsc_codejavascript_cate_ast")
def cate_ast(doc: Document) -> SignalValue:
    if doc.reference_bugs:
        return flag(esprima_parses(doc.text))
    return flag(javascript_structure(doc) is not None)


def esprima_parses(text: str) -> bool:
    """Whether esprima 4.0.1, the reference's parser (ES2017 at most), accepts the text: as a module when it mentions
    ``import`` or ``export``, falling back to a script, else as a script (``--reference-bugs`` only)."""
    import esprima

    try:
        if "import" in text or "export" in text:
            try:
                esprima.parseModule(text)
                return True
            except esprima.Error:
                pass
        esprima.parseScript(text)
        return True
    except esprima.Error:
        return False


@quality_signal("qsc_codejavascript_cate_var_zero")
def cate_var_zero(doc: Document) -> SignalValue:
    structure = javascript_structure(doc)
    return flag(not structure.variables) if structure else None


@quality_signal("qsc_codejavascript_frac_lines_func_ratio")
def frac_lines_func_ratio(doc: Document) -> SignalValue:
    structure = javascript_structure(doc)
    return fraction(len(structure.functions), len(doc.code_lines)) if structure else None


@quality_signal("qsc_codejavascript_num_statement_line")
def num_statement_line(doc: Document) -> SignalValue:
    """Top-level statements per code line."""
    structure = javascript_structure(doc)
    return fraction(structure.statements, len(doc.code_lines)) if structure else None


@quality_signal("qsc_codejavascript_score_lines_no_logic")
def score_lines_no_logic(doc: Document) -> SignalValue:
    """Declarations without logic (functions, imports, classes, bare variables and returns) per code line."""
    s = javascript_structure(doc)
    if s is None:
        return None
    declarations = len(s.functions) + s.imports + len(s.simple_variables) + s.simple_returns + len(s.classes)
    return fraction(declarations, len(doc.code_lines))


@quality_signal("qsc_codejavascript_frac_words_legal_var_name")
def frac_words_legal_var_name(doc: Document) -> SignalValue:
    structure = javascript_structure(doc)
    return _frac_legal(structure.variables, LEGAL_VARIABLE_NAME) if structure else None


@quality_signal("qsc_codejavascript_frac_words_legal_func_name")
def frac_words_legal_func_name(doc: Document) -> SignalValue:
    structure = javascript_structure(doc)
    return _frac_legal(structure.functions, LEGAL_FUNCTION_NAME) if structure else None


@quality_signal("qsc_codejavascript_frac_words_legal_class_name")
def frac_words_legal_class_name(doc: Document) -> SignalValue:
    structure = javascript_structure(doc)
    return _frac_legal(structure.classes, LEGAL_CLASS_NAME) if structure else None


@quality_signal("qsc_codejavascript_frac_lines_print")
def frac_lines_print(doc: Document) -> SignalValue:
    return frac_code_lines_with(doc, "console.log")
