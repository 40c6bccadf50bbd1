#!/usr/bin/env bash
# Print the newest supported CPython (3.13, 3.12, 3.11, 3.10) that can create a venv, or with
# --all every one found, newest first. Looks on PATH (python3.X, python3) and in pyenv's
# versions folder, so that a pyenv install works whatever .python-version selects.
# Exit status 1 when none is found, with one line saying what to install on this system
# (Debian, Ubuntu, Fedora, macOS): the interpreter, its venv package (Debian and Ubuntu split
# venv/ensurepip into python3.X-venv), and make when it is missing.
# OS_RELEASE (default /etc/os-release) is read to tell the Linux distributions apart.
set -u
SUPPORTED="3.13 3.12 3.11 3.10"
all=0
[ "${1:-}" = "--all" ] && all=1

probe() {  # $1: interpreter path; prints "X.Y ok", "X.Y novenv" or "other" (nothing if it fails)
  "$1" - <<'EOF' 2>/dev/null
import sys
if sys.implementation.name != "cpython":
    print("other")
    sys.exit()
version = "%d.%d" % sys.version_info[:2]
try:
    import venv, ensurepip  # venv needs ensurepip (Debian splits it into python3.X-venv)
    print(version, "ok")
except ImportError:
    print(version, "novenv")
EOF
}

candidates() {  # $1: X.Y
  command -v "python$1" 2>/dev/null
  local root
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  ls -d "$root"/versions/"$1".*/bin/"python$1" 2>/dev/null | sort -rV
}

system() {  # debian, ubuntu, fedora, macos or other
  if [ "$(uname -s 2>/dev/null)" = "Darwin" ]; then echo macos; return; fi
  local id="" like=""
  if [ -r "${OS_RELEASE:-/etc/os-release}" ]; then
    id=$(sed -n 's/^ID="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "${OS_RELEASE:-/etc/os-release}")
    like=$(sed -n 's/^ID_LIKE="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "${OS_RELEASE:-/etc/os-release}")
  fi
  case " $id $like " in
    *" ubuntu "*) echo ubuntu ;;
    *" debian "*) echo debian ;;
    *" fedora "* | *" rhel "*) echo fedora ;;
    *) echo other ;;
  esac
}

install_hint() {  # $1: system, $2: X.Y of a supported python without venv (or empty)
  case "$1" in
    debian | ubuntu)
      if [ -n "$2" ]; then
        echo "python$2 is installed without its venv module: apt-get install python$2-venv"
      elif [ "$1" = ubuntu ]; then
        echo "apt-get install python3 python3-venv (Ubuntu 22.04 and newer ship 3.10-3.12)"
      else
        echo "apt-get install python3 python3-venv (Debian 12 ships 3.11, Debian 13 3.13)"
      fi ;;
    fedora) echo "dnf install python3.12" ;;
    macos) echo "brew install python@3.12 (or the installer from python.org)" ;;
    *) echo "install one ('pyenv install 3.12' or python.org)" ;;
  esac
}

make_hint() {  # $1: system; prints nothing when make is installed
  command -v make >/dev/null 2>&1 && return
  case "$1" in
    debian | ubuntu) echo "make is missing too: apt-get install make" ;;
    fedora) echo "make is missing too: dnf install make" ;;
    macos) echo "make is missing too: xcode-select --install" ;;
    *) echo "make is missing too: install make" ;;
  esac
}

found=""
novenv=""  # the newest supported interpreter that lacks venv/ensurepip
for v in $SUPPORTED; do
  for p in $(candidates "$v"); do
    answer=$(probe "$p")
    if [ "$answer" = "$v ok" ]; then
      found="$found $p"
      [ $all = 1 ] || break 2
      break
    fi
    [ "$answer" = "$v novenv" ] && [ -z "$novenv" ] && novenv=$v
  done
done
if [ -z "$found" ]; then
  p=$(command -v python3 2>/dev/null) && answer=$(probe "$p")
  case "${answer:-}" in
    "3.10 ok" | "3.11 ok" | "3.12 ok" | "3.13 ok") found=$p ;;
    "3.10 novenv" | "3.11 novenv" | "3.12 novenv" | "3.13 novenv") novenv=${novenv:-${answer% *}} ;;
  esac
fi
sys=$(system)
if [ -z "$found" ]; then
  extra=$(make_hint "$sys")
  echo "error: no supported Python found: trashpole needs CPython 3.10, 3.11, 3.12 or 3.13 with" \
    "venv; $(install_hint "$sys" "$novenv")${extra:+; $extra}; or run 'make PYTHON=/path/to/python3.X'" >&2
  exit 1
fi
extra=$(make_hint "$sys")
[ -n "$extra" ] && echo "note: ${extra/ too/}; 'make venv', 'make test' and 'make demo' need it" >&2
echo $found | tr ' ' '\n'
