"""The packages depend in one direction: app → demos → {models, nndl_data}; training, evaluation → {models, nndl_data}.

A Space serves the app without the training code, and a training change must never break a tab, so nothing outside
`training/`, `evaluation/` and `demos/` imports them (their own entry points, benchmarks and tests may). Read from
the source, so the rule cannot rot silently.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package → the top-level packages of this repository it may import
ALLOWED = {
    "models": {"models"},
    "nndl_data": {"models", "nndl_data"},
    "demos": {"models", "nndl_data", "demos"},
    "training": {"models", "nndl_data", "training"},
    "evaluation": {"models", "nndl_data", "evaluation"},
    "app.py": {"models", "nndl_data", "demos"},
}
OURS = {"models", "nndl_data", "demos", "training", "evaluation", "benchmarks", "scripts", "tests", "app"}


def imported_packages(path: Path) -> set[str]:
    """The top-level names of every import in a file, including imports inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & OURS


def sources(package: str) -> list[Path]:
    return [ROOT / package] if package.endswith(".py") else sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package):
    offending = {str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package]) for path in sources(package)}
    offending = {path: names for path, names in offending.items() if names}
    assert not offending, f"{package} may import only {sorted(ALLOWED[package])}; these files import more: {offending}"


def test_the_check_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("import os\n\ndef late():\n    from training.common import parse_config\n    import demos.cards\n")
    assert imported_packages(source) == {"training", "demos"}
