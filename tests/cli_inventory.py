"""Every command and option of both CLIs, as data: for the frozen option list (tests/cli_options.txt, written by
``python tests/cli_inventory.py --write``) and the convention checks in tests/test_cli_conventions.py.

torchtitan's idea: a new or renamed option must change a checked-in file, so that it is a reviewed decision.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FROZEN = Path(__file__).resolve().parent / "cli_options.txt"


@dataclass(frozen=True)
class OptionInfo:
    command: str  # e.g. "oc-synth curate dedup"
    name: str  # the Python parameter name
    flags: tuple[str, ...]  # every spelling, long and short (positional arguments: empty)
    hidden: bool

    @property
    def long(self) -> str | None:
        return next((f for f in self.flags if f.startswith("--")), None)

    @property
    def shorts(self) -> tuple[str, ...]:
        return tuple(f for f in self.flags if not f.startswith("--"))

    def line(self) -> str:
        spelled = "/".join(self.flags) if self.flags else f"<{self.name}>"
        return f"{self.command}: {spelled}" + (" (hidden)" if self.hidden else "")


def _apps() -> list[tuple[str, object]]:
    from oc_megatron.cli import app as megatron_app
    from oc_synth.cli import app as synth_app

    return [("oc-synth", synth_app), ("oc-megatron", megatron_app)]


def _walk(cmd: object, path: list[str]) -> Iterator[tuple[str, object]]:
    yield " ".join(path), cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _walk(sub, [*path, name])


def options() -> list[OptionInfo]:
    import typer.main

    out = []
    for prog, app in _apps():
        for command, cmd in _walk(typer.main.get_command(app), [prog]):
            for p in cmd.params:  # type: ignore[attr-defined]
                if p.name in ("help", "install_completion", "show_completion"):
                    continue
                is_option = p.param_type_name == "option"
                flags = tuple(p.opts) + tuple(p.secondary_opts) if is_option else ()
                out.append(OptionInfo(command, p.name, flags, bool(getattr(p, "hidden", False))))
    return out


def frozen_text() -> str:
    return "".join(f"{o.line()}\n" for o in options())


def main(argv: list[str]) -> int:
    text = frozen_text()
    if "--write" in argv:
        FROZEN.write_text(text)
        print(f"wrote {FROZEN} ({text.count(chr(10))} options)")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.path[0] = str(FROZEN.parent.parent)  # the repository, not tests/ (whose oc_common/ would shadow the package)
    sys.exit(main(sys.argv[1:]))
