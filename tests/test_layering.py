"""The package's dependency direction (docs/architecture.md) and size limits, read from the source.

Every import statement of ``autodropout/`` is parsed with ``ast`` (function-level ones included, so a
lazy import cannot hide an upward arrow) and checked against the layer table below.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "autodropout"

#: Layers, lowest first: one row per folder of ``autodropout/`` (docs/architecture.md). A module may
#: import its own layer and the layers below it, never above.
LAYERS: list[tuple[str, ...]] = [
    ("autodropout.core",),
    ("autodropout.search_spaces", "autodropout.patterns"),
    # The searchers sit below the experiment config, which checks ``search.controller`` and its
    # settings against their registry (autodropout.controller.searchers).
    ("autodropout.regularizers", "autodropout.controller"),
    ("autodropout.models", "autodropout.data", "autodropout.viz", "autodropout.apply"),
    ("autodropout.tasks",),
    ("autodropout.runs",),
    ("autodropout.tune",),
    ("autodropout.commands", "autodropout.study", "autodropout"),
]
#: The only modules that may import Ray (docs/architecture.md, "What the Ray side relies on"): the Ray
#: folder, and the searcher interface (a subclass of Ray's ``Searcher``), which stays with the
#: controller so that a searcher is one file of ``controller/searchers/``.
RAY_MODULES = ("autodropout.tune", "autodropout.controller.searcher")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer of the longest matching prefix in :data:`LAYERS`."""
    best, depth = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = index, prefix.count(".")
    assert best is not None, f"{module} is in no layer of tests/test_layering.py"
    return best


def imports(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """``(line, imported module)`` of every import in ``path`` (the module ``module``, by default the
    one its location names), relative imports resolved."""
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from autodropout import viz` imports the submodule viz.
            names = [f"{base}.{a.name}" for a in node.names] if base == "autodropout" else [base]
            found += [(node.lineno, name) for name in names]
    return found


def upward_imports(path: Path, module: str | None = None) -> list[str]:
    """Each import of ``path`` that reaches a higher layer than its own, as ``file:line message``."""
    source = module or module_name(path)
    return [f"{path.name}:{line} {source} (layer {layer_of(source)}) imports {target} (layer {layer_of(target)})"
            for line, target in imports(path, source)
            if target.startswith("autodropout.") and layer_of(target) > layer_of(source)]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in SOURCES:
        layer_of(module_name(path))


def test_nothing_imports_upward():
    violations = [v for path in SOURCES for v in upward_imports(path)]
    assert not violations, "upward imports:\n" + "\n".join(violations)


def test_the_check_sees_lazy_and_relative_upward_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import torch\nfrom . import loop\n\n\ndef f():\n    from ..tune import search\n"
                     "    from autodropout import study\n")
    found = upward_imports(probe, "autodropout.tasks.probe")
    assert [v.split(" imports ")[1].split(" ")[0] for v in found] == ["autodropout.tune", "autodropout.study"]


def test_search_spaces_import_only_the_foundation():
    allowed = LAYERS[0] + ("autodropout.search_spaces",)
    for path in (PACKAGE / "search_spaces").glob("*.py"):
        for line, target in imports(path):
            if target.startswith("autodropout"):
                assert target.startswith(allowed), f"{path.name}:{line} imports {target}"


def test_every_folder_is_a_row_and_nothing_sits_loose():
    """The layer table names each folder of the package once, and the package root holds only ``__init__``."""
    folders = {f"autodropout.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    rows = [prefix for row in LAYERS for prefix in row if prefix != "autodropout"]
    assert sorted(rows) == sorted(folders) and len(rows) == len(set(rows))
    assert [p.name for p in PACKAGE.glob("*.py")] == ["__init__.py"]


def test_only_the_ray_folder_and_the_searcher_interface_import_ray():
    for path in SOURCES:
        source = module_name(path)
        for line, target in imports(path):
            if target.split(".")[0] == "ray":
                assert source.startswith(RAY_MODULES), f"{source}:{line} imports {target}"


MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_files_and_functions_stay_small(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_FILE_LINES, f"{path.name}: {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.lineno} {node.name} has {length} lines"


def test_every_public_name_of_the_package_resolves():
    """``autodropout.NAME`` for each name of ``__all__`` (the folders moved; the names did not)."""
    import autodropout as ad

    for name in ad.__all__:
        assert getattr(ad, name) is not None, name
    assert ad.workers is ad.tune and ad.errors.ConfigError.__module__ == "autodropout.core.errors"
    assert ad.apply_patterns is ad.apply.apply_patterns and ad.experiment.ExperimentConfig
