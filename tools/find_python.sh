#!/usr/bin/env bash
# Print the newest supported CPython (3.13, 3.12, 3.11, 3.10) that can create a venv, or with
# --all every one found, newest first. Looks on PATH (python3.X, python3) and in pyenv's
# versions folder, so that a pyenv install works whatever .python-version selects.
# Exit status 1, with the versions that work and how to get one, when none is found.
set -u
SUPPORTED="3.13 3.12 3.11 3.10"
all=0
[ "${1:-}" = "--all" ] && all=1

works() {  # $1: interpreter path, $2: wanted X.Y (or "any")
  "$1" - "$2" <<'EOF' >/dev/null 2>&1
import sys, venv, ensurepip  # venv needs ensurepip (Debian splits it into python3-venv)
want = sys.argv[1]
have = "%d.%d" % sys.version_info[:2]
ok = sys.implementation.name == "cpython" and have in ("3.10", "3.11", "3.12", "3.13")
sys.exit(0 if ok and want in ("any", have) else 1)
EOF
}

candidates() {  # $1: X.Y
  command -v "python$1" 2>/dev/null
  local root
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  ls -d "$root"/versions/"$1".*/bin/"python$1" 2>/dev/null | sort -rV
}

found=""
for v in $SUPPORTED; do
  for p in $(candidates "$v"); do
    if works "$p" "$v"; then
      found="$found $p"
      [ $all = 1 ] || { echo "$p"; exit 0; }
      break
    fi
  done
done
if [ -z "$found" ]; then
  p=$(command -v python3 2>/dev/null) && works "$p" any && { echo "$p"; exit 0; }
  echo "error: no supported Python found: trashpole needs CPython 3.10, 3.11, 3.12 or 3.13 with" \
    "venv; install one ('pyenv install 3.12', 'apt-get install python3.12-venv', 'brew install" \
    "python@3.12') or run 'make PYTHON=/path/to/python3.X'" >&2
  exit 1
fi
echo $found | tr ' ' '\n'
