"""clarec.contrastive holds building blocks only: it imports nothing from the layers that use it."""

from __future__ import annotations

import ast
from pathlib import Path

import clarec.contrastive

FORBIDDEN = ("clarec.data", "clarec.config", "clarec.text", "clarec.models", "clarec.experiment")
PACKAGE = Path(clarec.contrastive.__file__).parent


def _imported_modules(path: Path) -> list[str]:
    """Every module an ``import`` or ``from ... import`` names in ``path`` (at any depth, relative
    imports resolved against clarec.contrastive)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = "clarec.contrastive".rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def test_contrastive_imports_no_higher_layer():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 5
    bad = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in files
        for name in _imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, sorted(bad)


def test_the_scan_sees_imports_at_any_depth(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text(
        "import clarec.text.encoder\n"
        "def f():\n    from clarec.data.dataset import Dataset\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from clarec import config\n"
        "from .. import models\n"
    )
    names = _imported_modules(sample)
    assert "clarec.text.encoder" in names and "clarec.data.dataset" in names
    assert "clarec.config" in names and "clarec.models" in names


def test_the_losses_namespace_holds_every_loss():
    import clarec.contrastive as cl
    from clarec.contrastive import losses

    named = {n for n in cl.__all__ if n.endswith("Loss") or n in ("BYOL", "LMAlignment")}
    assert named and named <= set(losses.__all__)
