"""The dependency rules of docs/architecture: who may import what, read from the source itself."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("agent", "sandbox", "graders", "papers")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources():
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            if "templates" in path.parts:  # code the agent writes for the sandbox, not project code
                continue
            yield path.relative_to(REPO).as_posix(), imports_of(path)


SOURCES = list(sources())


def importers(top: str) -> set[str]:
    return {rel for rel, names in SOURCES if any(n == top or n.startswith(top + ".") for n in names)}


def test_the_scan_sees_the_project():
    assert len(SOURCES) > 40
    assert "agent/llm.py" in importers("openai")


def test_only_llm_module_imports_openai():
    assert importers("openai") == {"agent/llm.py"}


def test_only_docker_backend_imports_docker():
    assert importers("docker") == {"sandbox/docker.py"}


def test_only_papers_imports_pymupdf():
    bad = {p for p in importers("pymupdf") | importers("fitz") if not p.startswith("papers/")}
    assert not bad


@pytest.mark.parametrize("pkg", ["graders", "sandbox", "papers"])
def test_lower_layers_never_import_agent(pkg):
    assert not {p for p in importers("agent") if p.startswith(pkg + "/")}


def test_nothing_imports_the_cli():
    cli_modules = {"agent.cli", "papers.cli", "graders.cli", "sandbox.cli"}
    offenders = {rel for rel, names in SOURCES if names & cli_modules and not rel.endswith("cli.py")}
    assert not offenders


def test_the_docker_backend_never_imports_the_image_builder():
    """A sandbox constructor that could build an image hid an import circle (docker <-> image):
    the image is built by `repro sandbox build`, and the backend only uses it."""
    tree = ast.parse((REPO / "sandbox" / "docker.py").read_text())
    names = {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
             for a in n.names} | imports_of(REPO / "sandbox" / "docker.py")
    assert not {n for n in names if n.startswith("sandbox.image")}
