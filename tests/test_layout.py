"""Packaging, import-direction and generator-contract rules, checked with `ast`."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "genmotion": "genmotion",
    "video": "genmotion.video",
    "panorama": "genmotion.panorama",
    "rigging": "genmotion.rigging",
    "world": "genmotion.world",
    "image_core": "genmotion.image_core",
}
GENERATORS = {"video", "panorama", "rigging", "world", "image_core"}
# what each package may import from the others (the core is always allowed)
ALLOWED = {
    "genmotion": set(),
    "image_core": set(),
    "video": {"image_core"},
    "panorama": {"video", "image_core"},
    "rigging": set(),
    "world": set(),
}


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "genmotion":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in GENERATORS else "genmotion"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def test_import_direction():
    bad = []
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            for module in _imports(path):
                target = _package_of(module)
                if target in (None, "genmotion", folder):
                    continue
                if target not in ALLOWED[folder]:
                    bad.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not bad, "\n".join(bad)


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom genmotion.cli.app import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'genmotion --help imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_importing_packages_has_no_heavy_side_effects():
    code = (
        "import sys, genmotion, genmotion.video, genmotion.panorama, genmotion.rigging, genmotion.world, "
        "genmotion.image_core\nassert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# The generator-package contract: the files every generator package has, its recipes and its tests.
CONTRACT_FILES = ("config.py", "model.py", "sampler.py", "pipeline.py", "train.py", "cli.py", "bench.py")
RECIPES = {"video": "video", "image_core": "image", "panorama": "panorama", "rigging": "rigging", "world": "world"}
# video/ is a family: two generator packages (videoar/, ca2vdm/) on the contract, and what both use (the tokenizer,
# data, the streaming pipeline base, the `genmotion video` command and its bench) at the family level.
FAMILIES = {"video": ("videoar", "ca2vdm")}
FAMILY_FILES = ("config.py", "cli.py", "bench.py")
MEMBER_FILES = ("config.py", "model.py", "sampler.py", "pipeline.py", "train.py")
# VARPipeline, FlowARPipeline: the VAR family's variants (m-var, flowar-official)
PIPELINE_BASES = {"Pipeline", "VideoStreamer", "VARPipeline", "FlowARPipeline"}


def _built(folder: str) -> bool:
    """A generator package counts once it holds more than its `__init__.py`."""
    return any(p.name != "__init__.py" for p in (ROOT / folder).glob("*.py"))


def test_generator_packages_follow_the_contract():
    bad = []
    for folder in sorted(GENERATORS):
        if not _built(folder):
            continue
        wanted = {folder: FAMILY_FILES} if folder in FAMILIES else {folder: CONTRACT_FILES}
        wanted.update({f"{folder}/{m}": MEMBER_FILES for m in FAMILIES.get(folder, ())})
        for where, files in wanted.items():
            missing = [f for f in files if not (ROOT / where / f).is_file()]
            if missing:
                bad.append(f"{where}/ lacks {missing}")
        if not (ROOT / "configs" / RECIPES[folder]).is_dir():
            bad.append(f"{folder}/ has no recipes in configs/{RECIPES[folder]}/")
        if not (ROOT / "tests" / folder).is_dir():
            bad.append(f"{folder}/ has no tests/{folder}/")
    assert not bad, "\n".join(bad)


def test_generators_of_a_family_do_not_import_each_other():
    """videoar/ and ca2vdm/ share only what sits at the family level (video/); neither imports the other."""
    bad = []
    for family, members in FAMILIES.items():
        for member in members:
            for path in (ROOT / family / member).rglob("*.py"):
                others = [f"{FOLDERS[family]}.{m}" for m in members if m != member]
                bad += [
                    f"{path.relative_to(ROOT)} imports {mod}" for mod in _imports(path) if mod.startswith(tuple(others))
                ]
    assert not bad, "\n".join(bad)


def _class_bases(path: Path) -> dict[str, set[str]]:
    out = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            out[node.name] = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
    return out


def test_every_registered_pipeline_derives_from_the_core_pipeline():
    """Each `genmotion.pipelines` entry point names a class whose bases reach `genmotion.pipeline.Pipeline`."""
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["genmotion.pipelines"]
    bad = []
    for kind, target in eps.items():
        module, cls = target.split(":")
        parts = module.split(".")
        path = ROOT / {v: k for k, v in FOLDERS.items()}[".".join(parts[:2])] / Path(*parts[2:]).with_suffix(".py")
        bases = _class_bases(path).get(cls)
        if bases is None or not bases & PIPELINE_BASES:
            bad.append(f"{kind}: {target} does not derive from Pipeline (bases {bases})")
    assert not bad, "\n".join(bad)


def test_nothing_points_outside_the_repository():
    """Docstrings, docs and cards stand on their own: no references to design notes kept elsewhere."""
    needles = ("../shared", "DESIGN §", "DESIGN.md", "STYLE.md", "shared/research")
    bad = []
    for pattern in ("**/*.py", "**/*.md", "**/*.yaml"):
        for path in ROOT.glob(pattern):
            rel = path.relative_to(ROOT)
            if rel.parts[0] in {".venv", "runs", "out", "build"} or rel == Path("tests/test_layout.py"):
                continue
            text = path.read_text(errors="ignore")
            bad += [f"{rel}: {n!r}" for n in needles if n in text]
    assert not bad, "\n".join(bad)


def _runtime_imports(path: Path) -> list[str]:
    """Like `_imports`, without the `if TYPE_CHECKING:` blocks (annotations only; no import at run time)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return out


def _core_graph(level: str) -> dict[str, set[str]]:
    """Import edges between core modules ("module") or core folders ("folder"), lazy imports included."""
    graph: dict[str, set[str]] = {}
    core = ROOT / "genmotion"
    for path in core.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        node = name if level == "module" else ".".join(name.split(".")[:2])
        for module in _runtime_imports(path):
            if _package_of(module) != "genmotion" or not module.startswith("genmotion."):
                continue
            target = module if level == "module" else ".".join(module.split(".")[:2])
            if level == "module" and not (core.parent / (target.replace(".", "/") + ".py")).is_file():
                continue  # `from pkg import name` also lists pkg.name; keep only real modules
            if target != node:
                graph.setdefault(node, set()).add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str]:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (found := visit(m)):
                return found
        state[n] = 2
        stack.pop()
        return []

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return []


@pytest.mark.parametrize("level", ["folder", "module"])
def test_the_core_has_no_import_cycle(level):
    cycle = _cycle(_core_graph(level))
    assert not cycle, " -> ".join(cycle)
