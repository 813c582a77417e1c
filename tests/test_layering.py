"""The import graph of wna_gui has layers and no circles (docs/architecture.md, "Layers").

The graph is read from the source with ``ast``, every ``import`` counted, also
those inside functions (a lazy import is still a dependency); imports under
``if TYPE_CHECKING:`` are not, since they never run. From the bottom up:

- the floor and the experiments (``wna_gui/core`` but the two modules below),
  which never import the app, the figures, the CLI or the registry;
- ``core/registry.py`` (the list of experiments) and ``core/runs.py`` (what reads
  it: inputs, exports, kinds by name for sessions);
- ``wna_gui/figures`` (headless drawing of the core's snapshots), then the app and the CLI.

An experiment module (one declaring ``EXPERIMENT``) imports neither ``core.runs``
nor another experiment's private names. Artefacts name their figure writers by
reference (core/experiment.py, resolve_reference), which tests/test_contract.py resolves.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "wna_gui"
ABOVE_EXPERIMENTS = {"wna_gui.core.registry", "wna_gui.core.runs"}
NOT_FOR_CORE = ("wna_gui.app", "wna_gui.figures", "wna_gui.cli", "wna_gui.core.registry")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every import statement, at any depth, except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node):
            children = node.orelse
        stack.extend(children)


def _known(name: str) -> str | None:
    """The project module ``name`` is, or lies in (``wna_gui.core.noise.X`` → ``wna_gui.core.noise``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported project module, names taken from it, line) for every import in ``module``."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(target, [], node.lineno) for a in node.names if (target := _known(a.name))]
            continue
        base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
            if node.level else node.module
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in MODULES:  # `from . import sta`: the module itself
                found.append((submodule, [], node.lineno))
            elif target := _known(base):
                found.append((target, [alias.name], node.lineno))
    return [(target, names, line) for target, names, line in found if target != module]


GRAPH = {module: _imports(module) for module in MODULES}


def _experiment_modules() -> set[str]:
    """Core modules that declare an experiment (a module-level ``EXPERIMENT = ...``)."""
    found = set()
    for module, path in MODULES.items():
        if module.startswith("wna_gui.core.") and module not in ABOVE_EXPERIMENTS:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if any(isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "EXPERIMENT" for t in node.targets)
                   for node in tree.body):
                found.add(module)
    return found


def _circles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    edges = {module: sorted({target for target, _, _ in imports}) for module, imports in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in edges[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in edges:
        if module not in index:
            visit(module)
    return circles


def test_the_walk_sees_the_whole_package_and_lazy_imports():
    assert {"wna_gui.cli", "wna_gui.core.experiment", "wna_gui.core.registry", "wna_gui.core.runs",
            "wna_gui.figures.maps", "wna_gui.app.main_window"} <= set(MODULES)
    assert len(_experiment_modules()) >= 12
    # session.py reads the kinds lazily, inside functions: the walk must see that edge
    assert "wna_gui.core.runs" in {target for target, _, _ in GRAPH["wna_gui.core.session"]}
    assert "wna_gui.core.registry" in {target for target, _, _ in GRAPH["wna_gui.core.runs"]}


def test_no_import_circles():
    circles = _circles()
    assert circles == [], "import circles: " + "; ".join(" ↔ ".join(c) for c in circles)


def test_core_never_imports_app_figures_cli_or_registry():
    back = [f"{module}:{line} imports {target}" for module, imports in GRAPH.items()
            if module.startswith("wna_gui.core") and module not in ABOVE_EXPERIMENTS
            for target, _, line in imports if target.startswith(NOT_FOR_CORE)]
    assert back == []


def test_experiments_never_import_runs():
    experiments = _experiment_modules()
    bad = [f"{module}:{line} imports {target}" for module in sorted(experiments)
           for target, _, line in GRAPH[module] if target in ABOVE_EXPERIMENTS]
    assert bad == []


def test_experiments_borrow_no_private_names_from_each_other():
    experiments = _experiment_modules()
    borrowed = [f"{module} imports {target}.{name}" for module in sorted(experiments)
                for target, names, _ in GRAPH[module] if target in experiments for name in names
                if name.startswith("_")]
    assert borrowed == [], "use the other experiment's public API (its spec, or a name without _)"


# Experiments that build on another one, and why: the only imports from one experiment module into another.
COMPOSITIONS = {
    ("backdoor", "classification"): "maps the clean and poisoned networks with classification-image runs",
    ("bias_attack", "classification"): "reads a classification-image run's maps (its declared input)",
    ("human_observer", "two_class"): "the two-class yes/no task with a person answering: the same Ahumada image",
    ("psychometric_grid", "psychometric"): "one psychometric run per cell of the grid",
    ("sample_complexity", "classification"): "one classification-image run per stimulus type",
}


def test_experiments_import_other_experiments_only_where_they_compose_them():
    experiments = _experiment_modules()
    short = {module: module.rpartition(".")[2] for module in experiments}
    found = {(short[module], short[target]) for module in experiments for target, _, _ in GRAPH[module]
             if target in experiments}
    assert found - set(COMPOSITIONS) == set(), "import the floor (core/state, images, stats, noise_base…), or " \
        "declare the composition here"
    assert set(COMPOSITIONS) - found == set(), "a declared composition that no longer happens"


def test_figures_never_import_the_app():
    back = [f"{module}:{line} imports {target}" for module, imports in GRAPH.items()
            if module.startswith("wna_gui.figures") for target, _, line in imports
            if target.startswith(("wna_gui.app", "wna_gui.cli"))]
    assert back == []
