#!/usr/bin/env bash
# Create (or repair) the Python 3.10 environment .venvs/NAME and install its pinned lock file.
set -euo pipefail
name="$1"; lock="$2"
cd "$(dirname "$0")/.."
python310="$(tools/check_python.sh)"
dir=".venvs/$name"
if ! "$dir/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
  echo "creating the $name environment in $dir ..." >&2
  rm -rf "$dir"
  "$python310" -m venv "$dir"
fi
echo "installing $lock into $dir (pinned versions) ..." >&2
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip==24.3.1"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$lock"
touch "$dir/.installed"
