"""The direction of imports: the service imports search_spaces and trainables, never the other way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path) -> set[str]:
    """The top-level packages a module imports, those for type hints (``if TYPE_CHECKING:``) included."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize(
    "package, forbidden", [("search_spaces", {"tune_service"}), ("trainables", {"tune_service", "search_spaces"})]
)
def test_lower_packages_never_import_the_ones_above(package, forbidden):
    """Not even for type hints: a strategy's contract takes the input type search_spaces defines."""
    offenders = {
        str(p.relative_to(ROOT)): imports(p) & forbidden
        for p in (ROOT / package).rglob("*.py")
        if imports(p) & forbidden
    }
    assert not offenders, offenders


def test_a_strategy_imports_without_the_service_or_torch():
    code = (
        "import sys, search_spaces.grid, search_spaces.bayesian, search_spaces.pbt, trainables.manifest; "
        "print(sorted(m for m in ('tune_service', 'torch', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def trainables_modules(path: Path) -> set[str]:
    """The modules of trainables a module imports (``from trainables.X import ...``, ``import trainables.X``)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + (
                [f"{node.module}.{a.name}" for a in node.names] if node.module == "trainables" else []
            )
        out |= {n for n in names if n.startswith("trainables.") or n == "trainables"}
    return out


def test_the_service_enters_trainables_through_one_door():
    """The service imports the task layer through trainables.api alone: the registry, the contract, the calls."""
    used = {m for p in (ROOT / "tune_service").rglob("*.py") for m in trainables_modules(p)}
    assert used == {"trainables.api"}


def test_the_door_opens_without_torch():
    """The spec imports the registry through the door, and the spec never imports torch; the door's torch-bound
    names load when asked for, and are the objects their modules define."""
    code = (
        "import sys, trainables.api as api; "
        "before = sorted(m for m in ('torch', 'numpy', 'mlflow') if m in sys.modules); "
        "from trainables import loop, serving; "
        "print(before, api.checkpoint_model is loop.checkpoint_model, api.save_served_model is serving.save, "
        "'freeze_lowest_layers' in dir(api))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] True True True"


def test_the_door_names_what_it_lacks():
    import trainables.api as api

    with pytest.raises(AttributeError, match="has no attribute 'fit_everything'"):
        api.fit_everything  # noqa: B018
