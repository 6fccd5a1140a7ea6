"""physagent installs as one namespace: a user's own `tools/` or `agent/` package never shadows ours,
the layers import only downwards, and the doctests in module docstrings run."""

from __future__ import annotations

import ast
import doctest
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import physagent
from physagent.app.cli import app

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
LAYERS = ("tools", "knowledge", "agent", "app", "evals", "integrations")


def _source_dir(package: str) -> Path:
    """Where the folder of ``physagent.<...>`` lies in the repository (the package-dir mapping)."""
    parts = package.split(".")
    for depth in range(len(parts), 0, -1):
        root = PYPROJECT["package-dir"].get(".".join(parts[:depth]))
        if root is not None:
            return REPO / root / Path(*parts[depth:])
    raise KeyError(package)


def _modules() -> dict[str, Path]:
    """Every module of the installed namespace → its source file."""
    found = {}
    for package in PYPROJECT["packages"]:
        for path in _source_dir(package).glob("*.py"):
            name = package if path.name == "__init__.py" else f"{package}.{path.stem}"
            found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every ``physagent.*`` module a file imports, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("physagent.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("physagent"):
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_package_folder_is_installed() -> None:
    """Each folder with an ``__init__.py`` under the mapped roots is listed in pyproject's packages."""
    listed = set(PYPROJECT["packages"])
    for name, root in PYPROJECT["package-dir"].items():
        for init in (REPO / root).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / root).parts
            assert ".".join((name, *relative)) in listed, f"{init.parent} is not in pyproject's packages"


def test_layers_import_only_downwards() -> None:
    """tools/ and knowledge/ never import agent/ or app/; agent/ never imports app/; no package cycle."""
    forbidden = {"tools": {"agent", "app", "evals", "integrations"}, "knowledge": {"tools", "agent", "app", "evals"},
                 "agent": {"app", "evals", "integrations"}}
    edges: set[tuple[str, str]] = set()
    for module, path in _modules().items():
        source = _layer(module)
        for target in filter(None, map(_layer, _imports(path))):
            assert target not in forbidden.get(source or "", ()), f"{module} imports physagent.{target}"
            if source and target != source:
                edges.add((source, target))
    assert not any((b, a) in edges for a, b in edges), f"a cycle between layers: {sorted(edges)}"


def test_no_module_imports_another_layers_private_modules() -> None:
    """Across layers only the public surface is used (no ``physagent.tools._x`` from app/ or agent/)."""
    for module, path in _modules().items():
        for imported in _imports(path):
            private = any(part.startswith("_") for part in imported.split(".")[2:])
            assert not (private and _layer(imported) != _layer(module)), f"{module} imports {imported}"


def _module_graph() -> dict[str, set[str]]:
    """Module-level imports only (what runs at import time) between physagent modules."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = set()
        for node in top:
            module_names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names])
            names |= {n for n in module_names if n in modules and n != module}
        graph[module] = names
    return graph


def test_no_import_cycle_between_modules() -> None:
    """No module imports (at import time) a module that imports it back, except a package's own __init__."""
    graph = _module_graph()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and not seen.add(nxt) and reaches(nxt, goal, seen)):
                return True
        return False

    # `physagent.tools.x` importing its parent package's __init__ is how packages expose their surface;
    # only cycles through non-parent modules are real.
    for module, targets in graph.items():
        for target in targets:
            if module.startswith(target + "."):
                continue
            assert not reaches(target, module, {target}) or target.startswith(module + "."), \
                f"import cycle: {module} -> {target} -> ... -> {module}"


def _doctest_modules() -> list[str]:
    return sorted(name for name, path in _modules().items() if ">>>" in path.read_text())


@pytest.mark.parametrize("module_name", _doctest_modules())
def test_module_docstring_examples_run(module_name: str) -> None:
    """Every ``>>>`` example in a module docstring runs and prints what it shows (SKIP only needs a model)."""
    module = importlib.import_module(module_name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = doctest.DocTestFinder().find(module, module_name)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} doctest failure(s) in {module_name} (output above)"
    assert sum(len(t.examples) for t in tests) > 0


def test_version_and_home_from_the_environment(tmp_path: Path) -> None:
    """`physagent --version` prints the installed version; --home falls back to $PHYSAGENT_HOME."""
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"physagent {physagent.__version__}"
    assert physagent.__version__[0].isdigit()
    home = tmp_path / "from-env"
    call = ["tools", "call", "generate_events", "--arg", "process=drell_yan_mumu", "--arg", "n_events=20",
            "--arg", "mpi=false", "--json"]
    result = CliRunner().invoke(app, call, env={"PHYSAGENT_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert len(list((home / "artifacts").iterdir())) == 1


def _fresh_venv_with_wheel(tmp_path: Path) -> Path:
    """Build a wheel from the tracked files, install it (no editable path) into a new venv whose
    dependencies come from this environment's site-packages (added as a path, not as a site dir)."""
    source = tmp_path / "source"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
                   check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", "--no-index",
                    str(next(wheels.glob("physagent-*.whl")))], check=True)
    ours = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "torch").exists())
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "zz-dependencies.pth").write_text(f"{ours}\n")  # a path line: the editable hook there stays off
    return venv


@pytest.mark.slow
def test_wheel_install_is_not_shadowed_by_a_users_own_tools_and_agent_packages(tmp_path: Path) -> None:
    """From an analysis folder holding its own `tools/` and `agent/`, the installed wheel still works."""
    venv = _fresh_venv_with_wheel(tmp_path)
    analysis = tmp_path / "analysis"
    for package in ("tools", "agent"):
        (analysis / package).mkdir(parents=True)
        (analysis / package / "__init__.py").write_text(f"OWNER = 'user {package}'\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PHYSAGENT_HOME")}
    env |= {"PHYSAGENT_HOME": str(tmp_path / "home"), "PATH": f"{venv / 'bin'}:{env['PATH']}"}

    def run(*command: str) -> str:
        done = subprocess.run(command, cwd=analysis, env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    listing = run(str(venv / "bin" / "physagent"), "tools", "list")
    assert "generate_events" in listing and "cluster_jets" in listing
    script = ("import tools, agent, physagent\n"
              "from physagent import Assistant, Workspace, call_tool, registry, get_backend\n"
              "print(tools.OWNER, agent.OWNER, 'generate_events' in registry, physagent.__file__)")
    owners = run(str(venv / "bin" / "python"), "-c", script).split()
    assert owners[:5] == ["user", "tools", "user", "agent", "True"]
    assert owners[5].startswith(str(venv)), "physagent was not imported from the installed wheel"
    assert run(str(venv / "bin" / "physagent"), "--version").strip() == "physagent 0.1.0"


def test_the_public_api_is_importable_from_the_top_level() -> None:
    """`from physagent import Assistant, Workspace, call_tool, registry, get_backend` works; nothing else leaks."""
    from physagent import Assistant, Workspace, call_tool, get_backend, registry  # noqa: F401

    assert "generate_events" in registry
    assert set(physagent.__all__) == {"Assistant", "Workspace", "__version__", "call_tool", "get_backend", "registry"}
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = physagent.nothing
    assert {m.name for m in pkgutil.iter_modules(physagent.__path__)} >= {"integrations"}
