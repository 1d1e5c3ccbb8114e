"""What ``verify`` adds to a sample so that its run proves the tests ran, ran to their end, and did not fail.

Every harness reads the run's nonce from stdin before any of the sample's code can (the host draws a fresh one per
run, see ``runner``) and writes ``done <nonce> [<asserts>]`` on the report fd only once the tests are over; a program
that exits early, from a C constructor, a Java static initialiser or shutdown hook, a Rust panic hook or a JavaScript
callback, leaves no marker, and one that writes a marker of its own does not know the nonce. Per language:

- C/C++: ``main`` is wrapped at link time (``-Wl,--wrap=main``): the sample's own ``main`` runs unchanged (its implicit
  ``return 0`` included) and the marker follows only if it returned 0. ``<assert.h>``/``<cassert>`` resolve to our
  header first: ``assert`` always checks (``NDEBUG`` cannot turn it off), counts, and reports a failure before
  aborting.
- JavaScript: a file preloaded with ``node --require``: ``assert``/``node:assert``/``assert/strict`` are wrapped
  (count, report failures even when the tests catch them, promises included); the marker is written when the event
  loop drains (``beforeExit``), i.e. after awaited async tests, never after ``process.exit``.
- Java: ``OcVerifyHarness`` is the main class: it calls the tests' ``main``, then the ``test*`` methods the tests never
  call, halts with status 1 on an uncaught exception in any thread, and writes the marker last.
- Rust: tests in ``#[test]`` functions run under libtest (``rustc --test``, one thread, so in name order) with a last
  test of ours that writes the marker; otherwise the tests' ``fn main`` is renamed and called from a ``main`` of ours.
- Shell: the script reads the nonce first, runs the code, ``set -e``, the tests, and prints the marker last.

Test functions that the tests define and never call (``test*``, no parameters) are called after the tests.
"""

from __future__ import annotations

import re

# -- C and C++ ------------------------------------------------------------------------------------------------------

C_ASSERT_H = r"""/* oc-synth verify: assert() always checks (NDEBUG is ignored), counts and reports every failure. */
#ifdef __cplusplus
extern "C" {
#endif
void __oc_assert_pass(void);
void __oc_assert_fail(const char *expr, const char *file, unsigned line, const char *func)
    __attribute__((__noreturn__));
#ifdef __cplusplus
}
#define __OC_TRUE(e) static_cast<bool>(e)
#else
#define __OC_TRUE(e) (e)
#endif
#undef assert
#define assert(e) (__OC_TRUE(e) ? __oc_assert_pass() : __oc_assert_fail(#e, __FILE__, __LINE__, __func__))
#if !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && !defined(static_assert)
#define static_assert _Static_assert
#endif
"""

C_HARNESS = r"""/* oc-synth verify: wraps the program's main (-Wl,--wrap=main); C, linked into C and C++ programs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char oc_nonce[128];
static unsigned long oc_asserts;

static void oc_report(const char *line) {
    ssize_t ignored = write(3, line, strlen(line));
    (void)ignored;
}

void __oc_assert_pass(void) { oc_asserts++; }

void __oc_assert_fail(const char *expr, const char *file, unsigned line, const char *func) {
    char buf[512];
    snprintf(buf, sizeof buf, "assert_failed %s:%u\n", file, line);
    oc_report(buf);
    fprintf(stderr, "%s:%u: %s: Assertion `%s' failed.\n", file, line, func, expr);
    fflush(stderr);
    signal(SIGABRT, SIG_DFL);
    abort();
}

int __real_main(int argc, char **argv, char **envp);
void __oc_run_uncalled_tests(void);

int __wrap_main(int argc, char **argv, char **envp) {
    ssize_t n = read(0, oc_nonce, sizeof oc_nonce - 1);
    oc_nonce[n > 0 ? n : 0] = 0;
    oc_nonce[strcspn(oc_nonce, "\n")] = 0;
    int rc = __real_main(argc, argv, envp);
    if (rc == 0) {
        __oc_run_uncalled_tests();
        char buf[256];
        fflush(NULL);
        snprintf(buf, sizeof buf, "done %s %lu\n", oc_nonce, oc_asserts);
        oc_report(buf);
    }
    return rc;
}
"""


