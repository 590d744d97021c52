"""What the torch extra must not do to the rest of secmark.

The core package must import without torch (an arbiter checking a remote
endpoint installs secmark without it), and no module may unpickle: a model
file or trigger set from anyone else would run code when loaded.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import secmark

PACKAGE = Path(secmark.__file__).resolve().parent
# Only these may import torch at module level (the worked examples train
# models); nothing outside them may import them, except lazily.
TORCH_MODULES = (
    "secmark.embed",
    "secmark.evaluate",
    "secmark.examples.",
    "secmark.models.torch_module",
)
PICKLING_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve"}


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_core_imports_without_torch() -> None:
    script = f"""
import importlib, pkgutil, sys
sys.modules["torch"] = None  # any "import torch" now raises ImportError
import secmark, secmark.crypto, secmark.messages, secmark.examples
skipped = {TORCH_MODULES!r}
for module in pkgutil.walk_packages(secmark.__path__, "secmark."):
    if not module.name.startswith(skipped):
        importlib.import_module(module.name)
try:
    import secmark.embed
except ImportError as error:
    assert "secmark[torch]" in str(error), error
else:
    raise AssertionError("secmark.embed imported without torch")
assert sys.modules["torch"] is None
"""
    environment = dict(os.environ, PYTHONPATH=str(PACKAGE.parent))
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def calls_torch_load_safely(node: ast.Attribute, parents: dict[ast.AST, ast.AST]) -> bool:
    call = parents.get(node)
    return (
        isinstance(call, ast.Call)
        and call.func is node
        and any(
            keyword.arg == "weights_only"
            and isinstance(keyword.value, ast.Constant)
            and keyword.value.value is True
            for keyword in call.keywords
        )
    )


def torch_load_offences(source: str) -> list[int]:
    """Lines that may unpickle through torch: torch.save anywhere, torch.load
    anywhere but a call with weights_only=True, importing either by name."""
    tree = ast.parse(source)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "torch":
            lines += [node.lineno for alias in node.names if alias.name in ("load", "save")]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "torch"
            and (
                node.attr == "save"
                or (node.attr == "load" and not calls_torch_load_safely(node, parents))
            )
        ):
            lines.append(node.lineno)
    return sorted(lines)


def pickle_offences(source: str) -> list[int]:
    """Lines that import or use a pickling module, or let numpy unpickle."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.stmt, ast.expr, ast.keyword)):
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module.split(".")[0]]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names = [node.value.id]  # pickle.loads(...) reached without an import
        if PICKLING_MODULES.intersection(names):
            lines.append(node.lineno)
        if (
            isinstance(node, ast.keyword)
            and node.arg == "allow_pickle"
            and not (isinstance(node.value, ast.Constant) and node.value.value is False)
        ):
            lines.append(node.lineno)
    return sorted(lines)


def test_torch_load_is_only_called_with_weights_only() -> None:
    offences = {
        path: torch_load_offences(path.read_text(encoding="utf-8")) for path in source_files()
    }
    assert not {path: lines for path, lines in offences.items() if lines}


def test_nothing_imports_pickle() -> None:
    offences = {path: pickle_offences(path.read_text(encoding="utf-8")) for path in source_files()}
    assert not {path: lines for path, lines in offences.items() if lines}


def test_the_checks_catch_what_they_look_for() -> None:
    assert torch_load_offences(
        "import torch\n"
        "torch.load(p, weights_only=True)\n"
        "torch.load(p)\n"
        "torch.load(p, weights_only=False)\n"
        "loader = torch.load\n"
        "torch.save(x, p)\n"
        "from torch import load\n"
    ) == [3, 4, 5, 6, 7]
    assert pickle_offences(
        '"""Never pickle. Not with pickle."""\n'
        "import pickle\n"
        "from dill import loads\n"
        "pickle.loads(b'')\n"
        "np.load(p, allow_pickle=True)\n"
        "np.load(p, allow_pickle=False)\n"
    ) == [2, 3, 4, 5]
