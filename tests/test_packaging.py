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
        copy(ROOT / name, source / name,
             **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("autodropout-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = {f"autodropout/experiments/{p.name}" for p in (ROOT / "experiments").glob("*.yaml")}
    assert presets and presets <= names
    shipped = {f"autodropout/patterns/{p.name}" for p in (ROOT / "autodropout" / "patterns").glob("*.json")}
    assert shipped and shipped <= names  # the learned patterns ship as package data
    assert "autodropout/runs/trial.py" in names and "autodropout/py.typed" in names


def dockerfile_context(dockerfile: Path, target: Path) -> Path:
    """Lay out in ``target`` what ``dockerfile``'s COPY lines put in its WORKDIR (sources relative to
    the repository root, the build context; a folder's contents go into the destination, as in Docker)."""
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if not words or words[0].upper() != "COPY":
            continue
        *sources, dest = [w for w in words[1:] if not w.startswith("--")]
        assert not Path(dest).is_absolute(), f"{line!r}: the test expects destinations in WORKDIR"
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, target / dest, dirs_exist_ok=True)
            else:
                into = target / dest / src.name if dest.endswith("/") or len(sources) > 1 else target / dest
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, into)
    return target


def test_the_docker_image_copies_everything_the_install_needs(tmp_path):
    dockerfile = ROOT / "docker" / "Dockerfile"
    assert re.search(r"^RUN .*pip install [^&]*\.$", dockerfile.read_text(), re.M), "the image installs `.`"
    source = dockerfile_context(dockerfile, tmp_path / "workdir")
    # No build isolation: setuptools comes from this environment, so no network is needed.
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set(zipfile.ZipFile(next(tmp_path.glob("autodropout-*.whl"))).namelist())
    presets = {f"autodropout/experiments/{p.name}" for p in (ROOT / "experiments").glob("*.yaml")}
    shipped = {f"autodropout/patterns/{p.name}" for p in (ROOT / "autodropout" / "patterns").glob("*.json")}
    assert presets and presets <= names and shipped and shipped <= names