def c_uncalled_tests(names: list[str]) -> str:
    """Appended to the program's source: the hook the harness calls after main returned 0."""
    calls = "".join(f" {n}();" for n in names)
    return ('\n#ifdef __cplusplus\nextern "C"\n#endif\n'
            f"void __oc_run_uncalled_tests(void) {{{calls} }}\n")


# -- JavaScript -----------------------------------------------------------------------------------------------------

JS_HARNESS = r"""'use strict';
// oc-synth verify (preloaded with node --require): nonce marker when the event loop drains, assert calls counted
// and their failures reported even when the tests catch them.
const fs = require('fs');
const Module = require('module');
let nonce = '';
try { nonce = fs.readFileSync(0, 'utf8').trim(); } catch (e) { /* no stdin: no marker */ }
let asserts = 0;
let finished = false;
const report = (line) => { try { fs.writeSync(3, line + '\n'); } catch (e) { /* closed: no evidence */ } };
const failed = (e) => report('assert_failed ' + String((e && e.message) || e).split('\n')[0].slice(0, 160));
function checked(fn, self, args) {
  let r;
  try { r = fn.apply(self, args); } catch (e) { failed(e); throw e; }
  asserts++;
  if (r && typeof r.then === 'function') return r.then((v) => v, (e) => { failed(e); throw e; });
  return r;
}
const wrapped = new Map();
function wrap(mod) {
  if (wrapped.has(mod)) return wrapped.get(mod);
  const w = function assert(...args) { return checked(mod, this, args); };
  wrapped.set(mod, w);
  for (const k of Object.keys(mod)) {
    const v = mod[k];
    if (k === 'strict' && typeof v === 'function') w[k] = wrap(v);
    else if (typeof v === 'function' && /^[a-z]/.test(k)) w[k] = function (...args) { return checked(v, this, args); };
    else w[k] = v;
  }
  return w;
}
const ASSERT = new Set(['assert', 'node:assert', 'assert/strict', 'node:assert/strict']);
const originalRequire = Module.prototype.require;
Module.prototype.require = function (id) {
  const m = originalRequire.apply(this, arguments);
  return ASSERT.has(id) ? wrap(m) : m;
};
process.on('beforeExit', () => {
  if (!finished) { finished = true; report('done ' + nonce + ' ' + asserts); }
});
"""

JS_HARNESS_FILE = ".oc_harness.js"


def js_uncalled_tests(names: list[str]) -> str:
    return "".join(f"\n{n}();" for n in names) + ("\n" if names else "")


# -- Shell ----------------------------------------------------------------------------------------------------------

SHELL_PROLOGUE = "IFS= read -r __oc_nonce || true\n"
SHELL_EPILOGUE = "printf 'done %s\\n' \"$__oc_nonce\" >&3\n"

# -- Java -----------------------------------------------------------------------------------------------------------

JAVA_HARNESS_CLASS = "OcVerifyHarness"
JAVA_HARNESS = r"""// oc-synth verify: the tests' main, then the test methods they never call; the nonce marker last.
import java.io.ByteArrayInputStream;
import java.io.FileOutputStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;

public final class OcVerifyHarness {
    private static void report(String line) {
        try (FileOutputStream out = new FileOutputStream("/proc/self/fd/3", true)) {
            out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        } catch (Exception e) {
            // fd 3 closed: no evidence, the run fails
        }
    }

    private static void call(Class<?> cls, Method m) throws Throwable {
        m.setAccessible(true);
        Object self = null;
        if (!Modifier.isStatic(m.getModifiers())) {
            java.lang.reflect.Constructor<?> c = cls.getDeclaredConstructor();
            c.setAccessible(true);
            self = c.newInstance();
        }
        try {
            if (m.getParameterCount() == 1) m.invoke(self, (Object) new String[0]); else m.invoke(self);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    public static void main(String[] args) throws Exception {
        String nonce = new String(System.in.readAllBytes(), StandardCharsets.UTF_8).trim();
        System.setIn(new ByteArrayInputStream(new byte[0]));
        Thread.setDefaultUncaughtExceptionHandler((t, e) -> {
            e.printStackTrace();
            report("test_failed thread " + t.getName());
            Runtime.getRuntime().halt(1);
        });
        try {
            Class<?> main = Class.forName(args[0]);
            for (Method m : main.getDeclaredMethods()) {
                if (m.getName().equals("main") && Modifier.isStatic(m.getModifiers())
                        && m.getParameterCount() == 1 && m.getParameterTypes()[0] == String[].class) {
                    call(main, m);
                    break;
                }
            }
            String[] classes = args[1].isEmpty() ? new String[0] : args[1].split(",");
            for (int i = 2; i < args.length; i++) {
                for (String name : classes) {
                    Class<?> cls;
                    Method m;
                    try {
                        cls = Class.forName(name);
                        m = cls.getDeclaredMethod(args[i]);
                    } catch (ClassNotFoundException | NoSuchMethodException e) {
                        continue;
                    }
                    System.err.println("[oc-synth verify] calling " + name + "." + args[i] + "(), never called");
                    call(cls, m);
                    break;
                }
            }
        } catch (Throwable e) {
            e.printStackTrace();
            if (e instanceof AssertionError) report("assert_failed " + e);
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }
        System.out.flush();
        report("done " + nonce);
    }
}
"""

