#!/usr/bin/env bash
# Smoke test of a built bundle (packaging/build_app.py): the command line, a real 2,000-sample run with its
# export, and the desktop app for 10 s under Xvfb. Usage: packaging/smoke_test.sh [BUNDLE_DIR] (default dist/wna-gui)
set -euo pipefail
bundle="$(cd "${1:-$(dirname "$0")/../dist/wna-gui}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The user's settings, logs and autosaves stay untouched.
export XDG_CONFIG_HOME="$work/config" XDG_STATE_HOME="$work/state" XDG_DATA_HOME="$work/data"
export XDG_CACHE_HOME="$work/cache" WNA_GUI_CONFIG_DIR="$work/config/wna-gui"
cd "$work"

step() { printf '\n== %s\n' "$*"; }

step "wna --version"
version="$("$bundle/wna" --version)"
echo "$version"
[[ "$version" == wna-gui\ * ]]

step "wna run classification-images (2,000 samples)"
start=$SECONDS
"$bundle/wna" run classification-images --model default --samples 2000 --seed 0 --out s.h5 --quiet
echo "run: $((SECONDS - start)) s"
"$bundle/wna" info s.h5 --json > info.json
grep -q '2,000\|2000' info.json || { echo "smoke: the session does not record 2,000 samples" >&2; cat info.json >&2; exit 1; }

step "wna export"
"$bundle/wna" export s.h5 --out export --dpi 100
files=$(find export -type f | wc -l)
echo "exported $files files"
[ "$files" -gt 0 ]

step "wna-gui under Xvfb for 10 s"
if ! command -v xvfb-run >/dev/null; then
  echo "smoke: xvfb-run is not installed (apt-get install xvfb); skipping the app" >&2
else
  status=0
  # timeout ends it after 10 s (exit 124): an app still running then has started and not crashed.
  xvfb-run -a -s "-screen 0 1600x1000x24" timeout 10 "$bundle/wna-gui" > gui.out 2>&1 || status=$?
  cat gui.out
  if [ "$status" -ne 124 ]; then
    echo "smoke: wna-gui exited with $status within 10 s" >&2
    exit 1
  fi
  if grep -q "Traceback" gui.out "$XDG_STATE_HOME/wna-gui/logs/wna-gui.log" 2>/dev/null; then
    echo "smoke: wna-gui logged a traceback" >&2
    exit 1
  fi
  grep -q "splash shown" "$XDG_STATE_HOME/wna-gui/logs/wna-gui.log" || { echo "smoke: wna-gui logged no splash" >&2; exit 1; }
  grep "wna_gui.app" "$XDG_STATE_HOME/wna-gui/logs/wna-gui.log"  # splash and (when within 10 s) window times
  echo "wna-gui ran 10 s"
fi

printf '\nsmoke test passed: %s\n' "$bundle"
