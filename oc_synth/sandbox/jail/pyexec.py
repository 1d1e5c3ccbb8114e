"""Run a Python program in the forked zygote: the code part, then the tests, counting every assert that runs.

The two parts share one ``__main__`` namespace (the tests see what the code defines, as if they followed it in one
file), but are compiled from their own files (``solution.py``, ``tests.py``) so tracebacks point at the right lines
and the report tells which part failed. Every ``assert`` in the tests becomes ``assert __oc_assert__(<test>)``,
which counts it; so do ``unittest.TestCase.assert*``/``fail*`` calls. What is reported on fd 3 (``protocol``):
``code``, then ``tests``, then ``done <asserts>`` when the tests finished; ``error_in_code`` / ``failed_in_tests``
when an exception escaped.

A program that knows this protocol can forge it (it shares the process); the sandbox contains it, it does not stop
a sample written to fool the verifier (see docs/sandbox.md, "Not covered").
"""

import ast
import builtins
import os
import sys
import traceback
import types

from protocol import PHASE_CODE, PHASE_DONE, PHASE_TESTS

REPORT_FD = 3
COUNTER = "__oc_assert__"
_OUR_MODULES = ("isolation", "supervisor", "pyexec", "protocol")


def _report(line: str) -> None:
    try:
        os.write(REPORT_FD, (line + "\n").encode())
    except OSError:  # the program closed fd 3: the verdict then lacks evidence, which the host treats as failure
        pass


class _CountAsserts(ast.NodeTransformer):
    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        self.generic_visit(node)
        call = ast.Call(func=ast.Name(id=COUNTER, ctx=ast.Load()), args=[node.test], keywords=[])
        node.test = ast.copy_location(call, node.test)
        return node


def _count_unittest_asserts(hit) -> None:
    import unittest

    for name in dir(unittest.TestCase):
        if name.startswith(("assert", "fail")) and callable(getattr(unittest.TestCase, name)):
            original = getattr(unittest.TestCase, name)

            def counted(self, *a, __original=original, **kw):
                hit(None)
                return __original(self, *a, **kw)

            setattr(unittest.TestCase, name, counted)


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


def run_program(spec: dict, workdir: str, env: dict) -> None:
    """Run ``spec["code"]`` then ``spec["tests"]`` (file names in ``workdir``) as one ``__main__``. Never returns."""
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

    def hit(value):
        count[0] += 1
        return value

    setattr(builtins, COUNTER, hit)
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
    try:
        tests_src = _read(tests_path)
        if "unittest" in tests_src:
            _count_unittest_asserts(hit)
        tree = ast.fix_missing_locations(_CountAsserts().visit(ast.parse(tests_src, tests_path)))
        exec(compile(tree, tests_path, "exec"), main.__dict__)
    except SystemExit as e:  # unittest.main() and explicit exits: status 0 means the tests finished fine
        status = _exit_status(e)
        _report(f"{PHASE_DONE} {count[0]}" if status == 0 else "failed_in_tests")
        _finish(status)
    except BaseException as e:  # noqa: BLE001
        _print_exception(e)
        _report("failed_in_tests")
        _finish(1)
    _report(f"{PHASE_DONE} {count[0]}")
    _finish(0)
