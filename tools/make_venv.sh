#!/usr/bin/env bash
# Build trashpole's virtual environment from scratch: make_venv.sh PYTHON VENV
#   PYTHON  a CPython 3.10-3.13 interpreter (empty: the newest found by tools/find_python.sh)
#   VENV    the folder to create
# Every step installs from PyPI with the exact versions of locks/pythonX.Y.txt (the whole
# environment, made by tools/lock_env.py from setup.py and constraints.txt); detectron2 comes from
# tools/install_detectron2.py. VENV/.installed is written last, so an interrupted or failed
# build is never taken as done: the next run starts again from an empty folder. Any failure
# ends with one line "error: ..." on stderr and exit status 1.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-}
VENV=${2:-.venv}

# the pip every venv is built with (tools/lock_env.py writes it into the locks)
PIP_VERSION=26.3

fail() { echo "error: $*" >&2; exit 1; }

if [ -z "$PYTHON" ]; then
  PYTHON=$(tools/find_python.sh) || exit 1
fi
command -v "$PYTHON" >/dev/null 2>&1 || [ -x "$PYTHON" ] || \
  fail "$PYTHON not found; give an interpreter with 'make PYTHON=/path/to/python3.X' (3.10-3.13)"
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || \
  fail "$PYTHON does not run; give a CPython 3.10-3.13 with 'make PYTHON=/path/to/python3.X'"
case "$version" in
  3.10|3.11|3.12|3.13) ;;
  *) fail "$PYTHON is Python $version; trashpole supports CPython 3.10, 3.11, 3.12 and 3.13" \
       "(run tools/find_python.sh to see what is installed, or 'make PYTHON=/path/to/python3.12')" ;;
esac

LOCK=locks/python$version.txt
[ -f "$LOCK" ] || fail "$LOCK is missing; run 'python tools/lock_env.py --python $PYTHON'" \
  "(it needs the package index)"

rm -rf "$VENV"
echo "creating $VENV with $PYTHON (Python $version)"
"$PYTHON" -m venv "$VENV" || \
  fail "'$PYTHON -m venv' failed; install the venv module (Debian, Ubuntu: apt-get install" \
    "python$version-venv)"
PY="$VENV/bin/python"
"$PY" -m pip install --quiet "pip==$PIP_VERSION" || \
  fail "could not install pip $PIP_VERSION in $VENV (network or index settings); run make again when fixed"
"$PY" tools/install_detectron2.py --constraint "$LOCK" || exit 1
"$PY" -m pip install --quiet --constraint constraints.txt --constraint "$LOCK" \
  --editable ".[dev,export]" || \
  fail "pip could not install trashpole's requirements into $VENV (its message is above);" \
    "run make again when fixed"
"$PY" -c "import trashpole, detectron2, torch" || fail "the new $VENV cannot import trashpole"
touch "$VENV/.installed"
echo "$VENV ready: $("$PY" -c 'import sys, torch, numpy; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}")')"
