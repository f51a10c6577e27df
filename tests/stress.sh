#!/bin/sh
# The whole suite N times in a row (default 3) while `stress --cpu 2` (Debian `stress`) loads
# the machine beside it (issue 10 item 17: a CI run must not depend on an idle machine).
# Prints one summary line per run: `run I: <pytest's last line>`; exits 1 if any run failed.
# Usage: tests/stress.sh [RUNS] [PYTEST ARGS...]   (make test-stress)
set -u
cd "$(dirname "$0")/.."
runs=${1:-3}
[ $# -gt 0 ] && shift
command -v stress >/dev/null || { echo "tests/stress.sh: needs stress (apt-get install stress)" >&2; exit 2; }
setsid stress --cpu 2 >/dev/null 2>&1 &  # its own process group: its workers end with it
load=$!
# A private pytest temp root: another pytest on the machine must not clean this run's dirs.
root=$(mktemp -d)
trap 'kill -TERM -- "-$load" 2>/dev/null; rm -rf "$root"' EXIT
trap 'exit 143' INT TERM
status=0
i=1
while [ "$i" -le "$runs" ]; do
    out="$root/run$i.txt"
    PYTEST_DEBUG_TEMPROOT="$root" .venv/bin/pytest -q -p no:cacheprovider "$@" >"$out" 2>&1 || status=1
    echo "run $i: $(grep -E '(passed|failed|error)' "$out" | tail -n 1)"
    grep -E '^(FAILED|ERROR) ' "$out" || true
    i=$((i + 1))
done
exit "$status"
