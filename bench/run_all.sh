#!/usr/bin/env bash
# Runs the issue-2 benchmarks one after another (about 2 minutes) and keeps their output in
# bench/results/ (git-ignored). Sets up bench/.venv-runnable on first use.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
mkdir -p bench/results
status=0
for name in execute streaming first_event import; do
    uv run python "bench/bench_$name.py" "$@" 2>&1 | tee "bench/results/$name.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    echo
done
exit $status