# -- Rust -----------------------------------------------------------------------------------------------------------

RUST_READ_NONCE_AND_REPORT = """    use std::io::{Read, Write};
    use std::os::unix::io::FromRawFd;
    let mut nonce = String::new();
    let _ = std::io::stdin().read_to_string(&mut nonce);
"""
RUST_WRITE_MARKER = """        let mut report = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(3) });
        let _ = writeln!(report, "done {}", nonce.trim());
"""

# libtest sorts tests by name and, with one thread, runs them in that order: this one runs last.
RUST_LIBTEST_END = ("\n#[cfg(test)]\nmod zzzzzzzz_oc_verify_end {\n    #[test]\n    fn zzzzzzzz_end_of_tests() {\n"
                    + RUST_READ_NONCE_AND_REPORT + "        {\n" + RUST_WRITE_MARKER + "        }\n    }\n}\n")
RUST_LIBTEST_MARKER_TEST = "zzzzzzzz_oc_verify_end::zzzzzzzz_end_of_tests"
RUST_TESTS_MAIN = "__oc_tests_main"


def rust_main_wrapper(uncalled: list[str]) -> str:
    calls = "".join(f"        let _ = {n}();\n" for n in uncalled)
    return ("\nfn main() -> std::process::ExitCode {\n" + RUST_READ_NONCE_AND_REPORT
            + f"    let code = std::process::Termination::report({RUST_TESTS_MAIN}());\n"
            + '    if format!("{:?}", code) == format!("{:?}", std::process::ExitCode::SUCCESS) {\n'
            + calls + RUST_WRITE_MARKER + "    }\n    code\n}\n")


_RUST_MAIN = re.compile(r"\bfn\s+main\s*\(")


def rename_rust_main(tests: str) -> str:
    return _RUST_MAIN.sub(f"fn {RUST_TESTS_MAIN}(", tests, count=1)


# -- test functions never called ------------------------------------------------------------------------------------

UNCALLED_TEST_DEFS = {
    "c": (r"^[ \t]*(?:static\s+)?(?:inline\s+)?(?:void|int|bool|_Bool)\s+(test\w*)\s*\(\s*(?:void)?\s*\)\s*\{",),
    "javascript": (r"\b(?:async\s+)?function\s*\*?\s*(test\w*)\s*\(\s*\)",
                   r"\b(?:const|let|var)\s+(test\w*)\s*=\s*(?:async\s*)?(?:\(\s*\)\s*=>|function\s*\(\s*\))"),
    "java": (r"\bvoid\s+(test\w*)\s*\(\s*\)",),
    "rust": (r"\bfn\s+(test\w*)\s*\(\s*\)",),
    "shell": (r"^[ \t]*(?:function\s+)?(test\w*)\s*\(\s*\)", r"^[ \t]*function\s+(test\w*)\b"),
}
UNCALLED_TEST_DEFS["cpp"] = UNCALLED_TEST_DEFS["c"]


def uncalled_tests(language: str, blanked_tests: str) -> list[str]:
    """``test*`` functions (no parameters) that the tests define and never mention again, in definition order.
    ``blanked_tests``: the tests with comments and string literals blanked."""
    found: dict[str, None] = {}
    for pattern in UNCALLED_TEST_DEFS.get(language, ()):
        for m in re.finditer(pattern, blanked_tests, flags=re.M):
            found.setdefault(m.group(1))
    return [n for n in found if len(re.findall(rf"(?<![\w$]){re.escape(n)}(?![\w$])", blanked_tests)) == 1]
