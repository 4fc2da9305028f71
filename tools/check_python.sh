#!/usr/bin/env bash
# Print the path of a Python 3.10 interpreter, or explain how to get one and fail.
set -euo pipefail
for candidate in "${PYTHON310:-}" python3.10 "$HOME/.pyenv/versions/3.10/bin/python3.10" \
                 $(ls -d "$HOME"/.pyenv/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V | tail -1); do
  [ -n "$candidate" ] || continue
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
    command -v "$candidate"
    exit 0
  fi
done
cat >&2 <<'MSG'
CareLoop needs Python 3.10 (Rasa 3.6 runs on Python 3.8-3.10 only), and none was found.
  With pyenv:   pyenv install 3.10      (the repository's .python-version then selects it)
  On Debian:    use pyenv as above, or a Python 3.10 build of your choice
  Elsewhere:    install Python 3.10, or set PYTHON310=/path/to/python3.10
MSG
exit 1
