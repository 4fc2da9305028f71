#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser tests (Playwright drives it;
# its own browser download cannot be used here). Installs it with apt-get when it is missing and we
# are root; otherwise says the command and fails.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Chromium with apt-get (for the browser tests) ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2
  exit 0
fi
echo "The browser tests need Chromium at /usr/bin/chromium: install it (Debian: sudo apt-get install chromium)" >&2
exit 1
