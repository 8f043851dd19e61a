"""The layers of docs/architecture.md, read from the source: every import of every rea_cli module
is parsed with ast (nothing is imported), lazy and TYPE_CHECKING imports included.
(ranking_models importing nothing from rea_cli is tests/ranking_models/test_rm_config.py's.)"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Besides app/ and itself, the CLI may import the package root (its version) and the leaf
# helpers it parses and prints with; docs/architecture.md names the same list.
CLI_MAY_IMPORT = (
    "rea_cli.app",
    "rea_cli.cli",
    "rea_cli.workspace",
    "rea_cli.errors",
    "rea_cli.fsutil",
    "rea_cli.clock",
    "rea_cli.numfmt",
)
EXECUTOR_MUST_NOT_IMPORT = ("rea_cli.app", "rea_cli.planner", "rea_cli.cli")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the module it imports, dotted
    line: int
    name: str | None = None  # `from target import name`, when name is not a module

    def __str__(self) -> str:
        what = f"from {self.target} import {self.name}" if self.name else f"import {self.target}"
        return f"{self.module} line {self.line}: {what}"


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _is_module(dotted: str) -> bool:
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(source: str, module: str, is_package: bool = False) -> list[Import]:
    """Every module `source` imports; `from P import x` counts as P.x when that is a module."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            for a in node.names:
                sub = f"{base}.{a.name}"
                if _is_module(sub):
                    found.append(Import(module, sub, node.lineno))
                else:
                    found.append(Import(module, base, node.lineno, a.name))
    return found


@functools.cache
def all_imports() -> tuple[Import, ...]:
    found = []
    for path in sorted((REPO / "rea_cli").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        found += imports_of(path.read_text(), module, is_package)
    return tuple(i for i in found if _within(i.target, "rea_cli"))


def offenders(
    imports: tuple[Import, ...] | list[Import],
    importer: Callable[[str], bool],
    forbidden: Callable[[str], bool],
) -> list[str]:
    return [str(i) for i in imports if importer(i.module) and forbidden(i.target)]


def _cli_may_not(target: str) -> bool:
    return target != "rea_cli" and not any(_within(target, p) for p in CLI_MAY_IMPORT)


def test_the_parser_sees_the_cli_and_the_executor() -> None:
    modules = {i.module for i in all_imports()}
    assert {"rea_cli.cli.main", "rea_cli.executor.submission", "rea_cli.app.watchdog"} <= modules


def test_cli_imports_only_app_and_leaf_helpers() -> None:
    bad = offenders(all_imports(), lambda m: _within(m, "rea_cli.cli"), _cli_may_not)
    assert not bad, (
        "the CLI imports only rea_cli.app and CLI_MAY_IMPORT (docs/architecture.md); "
        "call an app function instead:\n" + "\n".join(bad)
    )


def test_executor_knows_nothing_of_app_planner_or_cli() -> None:
    bad = offenders(
        all_imports(),
        lambda m: _within(m, "rea_cli.executor"),
        lambda t: any(_within(t, p) for p in EXECUTOR_MUST_NOT_IMPORT),
    )
    assert not bad, "the executor imports a layer above it:\n" + "\n".join(bad)


def test_nothing_below_app_imports_it() -> None:
    bad = offenders(
        all_imports(),
        lambda m: not (_within(m, "rea_cli.app") or _within(m, "rea_cli.cli")),
        lambda t: _within(t, "rea_cli.app"),
    )
    assert not bad, "only the CLI imports rea_cli.app:\n" + "\n".join(bad)


def test_a_lazy_or_relative_import_across_a_layer_is_caught() -> None:
    source = (
        "from rea_cli import __version__, numfmt\n"
        "from rea_cli.app import watchdog\n"
        "def install():\n"
        "    from rea_cli.cron import install_cron\n"
        "    from ..planner import plan\n"
        "    from . import common\n"
    )
    found = imports_of(source, "rea_cli.cli.fake")
    assert [i.target for i in found] == [
        "rea_cli",
        "rea_cli.numfmt",
        "rea_cli.app.watchdog",
        "rea_cli.cron",
        "rea_cli.planner.plan",
        "rea_cli.cli.common",
    ]
    bad = offenders(found, lambda m: True, _cli_may_not)
    assert bad == [
        "rea_cli.cli.fake line 4: from rea_cli.cron import install_cron",
        "rea_cli.cli.fake line 5: import rea_cli.planner.plan",
    ]
