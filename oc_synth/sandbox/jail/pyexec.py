"""Run a Python program in the forked zygote: the code part, then the tests, with evidence of what the tests did.

The two parts share one ``__main__`` namespace (the tests see what the code defines, as if they followed it in one
file), but are compiled from their own files (``solution.py``, ``tests.py``) so tracebacks point at the right lines
and the report tells which part failed. What the harness adds to the tests (``protocol`` names the report lines):

- every ``assert`` in the tests becomes ``assert <counter>(<test>, <line>)`` (the counter's name is drawn per run),
  which counts it and reports a failing one *before* it raises: a failure the tests then catch
  (``except AssertionError: pass``, a catch-all loop, a thread) still fails the run;
- ``unittest``: ``TestCase.assert*``/``fail*`` methods count and report the same way, and every failure or error a
  ``TestResult`` records is reported (however the tests ran their suite); ``TestCase`` classes whose tests never ran
  are run after the tests, as are module-level ``test*`` functions and ``Test*`` classes' ``test*`` methods
  (pytest's conventions) that take no arguments and were never called;
- an uncaught exception in a thread is reported;
- ``SystemExit(0)`` ends the tests only where it is the last thing they would do (raised from the last statement of
  the tests module and of every tests function on its way, e.g. ``unittest.main()`` at the end); anywhere else, or
  from the code part, it is reported as an early exit;
- ``done <nonce> <asserts>`` is written only after all of that; the nonce comes from stdin (read before the code
  runs), so a program cannot forge the marker without reading this harness's memory.
"""

import ast
import builtins
import os
import sys
import traceback
import types

from protocol import ASSERT_FAILED, EXIT_EARLY, PHASE_CODE, PHASE_DONE, PHASE_TESTS, TEST_FAILED

REPORT_FD = 3
RAN = "__oc_ran__"  # called first thing by every module-level test function (pytest style)
_OUR_MODULES = ("isolation", "supervisor", "pyexec", "protocol", "syscalls")


def _report(line: str) -> None:
    try:
        os.write(REPORT_FD, (line + "\n").encode())
    except OSError:  # the program closed fd 3: the verdict then lacks evidence, which the host treats as failure
        pass


class _Instrument(ast.NodeTransformer):
    """Count and report asserts; make module-level ``test*`` functions (and ``Test*`` classes' methods) say they ran."""

    def __init__(self, counter: str):
        self.counter = counter
        self.depth = 0

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        self.generic_visit(node)
        call = ast.Call(func=ast.Name(id=self.counter, ctx=ast.Load()),
                        args=[node.test, ast.Constant(node.lineno)], keywords=[])
        node.test = ast.copy_location(call, node.test)
        return node

    def _mark(self, node, name: str):
        mark = ast.Expr(ast.Call(func=ast.Name(id=RAN, ctx=ast.Load()), args=[ast.Constant(name)], keywords=[]))
        node.body.insert(0, ast.copy_location(mark, node.body[0]))

    def visit_FunctionDef(self, node):
        if self.depth == 0 and node.name.startswith("test"):
            self._mark(node, node.name)
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        if self.depth == 0 and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test"):
                    self._mark(item, f"{node.name}.{item.name}")
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1
        return node


def _hook_unittest(hit, fail) -> set:
    """Count and report ``TestCase`` assertions and recorded failures; returns the set of test ids that ran."""
    import inspect
    import unittest

    for name, original in list(vars(unittest.TestCase).items()):
        # only methods: ``failureException`` is a class (wrapping it broke every failing test's issubclass check)
        if name.startswith(("assert", "fail")) and inspect.isfunction(original):
            def counted(self, *a, __original=original, __name=name, **kw):
                hit(True, None)
                try:
                    return __original(self, *a, **kw)
                except self.failureException:
                    fail(f"{ASSERT_FAILED} {type(self).__name__}.{__name}")
                    raise

            setattr(unittest.TestCase, name, counted)

    def recording(original, what):
        def record(self, test, *args):
            if what != "subtest" or (len(args) > 1 and args[1] is not None):
                fail(f"{TEST_FAILED} {what} {getattr(test, 'id', lambda: test)()}")
            return original(self, test, *args)

        return record

    for method, what in (("addFailure", "failure"), ("addError", "error"), ("addUnexpectedSuccess", "unexpected"),
                         ("addSubTest", "subtest")):
        setattr(unittest.TestResult, method, recording(getattr(unittest.TestResult, method), what))
    ran: set = set()
    original_run = unittest.TestCase.run

    def run(self, result=None):
        ran.add(self.id())
        return original_run(self, result)

    unittest.TestCase.run = run
    return ran


def _run_uncalled_tests(main: types.ModuleType, tests_path: str, called: set, unittest_ran: set | None) -> None:
    """Tests the program defined but never ran: unittest cases, then pytest-style functions and methods."""
    ns = main.__dict__
    if unittest_ran is not None:
        import unittest

        loader = unittest.TestLoader()
        suite = unittest.TestSuite()
        for obj in list(ns.values()):
            if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj.__module__ == "__main__":
                for t in loader.loadTestsFromTestCase(obj):
                    if t.id() not in unittest_ran:
                        suite.addTest(t)
        if suite.countTestCases():
            print(f"[oc-synth verify] running {suite.countTestCases()} unittest test(s) the program never ran",
                  file=sys.stderr)
            unittest.TextTestRunner(stream=sys.stderr, verbosity=1).run(suite)
    import inspect

    def runnable(fn) -> bool:
        code = getattr(fn, "__code__", None)
        if code is None or code.co_filename != tests_path:
            return False
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return False
        return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                   for p in sig.parameters.values())

    for name, obj in list(ns.items()):
        if name.startswith("test") and inspect.isfunction(obj) and name not in called and runnable(obj):
            result = obj()
            if inspect.iscoroutine(result):
                import asyncio

                asyncio.run(result)
        elif (name.startswith("Test") and isinstance(obj, type) and obj.__module__ == "__main__"
              and not any(b.__name__ == "TestCase" for b in obj.__mro__)):
            for attr, fn in list(vars(obj).items()):
                if attr.startswith("test") and inspect.isfunction(fn) and f"{name}.{attr}" not in called:
                    try:
                        instance = obj()
                    except TypeError:
                        break
                    bound = getattr(instance, attr)
                    if runnable(bound):
                        bound()


