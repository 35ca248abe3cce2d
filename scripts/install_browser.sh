#!/usr/bin/env bash
# Install what the leaderboard's live tests need beyond pip (Debian/Ubuntu):
#   - headless Chromium + chromedriver for tests/leaderboard/test_leaderboard_browser.py (driven by selenium)
#   - with --latex: pdflatex + booktabs, to test-compile the LaTeX table (test_leaderboard_tables.py)
# Tests skip with a clear message when these are absent; CI calls this script so they run.
# Safe to run again: packages already present are skipped.
set -euo pipefail

want_latex=0
for arg in "$@"; do
  case "$arg" in
    --latex) want_latex=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install_browser.sh: needs root (or sudo) to run apt-get" >&2; exit 1
  fi
fi

packages=()
if ! { command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; }; then packages+=(chromium); fi
if ! { command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ]; }; then packages+=(chromium-driver); fi
if [ "$want_latex" -eq 1 ] && ! command -v pdflatex >/dev/null 2>&1; then
  packages+=(texlive-latex-base texlive-latex-recommended)
fi

if [ "${#packages[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

# the python side (the [server] extra plus selenium for the browser test)
PY=${PYTHON:-python3}
"$PY" -c "import selenium" 2>/dev/null || "$PY" -m pip install -q "selenium>=4.10"

echo "chromium:     $(command -v chromium || echo missing)"
echo "chromedriver: $(command -v chromedriver || echo missing)"
[ "$want_latex" -eq 1 ] && echo "pdflatex:     $(command -v pdflatex || echo missing)"
exit 0
