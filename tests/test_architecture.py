"""The package's shape: imports follow the course, and files and functions stay small enough to read.

Run as a script to print the measurements: `python tests/test_architecture.py`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "minitransformer"

# The course, bottom up: a module may import from its own level or below, never from above.
LEVELS = [
    ["errors"],
    ["checks", "files"],
    ["config"],
    ["masks", "positional"],
    ["native_step"],
    ["kv_cache", "matvec", "compiled_block", "attention"],
    ["layers", "recurrent"],
    ["models"],
    ["objectives", "logits", "beam_search", "tokenizers", "data", "ngram"],
    ["poems"],
    ["generation"],
    ["training"],
    ["viz"],
    ["widgets"],
    ["tools"],
    ["__init__", "__main__"],
]
MAX_MODULE_LINES, ALLOWED_OVER, HARD_MODULE_LINES = 300, 3, 400
MAX_FUNCTION_LINES = 50
LONG_FUNCTIONS_ALLOWED = {"beam_search.beam_search"}  # one numbered algorithm, kept in one piece


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str) -> set[str]:
    """The package modules that `path` imports, at the top or inside functions.

    `from X import y` counts as importing the module X.y when there is one, else X itself.
    """
    known, is_package = modules(), path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = name.split(".") if is_package and name != "__init__" else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("minitransformer"):
            target = node.module.removeprefix("minitransformer").strip(".")
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("minitransformer").strip(".") for a in node.names
                      if a.name.startswith("minitransformer")}
            continue
        else:
            continue
        for alias in node.names:
            submodule = f"{target}.{alias.name}".strip(".")
            found.add(submodule if submodule in known else target)
    return {f for f in found if f in known and f and f != name}


def level(name: str) -> int:
    top = name.split(".")[0] if name else "__init__"
    for i, names in enumerate(LEVELS):
        if top in names:
            return i
    raise AssertionError(f"module {name!r} has no level in LEVELS: add it where it belongs in the course")


def graph() -> dict[str, set[str]]:
    return {name or "__init__": {i or "__init__" for i in imports(path, name or "__init__")}
            for name, path in modules().items()}


def test_every_import_goes_down_the_course():
    upward = [f"{a} (level {level(a)}) imports {b} (level {level(b)})"
              for a, targets in graph().items() for b in targets if level(b) > level(a)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    edges, state, cycles = graph(), {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def module_sizes() -> dict[str, int]:
    return {name or "__init__": len(path.read_text().splitlines()) for name, path in modules().items()}


def function_sizes() -> dict[str, int]:
    sizes = {}
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for child in node.body:
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        child.qualname = f"{node.name}.{child.name}"
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                key = f"{name or '__init__'}.{getattr(node, 'qualname', node.name)}"
                sizes[key] = node.end_lineno - first + 1
    return sizes


def test_modules_are_small():
    sizes = module_sizes()
    over = {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES}
    assert len(over) <= ALLOWED_OVER, f"more than {ALLOWED_OVER} modules over {MAX_MODULE_LINES} lines: {over}"
    assert all(n <= HARD_MODULE_LINES for n in over.values()), over


def test_functions_are_small():
    long = {f: n for f, n in function_sizes().items() if n > MAX_FUNCTION_LINES and f not in LONG_FUNCTIONS_ALLOWED}
    assert not long, long


def test_the_measurement_sees_the_package():
    """Guards the tests above against measuring nothing: the graph and the sizes cover real modules."""
    edges, sizes = graph(), function_sizes()
    assert "models.gpt" in edges and "layers" in edges["models.gpt"]
    assert sizes["beam_search.beam_search"] > MAX_FUNCTION_LINES
    assert len(module_sizes()) > 30


if __name__ == "__main__":
    print("| module | lines |\n|---|---:|")
    for m, n in sorted(module_sizes().items(), key=lambda kv: -kv[1]):
        print(f"| `{m}` | {n} |")
    print("\nlongest functions:")
    for f, n in sorted(function_sizes().items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {n:4d}  {f}")
    print("\nimports by level:")
    for a, targets in sorted(graph().items(), key=lambda kv: (level(kv[0]), kv[0])):
        print(f"  {a} -> {', '.join(sorted(targets)) or '-'}")
