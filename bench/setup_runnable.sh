#!/usr/bin/env bash
# Creates bench/.venv-runnable with runnable==0.50.0, the library the user's plan was written
# for, so that the benchmarks can measure it in the same run as runstream. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-runnable"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import runnable" 2>/dev/null; then
    exit 0
fi
uv venv --quiet --python 3.11 "$venv"
uv pip install --quiet --python "$venv/bin/python" "runnable==0.50.0"
