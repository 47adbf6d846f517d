"""The wheel carries every subpackage and the presets (pyproject.toml lists the packages by hand
because the presets folder sits outside the package)."""
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_subpackage():
    block = re.search(r"^packages = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S).group(1)
    listed = set(re.findall(r'"([\w.]+)"', block))
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "autodropout").rglob("__init__.py")}
    assert found | {"autodropout.experiments"} == listed


def test_wheel_contains_the_presets_and_the_shipped_patterns(tmp_path):
    # Built from a copy, so the checkout gets no build/ or egg-info folders.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "autodropout", "experiments"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("autodropout-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = {f"autodropout/experiments/{p.name}" for p in (ROOT / "experiments").glob("*.yaml")}
    assert presets and presets <= names
    shipped = {f"autodropout/patterns/{p.name}" for p in (ROOT / "autodropout" / "patterns").glob("*.json")}
    assert shipped and shipped <= names  # the learned patterns ship as package data
    assert "autodropout/runs/trial.py" in names and "autodropout/py.typed" in names
