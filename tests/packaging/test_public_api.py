"""litestar_logto's public API: what ``__all__`` lists is importable and documented.

A user reads the docstrings (``help()``, an IDE): every name in ``__all__``, and every public
method and property of the classes it lists, has one of its own, written in the source. The
source is read with ``ast`` so that a docstring a tool writes for us (a dataclass's
``Name(field, ...)``) or one inherited from a base class does not count.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import litestar_logto
import pytest

PACKAGE = Path(litestar_logto.__file__).parent


def _documented_definitions() -> dict[str, ast.AST]:
    """Top-level definitions of the package's modules, by name."""
    found: dict[str, ast.AST] = {}
    for source in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
        for index, node in enumerate(tree.body):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                found[node.name] = node
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                following = tree.body[index + 1] if index + 1 < len(tree.body) else None
                for target in targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = (
                            following if following and _is_docstring(following) else node
                        )
    return found


def _is_docstring(node: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and bool(node.value.value.strip())
    )


def _docstring(node: ast.AST) -> str | None:
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return ast.get_docstring(node)
    if _is_docstring(node):
        assert isinstance(node, ast.Expr)
        assert isinstance(node.value, ast.Constant)
        return str(node.value.value)
    return None  # an assignment without the string literal after it


DEFINITIONS = _documented_definitions()
PUBLIC = sorted(litestar_logto.__all__)


def test_all_lists_what_the_package_exports() -> None:
    """``__all__`` has no duplicate and each of its names is importable from the package."""
    assert len(PUBLIC) == len(set(PUBLIC))
    missing = [name for name in PUBLIC if not hasattr(litestar_logto, name)]
    assert missing == []


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_has_a_docstring(name: str) -> None:
    """The definition of each exported name carries a docstring in the source (for a constant
    or a type alias, the string literal right after its assignment)."""
    assert name in DEFINITIONS, f"{name} is not defined at the top of a litestar_logto module"
    assert _docstring(DEFINITIONS[name]), f"{name} has no docstring"


def _public_members(name: str) -> list[str]:
    node = DEFINITIONS.get(name)
    if not isinstance(node, ast.ClassDef):
        return []
    return [
        f"{name}.{member.name}"
        for member in node.body
        if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef)
        and not member.name.startswith("_")
        and not ast.get_docstring(member)
    ]


def test_every_public_method_of_an_exported_class_has_a_docstring() -> None:
    """Methods and properties a user calls on the exported classes are documented too."""
    undocumented = [
        member
        for name in PUBLIC
        if inspect.isclass(getattr(litestar_logto, name))
        for member in _public_members(name)
    ]
    assert undocumented == []


def test_the_package_is_typed() -> None:
    """``py.typed`` ships beside the modules (PEP 561), so mypy checks a user's code with ours."""
    assert (PACKAGE / "py.typed").is_file()