def _body_end(body: list) -> tuple[int, int]:
    last = body[-1]
    return last.lineno, getattr(last, "end_lineno", None) or last.lineno


def _early_exit(e: SystemExit, tree: ast.Module, tests_path: str, code_path: str) -> str | None:
    """Where a status-0 exit left the tests before their end (``file:line``), or None if it was their last act."""
    functions = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            for line in [node.lineno, *(d.lineno for d in node.decorator_list)]:
                functions[line] = node
    tb = e.__traceback__
    while tb is not None:
        code, line = tb.tb_frame.f_code, tb.tb_lineno
        if code.co_filename == code_path:
            return f"solution.py:{line}"
        if code.co_filename == tests_path:
            if code.co_name == "<module>":
                body = tree.body
            else:
                node = functions.get(code.co_firstlineno)
                body = node.body if node is not None else None
            if body:
                first, last = _body_end(body)
                if not first <= line <= last:
                    return f"tests.py:{line}"
        tb = tb.tb_next
    return None


def _exit_status(e: SystemExit) -> int:
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)  # sys.exit("message") prints it and exits 1, as the interpreter does
    return 1


def _print_exception(e: BaseException) -> None:
    tb = e.__traceback__.tb_next if e.__traceback__ is not None else None  # drop our own frame
    traceback.print_exception(type(e), e, tb)


def _finish(status: int) -> None:
    """What the interpreter does at exit: atexit handlers, wait for non-daemon threads, flush; then leave."""
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        import atexit

        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(status)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _read_nonce() -> str:
    try:
        return os.read(0, 256).decode("ascii", "replace").strip()
    except OSError:
        return ""


def run_program(spec: dict, workdir: str, env: dict) -> None:
    """Run ``spec["code"]`` then ``spec["tests"]`` (file names in ``workdir``) as one ``__main__``. Never returns."""
    nonce = _read_nonce()
    os.environ.clear()
    os.environ.update(env)
    for name in _OUR_MODULES:
        sys.modules.pop(name, None)
    code_path = os.path.join(workdir, spec["code"])
    tests_path = os.path.join(workdir, spec["tests"])
    main = types.ModuleType("__main__")
    main.__file__ = code_path
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = [code_path]
    sys.path[0] = workdir
    count = [0]
    called: set = set()

    def fail(line: str) -> None:
        _report(line)

    def hit(value, line):
        count[0] += 1
        if line is not None:
            try:
                ok = bool(value)
            except BaseException:  # noqa: BLE001 - the assert itself raises the same
                ok = False
            if not ok:
                _report(f"{ASSERT_FAILED} tests.py:{line}")
        return value

    counter = f"__oc_assert_{os.urandom(6).hex()}__"  # drawn per run: a program cannot define it in advance
    setattr(builtins, counter, hit)
    setattr(builtins, RAN, called.add)
    import threading

    default_hook = threading.excepthook

    def thread_failed(args):
        if args.exc_type is not SystemExit:
            _report(f"{TEST_FAILED} thread {getattr(args.thread, 'name', '?')}")
        default_hook(args)

    threading.excepthook = thread_failed
    _report(PHASE_CODE)
    try:
        exec(compile(_read(code_path), code_path, "exec"), main.__dict__)
    except SystemExit as e:  # the code part ended the program before any test ran
        _report("exit_in_code")
        _finish(_exit_status(e))
    except BaseException as e:  # noqa: BLE001
        _print_exception(e)
        _report("error_in_code")
        _finish(1)
    _report(PHASE_TESTS)
    unittest_ran = None
    try:
        tests_src = _read(tests_path)
        tree = ast.parse(tests_src, tests_path)
        if "unittest" in tests_src:
            unittest_ran = _hook_unittest(hit, fail)
        instrumented = ast.fix_missing_locations(_Instrument(counter).visit(ast.parse(tests_src, tests_path)))
        exec(compile(instrumented, tests_path, "exec"), main.__dict__)
    except SystemExit as e:  # unittest.main() and explicit exits: status 0 ends the tests only at their very end
        status = _exit_status(e)
        if status != 0:
            _report("failed_in_tests")
            _finish(status)
        where = _early_exit(e, tree, tests_path, code_path)
        if where is not None:
            print(f"[oc-synth verify] SystemExit(0) at {where} ended the program before its tests did",
                  file=sys.stderr)
            _report(f"{EXIT_EARLY} {where}")
            _finish(0)
    except BaseException as e:  # noqa: BLE001
        _print_exception(e)
        _report("failed_in_tests")
        _finish(1)
    try:
        _run_uncalled_tests(main, tests_path, called, unittest_ran)
    except SystemExit as e:
        if _exit_status(e) != 0:
            _report("failed_in_tests")
            _finish(_exit_status(e))
    except BaseException as e:  # noqa: BLE001
        _print_exception(e)
        _report("failed_in_tests")
        _finish(1)
    _report(f"{PHASE_DONE} {nonce} {count[0]}")
    _finish(0)
