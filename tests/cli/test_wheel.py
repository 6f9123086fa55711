"""The wheel claims one top-level name, ``saegold``, and works from a fresh virtual environment.

The repository keeps its fixed layout (top-level ``store/``, ``engine/``, ``tui/``); ``saegold/``
holds symbolic links to them, so an installed saegold never claims (or overwrites) a generic
``store``, ``engine`` or ``tui`` in site-packages."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import saegold

REPO = Path(__file__).resolve().parents[2]
LAYOUT = ("store", "engine", "tui")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    str(REPO), "-w", str(out)], check=True, capture_output=True, text=True)
    (whl,) = out.glob("saegold-*.whl")
    return whl


def test_wheel_claims_only_saegold_and_ships_every_source_file(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"saegold", wheel.name.split("-py3")[0] + ".dist-info"}, sorted(top)
    tracked = subprocess.run(["git", "ls-files", *LAYOUT], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    shipped = [p for p in tracked if p.endswith((".py", ".tcss", ".txt", ".json"))]
    assert shipped, "git ls-files found no sources"
    missing = [p for p in shipped if f"saegold/{p}" not in names]
    assert not missing, f"not in the wheel: {missing}"


def test_fresh_venv_runs_saegold_help(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, text=True)
    # Its dependencies (no index here) come from this environment's site-packages, appended by a
    # path line: that directory's own .pth files (this checkout's editable install) are not run.
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "saegold-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # Run outside the repository, so the checkout's folders cannot be picked up from the cwd.
    r = subprocess.run([str(env_dir / "bin" / "saegold"), "--help"], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: saegold")
    probe = ("import importlib.util, saegold; print(saegold.__file__); "
             "print([n for n in ('store', 'engine', 'tui') if importlib.util.find_spec(n)])")
    r = subprocess.run([str(py), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    where, generic = r.stdout.splitlines()
    assert Path(where).resolve().is_relative_to(env_dir.resolve()), where
    assert generic == "[]", f"the fresh environment can import generic names: {generic}"


def test_every_module_imports_under_saegold_only() -> None:
    """A leftover ``from store import ...`` would load a second copy of a module under its generic
    name (two ``Project`` classes, two error hierarchies); every module imports, and none does."""
    probe = """
import importlib, pkgutil, sys
import saegold
for m in pkgutil.walk_packages(saegold.__path__, "saegold."):
    importlib.import_module(m.name)
print(sorted(n for n in sys.modules if n.split(".")[0] in ("store", "engine", "tui")))
"""
    r = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout[-2000:]
