"""Where things live: no import cycles between the project's modules, and the stages
depend on each other only in the allowed directions (the core `eiad/` is a leaf)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("eiad", "edge", "train", "export", "benchmarks", "commands")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _by_name(tree: ast.AST, modules: dict) -> list[str]:
    """Modules a file loads by name: in a file that calls `import_module`, every string
    literal naming a project module (a registry of stages or builders counts as importing them)."""
    calls = any(
        isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        for node in ast.walk(tree)
    )
    if not calls:
        return []
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules
    ]


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in the file, lazy imports and
    `importlib.import_module` by a literal name too)."""
    modules = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets.update(target for target in _by_name(tree, modules) if target != name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                candidates = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for candidate in candidates:
                # the deepest project module the import names ("a.b.c" -> a.b.c, else a.b)
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_reports_a_cycle_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_between_project_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def imported_packages(package: str) -> dict[str, set[str]]:
    """module of `package` -> the top-level names it imports that are project folders or tests."""
    wanted = set(PACKAGES) | {"tests"}
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tops = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                tops.add(node.module.split(".")[0])
        found[_module_name(path)] = (tops & wanted) - {package}
    return found


# what each folder may import besides itself (the core eiad/ is a leaf)
ALLOWED = {
    "eiad": set(),
    "edge": {"eiad"},
    "export": {"eiad", "edge"},  # edge: the export checks the artifact with the edge's own runners
    "train": {"eiad"},
    "benchmarks": {"eiad", "edge", "export"},
    "commands": {"eiad", "edge", "train", "export", "benchmarks"},
}
# benchmarks that measure training itself may import train/
TRAINING_BENCHMARKS = {"benchmarks.ablation", "benchmarks.train_tiny"}


def test_each_stage_imports_only_what_it_may():
    wrong = []
    for package, allowed in ALLOWED.items():
        for module, tops in imported_packages(package).items():
            extra = tops - allowed - ({"train"} if module in TRAINING_BENCHMARKS else set())
            if extra:
                wrong.append(f"{module} imports {sorted(extra)}")
    assert not wrong, "\n".join(wrong)
