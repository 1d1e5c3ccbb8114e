"""Languages the sandbox runs: how a (code, tests) pair becomes files and build/run steps (with ``harness``'s
additions), what the sandbox must see of the host for it, and the lexical facts the static rules use.

Every argv[0] is an absolute, symlink-free path found on the host (``/usr/bin/javac`` is a chain of symlinks through
``/etc/alternatives``); a language whose toolchain is missing is reported per record (verdict ``error``), never
fatal to a run.

The basic "tests exercise the code" rule outside Python (Python's is AST-based, see ``checks``): after comments and
string literals are blanked (``blank``), the tests must mention at least one name the code defines
(``definitions``) and contain at least one assertion construct (``assertion``).
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from oc_synth.sandbox import harness


class UnsupportedLanguage(ValueError):
    """The language is unknown or its toolchain is not installed here; the message says which."""


@dataclass(frozen=True)
class Step:
    """One process run in the sandbox. ``python`` set: the Python program runs inside the warm zygote (no exec)."""

    name: str  # "build" or "run"
    argv: tuple[str, ...] = ()
    python: dict | None = None  # {"code": file, "tests": file}
    env: dict = field(default_factory=dict)

    @property
    def is_build(self) -> bool:
        return self.name == "build"


@dataclass(frozen=True)
class Program:
    """A sample ready to run: its source files (written into the sandbox's /tmp) and the steps to run in order.
    ``meta``: what the classification needs to know of the harness (``libtest``: the run is a libtest binary;
    ``expects_asserts``: the tests' only checks are counted asserts, so at least one must run; ``uncalled``: the test
    functions the harness calls because the tests never do)."""

    language: str
    code: str
    tests: str
    files: dict[str, str]
    steps: tuple[Step, ...]
    id: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Language:
    name: str
    aliases: tuple[str, ...]
    tools: tuple[str, ...]  # executables (names on PATH) the language needs; Python's is SandboxConfig.python
    make: Callable[[str, str], tuple[dict[str, str], tuple[Step, ...], dict]]
    view: str = "native"  # "python": interpreter + stdlib only; "native": the system toolchain directories
    needs_proc: bool = False  # the JVM and rustc's $ORIGIN lookups read /proc/self
    compiled: bool = False  # a build step comes first (a sanity mutant that does not compile is retried)
    min_address_space_mb: int = 0  # V8 and the JVM reserve this much virtual memory before running anything
    definitions: tuple[str, ...] = ()  # regexes; group 1 is a name the code defines
    assertion: str = ""  # regex that an asserting test part matches
    comment_and_string: str = r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'"


# -- toolchains -----------------------------------------------------------------------------------------------------

@functools.cache
def tool(name: str) -> str | None:
    """Absolute, symlink-free path of an executable on PATH (or None)."""
    if name == "rustc":  # rustup's proxy in ~/.cargo/bin needs RUSTUP_HOME; run the toolchain's own binary
        return _rust_sysroot() and os.path.join(_rust_sysroot(), "bin", "rustc")
    found = shutil.which(name)
    return os.path.realpath(found) if found else None


@functools.cache
def _rust_sysroot() -> str | None:
    rustc = shutil.which("rustc")
    if not rustc:
        return None
    try:
        out = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    root = out.stdout.strip()
    return os.path.realpath(root) if root and os.path.isfile(os.path.join(root, "bin", "rustc")) else None


def _need(name: str) -> str:
    path = tool(name)
    if path is None:
        raise UnsupportedLanguage(f"toolchain missing: {name} is not installed on this machine")
    return path


def _java_home() -> str | None:
    javac = tool("javac")
    return os.path.dirname(os.path.dirname(javac)) if javac else None


# -- programs -------------------------------------------------------------------------------------------------------

def blank(src: str, lang: Language) -> str:
    """``src`` with comments and string literals replaced by a space (what the regex rules look at)."""
    return re.sub(lang.comment_and_string, " ", src, flags=re.S)


def _python(code: str, tests: str):
    return ({"solution.py": code, "tests.py": tests},
            (Step("run", python={"code": "solution.py", "tests": "tests.py"}),), {})


# Checks other than assert() in C/C++ tests: with none of these, at least one assert() must run.
_C_OTHER_CHECKS = r"\babort\s*\(|\bexit\s*\(|\breturn\s+(?!0\s*;)[^;]+;|\bthrow\b|\b_Exit\s*\("


def _c_like(name: str, compiler: str, source: str, flags: tuple[str, ...]):
    def make(code: str, tests: str):
        blanked = blank(tests, LANGUAGES[name])
        uncalled = harness.uncalled_tests(name, blanked)
        files = {source: f"{code}\n{tests}\n{harness.c_uncalled_tests(uncalled)}", "oc_harness.c": harness.C_HARNESS,
                 "oc_include/assert.h": harness.C_ASSERT_H}
        build = Step("build", (_need(compiler), *flags, "-I", "oc_include", "-o", "main", source, "-x", "c",
                               "oc_harness.c", "-x", "none", "-lm", "-Wl,--wrap=main"))
        meta = {"uncalled": uncalled,
                "expects_asserts": bool(re.search(r"\bassert\s*\(", blanked))
                and not re.search(_C_OTHER_CHECKS, blanked)}
        return files, (build, Step("run", ("./main",))), meta

    return make


def _javascript(code: str, tests: str):
    blanked = blank(tests, LANGUAGES["javascript"])
    uncalled = harness.uncalled_tests("javascript", blanked)
    files = {"main.js": f"{code}\n{tests}\n{harness.js_uncalled_tests(uncalled)}",
             harness.JS_HARNESS_FILE: harness.JS_HARNESS}
    run = Step("run", (_need("node"), "--require", f"./{harness.JS_HARNESS_FILE}", "main.js"))
    meta = {"uncalled": uncalled, "expects_asserts": bool(re.search(r"(?<![.\w$])assert\b", blanked))
            and not re.search(r"\bthrow\b|\bprocess\.exit|\bexitCode\b", blanked)}
    return files, (run,), meta


def _shell(code: str, tests: str):
    uncalled = harness.uncalled_tests("shell", blank(tests, LANGUAGES["shell"]))
    calls = "".join(f"{n}\n" for n in uncalled)
    # set -e: a bare failing check such as [ "$(f 1)" = 2 ] ends the script with a failure status.
    src = f"{harness.SHELL_PROLOGUE}{code}\nset -e\n{tests}\n{calls}{harness.SHELL_EPILOGUE}"
    return {"main.sh": src}, (Step("run", (_need("bash"), "main.sh")),), {"uncalled": uncalled}


# The JVM reserves gigabytes of address space by default; these keep it inside RLIMIT_AS (--memory-mb) and fast.
JVM_FLAGS = ("-Xmx256m", "-Xss8m", "-XX:CompressedClassSpaceSize=64m", "-XX:ReservedCodeCacheSize=64m",
             "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
_JAVA_PUBLIC_TYPE = re.compile(r"\bpublic\s+(?:(?:final|abstract|sealed)\s+)*(?:class|interface|enum|record)\s+(\w+)")
_JAVA_ANY_CLASS = re.compile(r"\bclass\s+(\w+)")


def _java(code: str, tests: str):
    """Code and tests go to their own files (a file holds at most one public class, named after it); the harness
    (``harness.JAVA_HARNESS``) is the main class and calls the tests' public (else first) class's ``main``."""
    files: dict[str, str] = {}
    for part, default in ((code, "Solution"), (tests, "Main")):
        m = _JAVA_PUBLIC_TYPE.search(part)
        name = m.group(1) if m else default
        if f"{name}.java" in files:
            name = f"{name}Tests"
        files[f"{name}.java"] = part
    files[f"{harness.JAVA_HARNESS_CLASS}.java"] = harness.JAVA_HARNESS
    blanked = blank(tests, LANGUAGES["java"])
    m = _JAVA_PUBLIC_TYPE.search(blanked) or _JAVA_ANY_CLASS.search(blanked)
    main_class = m.group(1) if m else "Main"
    classes = list(dict.fromkeys([main_class, *_JAVA_ANY_CLASS.findall(blanked)]))
    uncalled = harness.uncalled_tests("java", blanked)
    javac = (_need("javac"), *(f"-J{f}" for f in JVM_FLAGS), "-encoding", "UTF-8", "-d", ".", *sorted(files))
    java = (_need("java"), "-ea", *JVM_FLAGS, "-cp", ".", harness.JAVA_HARNESS_CLASS, main_class, ",".join(classes),
            *uncalled)
    has_main = bool(re.search(r"\bstatic\s+(?:final\s+)?void\s+main\s*\(", blanked))
    return files, (Step("build", javac), Step("run", java)), {"uncalled": uncalled, "has_entry": has_main or
                                                             bool(uncalled)}


RUST_TEST_ATTR = re.compile(r"#\[\s*(?:tokio::)?test\s*\]")


def _rust(code: str, tests: str):
    """Tests with ``#[test]`` functions run under libtest (``rustc --test``); otherwise the tests' ``fn main`` runs
    inside a ``main`` of ours (``harness``)."""
    common = ("--edition", "2021", "-C", f"linker={_need('cc')}", "-C", "opt-level=1", "-C", "debuginfo=0",
              # debug_assert! is on (rustc turns it off with any opt-level but 0); overflow checks stay off as before
              "-C", "debug-assertions=on", "-C", "overflow-checks=off")
    blanked = blank(tests, LANGUAGES["rust"])
    if RUST_TEST_ATTR.search(blanked):
        src = f"{code}\n{tests}\n{harness.RUST_LIBTEST_END}"
        build = (_need("rustc"), "--test", *common, "-o", "main", "main.rs")
        run = ("./main", "--test-threads=1")
        return {"main.rs": src}, (Step("build", build), Step("run", run)), {"libtest": True, "has_entry": True}
    uncalled = harness.uncalled_tests("rust", blanked)
    has_main = bool(re.search(r"\bfn\s+main\s*\(", blanked))
    src = f"{code}\n{harness.rename_rust_main(tests)}\n{harness.rust_main_wrapper(uncalled) if has_main else ''}"
    build = (_need("rustc"), *common, "-o", "main", "main.rs")
    return {"main.rs": src}, (Step("build", build), Step("run", ("./main",))), {"uncalled": uncalled,
                                                                               "has_entry": has_main}


_C_DEFS = (r"\b([A-Za-z_]\w*)\s*\([^;{}()]*\)\s*(?:const\s*)?(?:noexcept\s*)?\{",
           r"\b(?:struct|class|union|enum(?:\s+class)?)\s+([A-Za-z_]\w*)", r"#\s*define\s+([A-Za-z_]\w*)",
           r"\btypedef\b[^;]*?\b([A-Za-z_]\w*)\s*;", r"\busing\s+([A-Za-z_]\w*)\s*=")

LANGUAGES: dict[str, Language] = {lang.name: lang for lang in (
    Language("python", ("py", "python3"), (), _python, view="python"),
    Language("c", (), ("gcc",), _c_like("c", "gcc", "main.c", ("-O1",)), compiled=True, definitions=_C_DEFS,
             assertion=r"\bassert\s*\(|\babort\s*\(|\bexit\s*\(|\breturn\s+[1-9]"),
    Language("cpp", ("c++", "cxx", "cc"), ("g++",), _c_like("cpp", "g++", "main.cpp", ("-std=c++17", "-O1")),
             compiled=True, definitions=_C_DEFS,
             assertion=r"\bassert\s*\(|\babort\s*\(|\bexit\s*\(|\bthrow\b|\breturn\s+[1-9]"),
    Language("javascript", ("js", "node", "nodejs"), ("node",), _javascript, min_address_space_mb=1024,
             definitions=(r"\bfunction\s*\*?\s*([A-Za-z_$][\w$]*)", r"\bclass\s+([A-Za-z_$][\w$]*)",
                          r"\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*="),
             # console.assert only logs: it cannot fail a run, so it does not count
             assertion=r"(?<!console\.)\bassert\b\s*[.(]|\bthrow\b|\bprocess\.exit\s*\(\s*[1-9]",
             comment_and_string=r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`"),
    Language("java", (), ("javac", "java"), _java, needs_proc=True, compiled=True, min_address_space_mb=1024,
             definitions=(r"\b(?:class|interface|enum|record)\s+([A-Za-z_]\w*)",
                          r"\b([A-Za-z_]\w*)\s*\([^;{}()]*\)\s*(?:throws\s+[\w.,\s]+)?\{"),
             assertion=r"\bassert\b|\bthrow\b|\bSystem\.exit\s*\("),
    Language("rust", ("rs",), ("rustc", "cc"), _rust, needs_proc=True, compiled=True,
             definitions=(r"\bfn\s+([A-Za-z_]\w*)", r"\b(?:struct|enum|trait|type|union)\s+([A-Za-z_]\w*)",
                          r"\b(?:const|static)\s+(?:mut\s+)?([A-Za-z_]\w*)\s*:", r"\bmacro_rules!\s*([A-Za-z_]\w*)"),
             assertion=r"\b(?:assert|assert_eq|assert_ne|debug_assert\w*|panic|unreachable)!|\bexit\s*\("),
    Language("shell", ("bash", "sh"), ("bash",), _shell,
             definitions=(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\s*\)", r"^\s*function\s+([A-Za-z_][\w-]*)",
                          r"^\s*(?:declare\s+(?:-\w+\s+)*|readonly\s+|local\s+)?([A-Za-z_]\w*)="),
             assertion=r"\[\[?\s|\btest\s|\bexit\b|\breturn\b|\bfalse\b",
             comment_and_string=r"(?m)(?:^|(?<=\s))#[^\n]*"),
)}
_ALIASES = {alias: lang.name for lang in LANGUAGES.values() for alias in (lang.name, *lang.aliases)}

# Words the definition regexes can catch that are not definitions (control flow looks like a call before "{").
KEYWORDS = frozenset("if for while switch catch return sizeof do else main new delete typeof function await".split())


def language(name: str | None) -> Language:
    """The language for a record's ``language`` field (None means Python; Linguist names such as "C++" work)."""
    key = (name or "python").strip().lower()
    if key not in _ALIASES:
        raise UnsupportedLanguage(f"unsupported language {name!r} (supported: {', '.join(LANGUAGES)})")
    return LANGUAGES[_ALIASES[key]]


def build_program(language_name: str | None, code: str, tests: str, id: str | None = None) -> Program:  # noqa: A002
    """Files and steps for one sample. Raises UnsupportedLanguage (unknown language, missing toolchain)."""
    lang = language(language_name)
    files, steps, meta = lang.make(code, tests)
    return Program(lang.name, code, tests, files, steps, id, meta)


def available_languages() -> list[str]:
    """Languages whose toolchains are installed here."""
    return [lang.name for lang in LANGUAGES.values() if all(tool(t) for t in lang.tools)]


# -- what the sandbox sees ------------------------------------------------------------------------------------------

NATIVE_DIRS = ("/usr/bin", "/usr/lib", "/usr/libexec", "/usr/include", "/usr/lib64", "/usr/lib32", "/usr/libx32",
               "/etc/alternatives")
TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")


@functools.cache
def python_binds(python: str) -> tuple[str, ...]:
    """The interpreter, its stdlib, and the directories of the shared libraries it and its extension modules load."""
    exe = os.path.realpath(python)
    probe = ("import json, sys, sysconfig; print(json.dumps([sysconfig.get_path('stdlib'), "
             "sysconfig.get_path('platstdlib'), sysconfig.get_config_var('MULTIARCH') or '']))")
    out = subprocess.run([exe, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    import json

    stdlib, platstdlib, multiarch = json.loads(out.stdout)
    binds = [exe, stdlib, platstdlib]
    if multiarch:
        binds += [f"/usr/lib/{multiarch}", f"/lib/{multiarch}"]
    binds += _ldd_dirs(exe)
    return tuple(dict.fromkeys(os.path.realpath(b) for b in binds if os.path.exists(b)))


def _ldd_dirs(exe: str) -> list[str]:
    try:
        out = subprocess.run(["ldd", exe], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [os.path.dirname(m) for m in re.findall(r"(/\S+\.so[\w.]*)", out)]


def view_binds(lang: Language, python: str) -> list[str]:
    """Host paths bind-mounted read-only (at the same path) into a zygote for ``lang``."""
    if lang.view == "python":
        binds = list(python_binds(python))
    else:
        binds = [d for d in NATIVE_DIRS if os.path.isdir(d) and not os.path.islink(d)]
        binds += [d for d in TOP_LEVEL if os.path.isdir(d) and not os.path.islink(d)]
        if lang.name == "java" and _java_home():
            binds += sorted(glob.glob("/etc/java-*"))  # the JDK's conf/ and security files link there
            binds += ["/etc/ssl/certs/java"]
        if lang.name == "rust" and _rust_sysroot():
            binds.append(_rust_sysroot())
    return [b for b in dict.fromkeys(binds) if os.path.exists(b)]


def top_level_symlinks() -> dict[str, str]:
    """Merged-/usr systems link /bin, /lib, ... into /usr: the view repeats those links."""
    return {d: os.readlink(d) for d in TOP_LEVEL if os.path.islink(d)}
