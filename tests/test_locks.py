"""locks/python3.X.txt (tools/lock_env.py) against what they lock: one per supported Python, every
line an exact pin, constraints.txt's pins and setup.py's ranges kept, pip as make_venv.sh pins it.
(.ci/run checks that a fresh venv holds exactly its lock.)"""

import ast
import re
import runpy

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from tiny_model import REPO

SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s=;,]+)$")


def _pins(path) -> dict:
    """{canonical name: version} of a file of ``name==version`` lines (comments skipped)."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        found = PIN.match(line)
        assert found, f"{path.name}:{number}: {line!r} is not an exact name==version pin"
        name = canonicalize_name(found.group(1))
        assert name not in pins, f"{path.name}:{number}: {name} pinned twice"
        pins[name] = found.group(2)
    return pins


def _setup_requirements() -> list:
    """install_requires plus every extra of setup.py, read from its source."""
    tree = ast.parse((REPO / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.keywords)
    keywords = {
        k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg.endswith("requires")
    }
    extras = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg == "extras_require"}
    found = list(keywords["install_requires"])
    for extra in extras["extras_require"].values():
        found += extra
    return [Requirement(r) for r in found]


@pytest.fixture(scope="module", params=SUPPORTED)
def lock(request):
    path = REPO / "locks" / f"python{request.param}.txt"
    assert path.is_file(), f"{path} is missing; run python tools/lock_env.py"
    return _pins(path)


def test_lock_keeps_every_pin_of_constraints(lock):
    for name, version in _pins(REPO / "constraints.txt").items():
        assert lock.get(name) == version, f"constraints.txt pins {name}=={version}"


def test_lock_satisfies_setup_py(lock):
    requirements = _setup_requirements()
    assert len(requirements) >= 20  # setup.py was read (install_requires and both extras)
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in lock, f"setup.py needs {requirement}; the lock has no {name}"
        assert requirement.specifier.contains(lock[name], prereleases=True), (
            requirement,
            lock[name],
        )


def test_lock_pins_pip_and_detectron2_as_make_venv_installs_them(lock):
    make_venv = (REPO / "tools" / "make_venv.sh").read_text()
    assert re.search(rf"^PIP_VERSION={re.escape(lock['pip'])}$", make_venv, re.MULTILINE)
    install = (REPO / "tools" / "install_detectron2.py").read_text()
    assert f'VERSION = "{lock["detectron2"]}"' in install


def test_pins_are_read_exactly(tmp_path):
    path = tmp_path / "lock.txt"
    path.write_text("# header\nPyYAML==6.0.4\ntyping_extensions==4.16.0  # why\n")
    assert _pins(path) == {"pyyaml": "6.0.4", "typing-extensions": "4.16.0"}
    path.write_text("numpy>=2\n")
    with pytest.raises(AssertionError, match="lock.txt:1: 'numpy>=2' is not an exact"):
        _pins(path)


def test_ci_check_names_each_difference():
    differences = runpy.run_path(str(REPO / "tools" / "lock_env.py"))["differences"]
    locked = {"PyYAML": "6.0.4", "typing_extensions": "4.16.0", "pip": "26.3"}
    assert (
        differences(locked, {"pyyaml": "6.0.4", "typing-extensions": "4.16.0", "pip": "26.3"}) == []
    )
    installed = {"pyyaml": "6.0.3", "pip": "26.3", "pyflakes": "4.1.0"}
    assert differences(locked, installed) == [
        "pyflakes: locked -, installed 4.1.0",
        "pyyaml: locked 6.0.4, installed 6.0.3",
        "typing-extensions: locked 4.16.0, installed -",
    ]
