"""Sanity mutants: the sample's code with its functions broken. Tests that still pass against them test nothing.

A mutant replaces the body of every function the *code* part defines (never the tests', never ``main``) with a stub;
the tests run unchanged. If they pass the mutant too, they could not have failed on wrong code: the sample is
``weak_tests``. Two kinds of stub:

- ``value`` (first choice): the function returns a neutral value and does nothing else. Python: an object whose every
  use but printing raises (``==``, ``bool``, arithmetic, iteration, attributes...), so a check of the result fails and
  merely printing it does not; C/C++: a zero-initialised value of the return type; Java: 0, false or null; Rust:
  ``Default::default()``; JavaScript: ``undefined``; shell: no output, status 0. This is what catches checks that
  cannot fail (``if (add(1, 2) != 3) printf("FAIL");``, ``[ "$(add 1 2)" = 3 ] && echo ok``).
- ``fail``: the function aborts (``abort()``, ``panic!``, ``throw``). Used for compiled languages when the value
  mutant does not compile (a return type without a default, ``auto``); it still catches tests that never call the
  code.

Functions are found with Python's ``ast`` and, for the other languages, tree-sitter's grammars (the same parse
for every sample, no regexes over code). A sample whose code defines no function has no mutant.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from dataclasses import dataclass

from oc_synth.sandbox.languages import Program, build_program, language

Mode = str  # "value" | "fail"
STUBS = {"value": "bodies replaced by a stub returning a neutral value", "fail": "bodies replaced by an abort"}

# -- Python ---------------------------------------------------------------------------------------------------------

BROKEN_CLASS = "_OcBrokenResult"
_BROKEN_DUNDERS = ("bool eq ne lt le gt ge hash len iter next getitem setitem delitem contains call getattr add radd "
                   "sub rsub mul rmul matmul truediv rtruediv floordiv rfloordiv mod rmod divmod pow rpow neg pos abs "
                   "int float complex index round trunc floor ceil and rand or ror xor rxor lshift rlshift rshift "
                   "rrshift invert enter exit aenter aexit await aiter anext fspath reversed").split()
PYTHON_PRELUDE = (
    f"class {BROKEN_CLASS}:\n"
    "    # oc-synth verify sanity mutant: what every function of the code returns; any use but printing fails\n"
    "    def _oc_fail(self, *args, **kwargs):\n"
    "        raise RuntimeError('oc-synth verify sanity mutant: result of a broken function')\n"
    f"    {' = '.join(f'__{d}__' for d in _BROKEN_DUNDERS)} = _oc_fail\n"
    "    def __repr__(self):\n        return '<broken by oc-synth verify>'\n"
    "    __str__ = __format__ = lambda self, *a: '<broken by oc-synth verify>'\n\n\n")
# Methods Python calls for their side effects and whose result must be None.
_NONE_METHODS = frozenset({"__init__", "__post_init__", "__init_subclass__", "__set_name__", "__del__", "__setattr__",
                           "__delattr__", "__set__", "__delete__"})


class _BreakPython(ast.NodeTransformer):
    def __init__(self, only: set[str] | None):
        self.only = only
        self.broken: list[str] = []

    def _stub(self, name: str) -> list[ast.stmt]:
        if name == "__new__":
            return []
        if name in _NONE_METHODS:
            return [ast.Return(ast.Constant(None))]
        return [ast.Return(ast.Call(ast.Name(BROKEN_CLASS, ast.Load()), [], []))]

    def _break_function(self, node):
        stub = self._stub(node.name)
        if stub:
            node.body = stub
        return node

    def _break_class(self, node: ast.ClassDef) -> None:
        for item in ast.walk(node):
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._break_function(item)

    def visit_Module(self, node: ast.Module) -> ast.Module:
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and self._selected(stmt.name):
                self._break_function(stmt)
                self.broken.append(stmt.name)
            elif isinstance(stmt, ast.ClassDef) and self._selected(stmt.name):
                self._break_class(stmt)
                self.broken.append(stmt.name)
            elif isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Lambda):
                names = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
                if names and any(self._selected(n) for n in names):
                    stmt.value.body = ast.Call(ast.Name(BROKEN_CLASS, ast.Load()), [], [])
                    self.broken.extend(names)
        return node

    def _selected(self, name: str) -> bool:
        return self.only is None or name in self.only


def _python_definitions(code: str) -> list[str]:
    names = []
    for stmt in ast.parse(code).body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(stmt.name)
        elif isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Lambda):
            names += [t.id for t in stmt.targets if isinstance(t, ast.Name)]
    return list(dict.fromkeys(names))


def _mutate_python(code: str, only: set[str] | None) -> tuple[str, list[str]] | None:
    breaker = _BreakPython(only)
    tree = breaker.visit(ast.parse(code))
    if not breaker.broken:
        return None
    at = 0  # after the docstring and the __future__ imports, which must come first
    while at < len(tree.body) and (
            (isinstance(tree.body[at], ast.ImportFrom) and tree.body[at].module == "__future__")
            or (at == 0 and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant))):
        at += 1
    tree.body[at:at] = ast.parse(PYTHON_PRELUDE).body
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n", breaker.broken


# -- tree-sitter languages ------------------------------------------------------------------------------------------

@functools.cache
def _parser(lang: str):
    from tree_sitter import Language, Parser

    if lang == "c":
        import tree_sitter_c as grammar
    elif lang == "cpp":
        import tree_sitter_cpp as grammar
    elif lang == "java":
        import tree_sitter_java as grammar
    elif lang == "rust":
        import tree_sitter_rust as grammar
    elif lang == "javascript":
        import tree_sitter_javascript as grammar
    else:
        import tree_sitter_bash as grammar
    return Parser(Language(grammar.language()))


def _text(node) -> str:
    return node.text.decode("utf-8", "replace")


def _c_function(node, cpp: bool, mode: Mode) -> tuple[str, str] | None:
    """(name, stub body) of a C/C++ function_definition, or None to leave it alone (main, constructors...)."""
    decl, pointers, reference = node.child_by_field_name("declarator"), 0, False
    while decl is not None and decl.type in ("pointer_declarator", "reference_declarator"):
        pointers += decl.type == "pointer_declarator"
        reference |= decl.type == "reference_declarator"
        decl = decl.child_by_field_name("declarator") or (decl.named_children[-1] if decl.named_children else None)
    if decl is None or decl.type != "function_declarator":
        return None
    name_node = decl.child_by_field_name("declarator")
    name = _text(name_node) if name_node is not None else ""
    rtype = node.child_by_field_name("type")
    if not name or name == "main" or rtype is None:  # constructors, destructors, conversions have no type
        return None
    qualifiers = " ".join(_text(c) for c in node.children
                          if c.type == "type_qualifier" and c.end_byte <= rtype.start_byte)
    type_text = f"{qualifiers} {_text(rtype)}".strip() + " " + "*" * pointers
    if mode == "fail" or "auto" in type_text.split() or "decltype" in type_text:
        return name, "{ __builtin_abort(); }"
    if type_text.strip() == "void":
        return name, "{ }"
    init = "{}" if cpp else ""
    return name, f"{{ static {type_text.strip()} __oc_zero{init}; return __oc_zero; }}"


_JAVA_PRIMITIVE_ZERO = {"boolean": "false", "char": "(char) 0", "byte": "(byte) 0", "short": "(short) 0",
                        "int": "0", "long": "0L", "float": "0f", "double": "0d"}


def _java_method(node, mode: Mode) -> tuple[str, str] | None:
    name = _text(node.child_by_field_name("name"))
    rtype = node.child_by_field_name("type")
    if name == "main" or rtype is None:
        return None
    if mode == "fail":
        return name, '{ throw new RuntimeException("oc-synth verify sanity mutant"); }'
    t = _text(rtype)
    if t == "void":
        return name, "{ }"
    return name, f"{{ return {_JAVA_PRIMITIVE_ZERO.get(t, 'null')}; }}"


def _rust_function(node, mode: Mode) -> tuple[str, str] | None:
    name = _text(node.child_by_field_name("name"))
    prev = node.prev_named_sibling
    while prev is not None and prev.type == "attribute_item":
        if "test" in _text(prev):
            return None
        prev = prev.prev_named_sibling
    if name == "main":
        return None
    if mode == "fail":
        return name, '{ panic!("oc-synth verify sanity mutant") }'
    return name, "{ Default::default() }" if node.child_by_field_name("return_type") is not None else "{ }"


def _js_function(node, mode: Mode) -> tuple[str, str] | None:
    name_node = node.child_by_field_name("name")
    name = _text(name_node) if name_node is not None else ""
    if node.type == "method_definition" and name == "constructor":
        return None
    if not name and node.parent is not None and node.parent.type == "variable_declarator":
        name = _text(node.parent.child_by_field_name("name"))
    body = node.child_by_field_name("body")
    return name or "(anonymous)", "{ return undefined; }" if body is not None and body.type == "statement_block" \
        else "(undefined)"


def _shell_function(node, mode: Mode) -> tuple[str, str] | None:
    return _text(node.child_by_field_name("name")), "{ return 0; }"


@dataclass(frozen=True)
class _Grammar:
    functions: tuple[str, ...]  # node types that are functions with a body to replace
    describe: Callable  # (node, mode) -> (name, stub) or None
    containers: tuple[str, ...]  # top-level node types whose name groups the functions inside (strict mode)


_JS_FUNCTIONS = ("function_declaration", "generator_function_declaration", "function_expression", "function",
                 "generator_function", "arrow_function", "method_definition")
GRAMMARS = {
    "c": _Grammar(("function_definition",), lambda n, m: _c_function(n, False, m), ()),
    "cpp": _Grammar(("function_definition",), lambda n, m: _c_function(n, True, m),
                    ("class_specifier", "struct_specifier", "namespace_definition", "template_declaration")),
    "java": _Grammar(("method_declaration",), _java_method,
                     ("class_declaration", "interface_declaration", "enum_declaration", "record_declaration")),
    "rust": _Grammar(("function_item",), _rust_function, ("impl_item", "trait_item", "mod_item")),
    "javascript": _Grammar(_JS_FUNCTIONS, _js_function, ("class_declaration",)),
    "shell": _Grammar(("function_definition",), _shell_function, ()),
}


def _group(node, root, grammar: _Grammar, name: str) -> str:
    """The top-level definition a function belongs to: its class/impl/namespace, else itself."""
    top = node
    while top.parent is not None and top.parent != root:
        top = top.parent
    if top.type in grammar.containers:
        named = top.child_by_field_name("name") or top.child_by_field_name("type")
        if named is not None:
            return _text(named)
    return name


def _functions(lang: str, code: bytes, mode: Mode):
    """(group, name, body node, stub) of every outermost function of the code."""
    grammar = GRAMMARS[lang]
    root = _parser(lang).parse(code).root_node
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        if node.type in grammar.functions:
            described = grammar.describe(node, mode)
            body = node.child_by_field_name("body")
            if described is not None and body is not None:
                found.append((_group(node, root, grammar, described[0]), described[0], body, described[1]))
                continue
        stack.extend(reversed(node.children))
    return found


def _mutate_tree_sitter(lang: str, code: str, only: set[str] | None, mode: Mode) -> tuple[str, list[str]] | None:
    data = code.encode("utf-8")
    chosen = [f for f in _functions(lang, data, mode) if only is None or f[0] in only]
    if not chosen:
        return None
    out, pos = [], 0
    for _, _, body, stub in sorted(chosen, key=lambda f: f[2].start_byte):
        out += [data[pos:body.start_byte], stub.encode()]
        pos = body.end_byte
    out.append(data[pos:])
    return b"".join(out).decode("utf-8"), list(dict.fromkeys(f[1] for f in chosen))


# -- API ------------------------------------------------------------------------------------------------------------

def definitions(program: Program) -> list[str]:
    """The top-level definitions of the code a strict run breaks one at a time (functions; classes, impls...)."""
    lang = language(program.language).name
    try:
        if lang == "python":
            return _python_definitions(program.code)
        return list(dict.fromkeys(f[0] for f in _functions(lang, program.code.encode("utf-8"), "value")))
    except (SyntaxError, ValueError, RecursionError):
        return []


def mutate(program: Program, mode: Mode = "value", only: set[str] | None = None) -> tuple[Program, list[str]] | None:
    """The mutant of ``program`` (``only``: break just these top-level definitions) and the names of the functions it
    broke, or None when the code defines no function to break."""
    lang = language(program.language)
    try:
        if lang.name == "python":
            made = _mutate_python(program.code, only)
        else:
            made = _mutate_tree_sitter(lang.name, program.code, only, mode)
    except (SyntaxError, ValueError, RecursionError):
        return None
    if made is None:
        return None
    code, broken = made
    return build_program(lang.name, code, program.tests, id=program.id), broken


def modes(program: Program) -> tuple[Mode, ...]:
    """Stubs to try in order: compiled languages fall back to aborting stubs when value stubs do not compile."""
    return ("value", "fail") if language(program.language).compiled else ("value",)
