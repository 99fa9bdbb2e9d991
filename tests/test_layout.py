"""Packaging and import-direction rules (DESIGN §3), checked with `ast`."""

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

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
