"""The package's layout: no module imports one that imports it back, and none is too long to read.

Imports are read from the source (every ``import`` and ``from ... import``,
lazy ones inside functions included), so a circle hidden behind a function-level
import is found too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "facecluster"
MAX_MODULE_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (a package's ``__init__`` counts as the package)."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in modules and name != this}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imports_of(path, modules) for path in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or ``None``; package ``__init__``s are
    left out because importing ``a.b`` runs ``a/__init__`` first by design, not by choice."""
    packages = {name for name in graph if (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()}
    edges = {name: {m for m in targets if m not in packages} for name, targets in graph.items() if name not in packages}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert find_cycle(import_graph()) is None


def private_imports(source: str, this: str, package: str, modules: set[str]) -> list[str]:
    """``module._name`` for each private name that module ``this`` (in ``package``) takes from
    another of the package's ``modules``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base in modules and base != this:
                found += [f"{base}.{alias.name}" for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def test_no_module_takes_another_modules_private_names() -> None:
    """A name with a leading underscore is its module's own: one another module needs is public
    (and documented) where it is defined."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    taken = {}
    for path in paths:
        this = module_name(path)
        package = this if path.name == "__init__.py" else this.rpartition(".")[0]
        if names := private_imports(path.read_text(), this, package, modules):
            taken[this] = names
    assert taken == {}


def test_private_imports_are_found() -> None:
    source = "from .known import _area, one_face_per_photo\nfrom .search import Query\nfrom sklearn import _x\n"
    modules = {"facecluster.people.known", "facecluster.people.search"}
    found = private_imports(source, "facecluster.people.queries", "facecluster.people", modules)
    assert found == ["facecluster.people.known._area"]


def test_no_module_is_longer_than_the_limit() -> None:
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_the_readmes_layout_table_names_every_module() -> None:
    """Each wing's row of the README's "Code layout" table names every module in that wing."""
    readme = (PACKAGE.parent / "README.md").read_text()
    table = readme.split("## Code layout", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.splitlines() if line.startswith("| `")}
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        wing = path.parent.name + "/" if path.parent != PACKAGE else None
        row = rows.get(wing) if wing else next((line for key, line in rows.items() if path.name in key), None)
        if row is None or f"`{path.name}`" not in row:
            missing.append(str(path.relative_to(PACKAGE)))
    assert missing == [], f"README's code layout table does not name: {missing}"


def test_the_readme_documents_every_option_of_each_script_in_its_section() -> None:
    """Each script's README section ("## encode_faces.py" ...) names every one of its options."""
    import importlib
    import sys

    readme = (PACKAGE.parent / "README.md").read_text()
    sections = {part.split("\n", 1)[0]: part for part in readme.split("\n## ")}
    sys.path.insert(0, str(PACKAGE.parent))
    missing = {}
    for script in ("encode_faces", "cluster_faces", "search_faces"):
        section = sections[f"{script}.py"]
        options = [action.option_strings for action in importlib.import_module(script).ap._actions
                   if "--help" not in action.option_strings and action.option_strings]
        missing[script] = [names for names in options if not any(f"`{name}" in section for name in names)]
    assert missing == {"encode_faces": [], "cluster_faces": [], "search_faces": []}
