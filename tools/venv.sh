#!/usr/bin/env bash
# Create (or repair) the Python 3.10 environment .venvs/NAME and install its pinned lock file.
# Creating one from nothing is recorded in .venvs/NAME/created.json (seconds, when, cores, load):
# `make bench` adds it to what a fresh clone waits before its first answer (bench/fresh_clone.py).
set -euo pipefail
name="$1"; lock="$2"
cd "$(dirname "$0")/.."
python310="$(tools/check_python.sh)"
dir=".venvs/$name"
started_ns="$(date +%s%N)"
created=false
if ! "$dir/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
  echo "creating the $name environment in $dir ..." >&2
  rm -rf "$dir"
  "$python310" -m venv "$dir"
  created=true
fi
echo "installing $lock into $dir (pinned versions) ..." >&2
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip==24.3.1"
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$lock"
touch "$dir/.installed"
if [ "$created" = true ]; then
  # Only a creation from nothing is what a fresh clone waits; a repair after a lock change is not,
  # so it leaves the record as it was.
  elapsed_ms=$(( ($(date +%s%N) - started_ns) / 1000000 ))
  printf '{"environment": "%s", "lock": "%s", "seconds": %d.%d, "created_at": "%s", "cores": %s, "load_average_1m": %s}\n' \
    "$name" "$lock" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" \
    "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" > "$dir/created.json"
fi
