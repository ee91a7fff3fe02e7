"""The package's shape, checked from the code: the import-linter contract (pyproject.toml) reports an import that
breaks the layering, and no module or function of src grows past the size a reader takes in at once."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "medclass"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the project at `project` (its pyproject.toml and src/), without a cache."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    return subprocess.run([sys.executable, "-c", code], cwd=project, env={"PYTHONPATH": str(project / "src")},
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("layers")
    shutil.copy(ROOT / "pyproject.toml", copy)
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return copy


@pytest.mark.parametrize("module, wrong_import, reported", [
    ("core/heads.py", "import medclass.inference.predictor", "medclass.core is not allowed to import medclass.inference"),
    ("inference/predictor.py", "from medclass.evaluation import metrics",
     "medclass.inference is not allowed to import medclass.evaluation"),
    ("explain/boxes.py", "import medclass.export", "medclass.explain is not allowed to import medclass.export"),
    ("data/base.py", "import medclass.data.audit", "No cycles are allowed in medclass.data"),
])
def test_an_import_against_the_layering_is_reported(project_copy, module, wrong_import, reported):
    path = project_copy / "src" / "medclass" / module
    original = path.read_text()
    path.write_text(original + f"\n{wrong_import}  # deliberately wrong\n")
    try:
        result = lint_imports(project_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    assert reported in result.stdout, result.stdout


def test_the_contract_holds_on_the_code_as_it_is(project_copy):
    result = lint_imports(project_copy)
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


def test_no_module_or_function_outgrows_a_reading():
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        where = path.relative_to(SRC.parent)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{where}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, "over the size limits (modules 400 lines, functions 60):\n" + "\n".join(too_long)


def test_the_command_line_starts_without_the_heavy_libraries():
    """Every command's options (train's built from TrainConfig, the backends' and explanation methods' registries)
    are read without PyTorch, Lightning, timm or the runtimes: they load when a command runs."""
    heavy = ("torch", "lightning", "timm", "pytorch_grad_cam", "cv2", "onnxruntime", "onnx", "ncnn")
    code = ("import sys, json; from typer.testing import CliRunner; from medclass.cli import app; "
            "codes = [CliRunner().invoke(app, args).exit_code for args in (['--help'], ['train', '--help'], "
            "['export', '--help'], ['serve', '--help'])]; "
            f"print(json.dumps([codes, [m for m in {heavy!r} if m in sys.modules]]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    codes, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [0, 0, 0, 0] and loaded == []
