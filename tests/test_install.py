r"""The installed package: a wheel built from the checkout carries ``conf/``, and its
``botorch-archsearch`` command runs from any directory."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.skipif(not all(importlib.util.find_spec(name) for name in ("pip", "setuptools")),
                       reason="needs pip and setuptools"),
    pytest.mark.slow,  # pip builds and installs a wheel; the installed command runs in subprocesses
]


def _pip(*args: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "--disable-pip-version-check"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    r"""The package built as a wheel (from a copy of the checkout, so no build files land in it) and
    installed with ``pip install --target``; returns the target folder."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("botorch_archsearch", "conf"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _pip("wheel", "--no-build-isolation", "-w", str(tmp / "wheel"), str(source), cwd=tmp)
    (wheel,) = (tmp / "wheel").glob("botorch_archsearch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.relative_to(ROOT)) for p in (ROOT / "botorch_archsearch").rglob("__init__.py")}
    assert packages <= names, f"not in [tool.setuptools] packages: {sorted(packages - names)}"
    configs = {"botorch_archsearch/" + str(p.relative_to(ROOT)) for p in (ROOT / "conf").rglob("*.yaml")}
    assert configs <= names, f"configs missing from the wheel: {sorted(configs - names)}"
    _pip("install", "--target", str(tmp / "target"), str(wheel), cwd=tmp)
    return tmp / "target"


def _command(target: Path, args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(target / "bin" / "botorch-archsearch"), *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def test_the_installed_command_runs_from_another_directory(installed, tmp_path, cli_env, tiny_cli_args):
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(cli_env(work), PYTHONPATH=str(installed))  # the installed copy, not the checkout's editable one
    code = "import botorch_archsearch; print(botorch_archsearch.__file__)"
    where = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=work,
                           check=True).stdout.strip()
    assert Path(where) == installed / "botorch_archsearch" / "__init__.py"

    out = _command(installed, ["--help"], work, env)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "== Configuration groups ==" in out.stdout and "tiny_resnet18" in out.stdout  # conf/ was found

    args = [*tiny_cli_args, "search.steps=2", "search.num_kernels=2", "hydra.run.dir=run"]
    # as a user's run: a worker process, the numerics guard
    out = _command(installed, [*args, "evaluation.isolation=process", "evaluation.channels_last=true"], work, env)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    run = work / "run"
    assert len((run / "journal.jsonl").read_text().splitlines()) == 4 and (run / "report.md").is_file()
    hydra = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]
    sources = [s["path"] for s in hydra["runtime"]["config_sources"] if s["provider"] == "main"]
    assert sources == [str(installed / "botorch_archsearch" / "conf")]  # the configs shipped in the package
