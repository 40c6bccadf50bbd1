"""The install path: interpreter discovery, the detectron2 repack, and one clear line per fault."""

import base64
import csv
import hashlib
import importlib.metadata
import io
import os
import runpy
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from tiny_model import REPO

TOOLS = REPO / "tools"
INSTALL = runpy.run_path(str(TOOLS / "install_detectron2.py"))
# pip pointed at a closed local port, with no retries and no other index
OFFLINE_PIP = {
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_EXTRA_INDEX_URL": "",
    "PIP_FIND_LINKS": "",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_RETRIES": "0",
    "PIP_TIMEOUT": "2",
    "PIP_CONFIG_FILE": os.devnull,
}


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The last stderr line, which must be the one 'error: ...' line of the failure."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == errors[0]
    return errors[0]


def _fake_python(folder: Path, version: str) -> Path:
    """An executable that answers any command with a version string, as an old python would."""
    path = folder / f"python{version}"
    path.write_text(f"#!/bin/sh\necho {version}\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_find_python_picks_a_supported_interpreter():
    proc = subprocess.run([str(TOOLS / "find_python.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    found = proc.stdout.strip()
    version = subprocess.run(
        [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert version in ("3.10", "3.11", "3.12", "3.13")
    every = subprocess.run(
        [str(TOOLS / "find_python.sh"), "--all"], capture_output=True, text=True
    ).stdout.split()
    assert every[0] == found  # the newest comes first


def test_find_python_without_any_supported_interpreter(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "ls", "sort", "tr", "dirname", "cat"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    _fake_python(bin_dir, "3.9")
    env = {"PATH": str(bin_dir), "PYENV_ROOT": str(tmp_path / "no_pyenv"), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [str(bin_dir / "bash"), str(TOOLS / "find_python.sh")], capture_output=True, text=True,
        env=env,
    )  # fmt: skip
    line = _one_error_line(proc)
    assert "CPython 3.10, 3.11, 3.12 or 3.13" in line and "make PYTHON=" in line


DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
UBUNTU_24 = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'


def _find_python_on(
    tmp_path, system: str, pythons: dict, make: bool
) -> subprocess.CompletedProcess:
    """
    tools/find_python.sh on a made-up machine: only the shell tools it needs on PATH, plus
    ``pythons`` ({"python3.11": "3.11 novenv"}: a fake interpreter giving that probe answer),
    ``make`` or not, and ``system`` ("macos" or the text of /etc/os-release).
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "ls", "sort", "tr", "dirname", "cat", "sed"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    scripts = {name: f"echo '{answer}'" for name, answer in pythons.items()}
    scripts["uname"] = "echo Darwin" if system == "macos" else "echo Linux"
    if make:
        scripts["make"] = "exit 0"
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    os_release = tmp_path / "os-release"
    os_release.write_text("" if system == "macos" else system)
    env = {"PATH": str(bin_dir), "PYENV_ROOT": str(tmp_path / "no_pyenv"), "HOME": str(tmp_path),
           "OS_RELEASE": str(os_release)}  # fmt: skip
    return subprocess.run(
        [str(bin_dir / "bash"), str(TOOLS / "find_python.sh")], capture_output=True, text=True,
        env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    "system, pythons, make, expected",
    [
        # Debian 12's python3 is 3.11; without python3.11-venv it has no ensurepip
        (DEBIAN_12, {"python3.11": "3.11 novenv", "python3": "3.11 novenv"}, False,
         "; python3.11 is installed without its venv module: apt-get install python3.11-venv; "
         "make is missing too: apt-get install make; or run"),
        (UBUNTU_24, {"python3": "3.12 novenv"}, True,
         "; python3.12 is installed without its venv module: apt-get install python3.12-venv; "
         "or run"),
        (DEBIAN_12, {}, True, "; apt-get install python3 python3-venv (Debian 12 ships 3.11"),
        (UBUNTU_24, {"python3": "3.9 ok"}, True,
         "; apt-get install python3 python3-venv (Ubuntu 22.04 and newer ship 3.10-3.12); or run"),
        # macOS's own /usr/bin/python3 (Command Line Tools) is 3.9
        ("macos", {"python3": "3.9 ok"}, False,
         "; brew install python@3.12 (or the installer from python.org); make is missing too: "
         "xcode-select --install; or run"),
    ],
)  # fmt: skip
def test_find_python_says_what_to_install(tmp_path, system, pythons, make, expected):
    line = _one_error_line(_find_python_on(tmp_path, system, pythons, make))
    assert line.startswith("error: no supported Python found: trashpole needs CPython 3.10, 3.11")
    assert expected in line
    assert line.endswith("or run 'make PYTHON=/path/to/python3.X'")


def test_find_python_notes_a_missing_make(tmp_path):
    proc = _find_python_on(tmp_path, DEBIAN_12, {"python3.11": "3.11 ok"}, make=False)
    assert proc.returncode == 0
    assert proc.stdout == f"{tmp_path}/bin/python3.11\n"
    assert proc.stderr == (
        "note: make is missing: apt-get install make; 'make venv', 'make test' and 'make demo' "
        "need it\n"
    )


def test_make_venv_refuses_an_unsupported_interpreter(tmp_path):
    venv = tmp_path / "venv"
    proc = subprocess.run(
        [str(TOOLS / "make_venv.sh"), str(_fake_python(tmp_path, "3.9")), str(venv)],
        capture_output=True,
        text=True,
    )
    line = _one_error_line(proc)
    assert "is Python 3.9" in line and "3.10, 3.11, 3.12 and 3.13" in line
    assert not venv.exists()


def test_an_interrupted_build_is_never_taken_as_done(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "left_from_last_time").write_text("half-built")  # no .installed: not done
    proc = subprocess.run(
        [str(TOOLS / "make_venv.sh"), sys.executable, str(venv)],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE_PIP},
        timeout=300,
    )
    line = _one_error_line(proc)
    assert "could not install pip 26.3" in line or "could not download" in line
    assert not (venv / "left_from_last_time").exists()  # started again from an empty folder
    assert not (venv / ".installed").exists()


def test_a_failed_download_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "install_detectron2.py"), "--force"],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE_PIP},
        timeout=300,
    )
    assert "could not download sal-detectron2==0.7.2" in _one_error_line(proc)


def test_a_hash_mismatch_is_one_line_and_installs_nothing(tmp_path):
    fake = tmp_path / INSTALL["SOURCE_FILE"]
    fake.write_bytes(b"not the published wheel")
    before = importlib.metadata.version("detectron2")
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "install_detectron2.py"), "--force", "--wheel", str(fake)],
        capture_output=True,
        text=True,
    )
    line = _one_error_line(proc)
    expected = hashlib.sha256(b"not the published wheel").hexdigest()
    assert f"has sha256 {expected}, expected {INSTALL['SOURCE_SHA256']}" in line
    assert importlib.metadata.version("detectron2") == before


def _fake_source_wheel(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("detectron2/__init__.py", '__version__ = "0.7.2"\n')
        z.writestr("detectron2/layers/nms.py", "x = 1\n")
        z.writestr("detectron2/_C.cpython-310-x86_64-linux-gnu.so", b"\x7fELF")
        z.writestr("tools/train_net.py", "print('stray')\n")
        z.writestr("sal_detectron2-0.7.2.dist-info/LICENSE", "Apache\n")
        z.writestr("sal_detectron2-0.7.2.dist-info/METADATA", "Requires-Dist: numpy<2\n")


def test_repack_keeps_only_the_python_sources_with_a_valid_record(tmp_path):
    source = tmp_path / "source.whl"
    _fake_source_wheel(source)
    wheel = INSTALL["repack"](str(source), str(tmp_path))
    assert os.path.basename(wheel) == "detectron2-0.7.2+purepy-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = "detectron2-0.7.2+purepy.dist-info"
        assert names == {
            "detectron2/__init__.py",
            "detectron2/layers/nms.py",
            *(f"{info}/{n}" for n in ("METADATA", "WHEEL", "top_level.txt", "LICENSE", "RECORD")),
        }
        metadata = z.read(f"{info}/METADATA").decode()
        assert "Name: detectron2\n" in metadata and "Version: 0.7.2+purepy\n" in metadata
        assert "numpy<2" not in metadata and "Requires-Dist: fvcore>=0.1.5,<0.1.6" in metadata
        assert "Tag: py3-none-any" in z.read(f"{info}/WHEEL").decode()
        rows = list(csv.reader(io.StringIO(z.read(f"{info}/RECORD").decode())))
        for name, digest, size in rows:
            if name.endswith("RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = z.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (f"sha256={want}", len(data)), name
        assert len(rows) == len(names)


def test_installed_detectron2_is_the_repack_or_a_source_build():
    import detectron2

    folder = Path(detectron2.__file__).parent
    compiled = list(folder.glob("_C.*"))
    dist = importlib.metadata.distribution("detectron2")
    if compiled:  # a user's own source build, which make keeps
        pytest.skip(f"detectron2 {dist.version} built from source is installed")
    assert dist.version == INSTALL["VERSION"]
    assert not any(str(f).startswith("tools/") for f in dist.files)
    assert not any("numpy<2" in r for r in dist.requires)


def test_the_package_holds_trashpole_only(monkeypatch):
    """setup.py's own package list: trashpole and its subpackages; benchmarks/, synthetic/, tools/
    and tests/ stay in the checkout."""
    import setuptools

    kwargs = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: kwargs.update(kw))
    monkeypatch.chdir(REPO)
    runpy.run_path(str(REPO / "setup.py"))
    packages = kwargs["packages"]
    assert "trashpole" in packages and "trashpole.predict" in packages
    assert [p for p in packages if p.split(".")[0] != "trashpole"] == []
    assert (REPO / "benchmarks" / "__init__.py").is_file()  # there, and left out
    assert (REPO / "synthetic" / "__init__.py").is_file()
