#!/usr/bin/env bash
# Creates one venv per peer framework under bench/peers/.venvs/<peer> (git-ignored), with the
# pinned versions the peer benchmark was written against, plus the same server stack for all
# (uvicorn with uvloop + httptools). Idempotent: a venv whose packages import is left alone.
#
#   bash bench/peers/setup.sh              # every peer
#   bash bench/peers/setup.sh langgraph    # just these
#
# runstream's own peer runs in the workspace venv (uv run), so it has no venv here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venvs="$here/.venvs"
python_version="3.11"
server=("uvicorn[standard]==0.54.0" "uvloop==0.23.0" "httptools==0.9.0")

declare -A packages=(
    [fastapi_sse]="fastapi==0.165.0 starlette==1.10.0"
    [sse_starlette]="sse-starlette==3.7.0 starlette==1.10.0"
    [langgraph]="langgraph==1.2.22 sse-starlette==3.7.0 starlette==1.10.0"
    [pydantic_ai]="pydantic-ai-slim[ui,ag-ui]==2.68.0 starlette==1.10.0"
    [haystack]="haystack-ai==3.4.1 sse-starlette==3.7.0 starlette==1.10.0"
    [llamaindex]="llama-index-workflows==2.26.1 sse-starlette==3.7.0 starlette==1.10.0"
)
declare -A imports=(
    [fastapi_sse]="fastapi.sse"
    [sse_starlette]="sse_starlette"
    [langgraph]="langgraph.graph, langgraph.config, sse_starlette"
    [pydantic_ai]="pydantic_ai.models.function, pydantic_ai.ui.vercel_ai, pydantic_ai.ui.ag_ui"
    [haystack]="haystack, sse_starlette"
    [llamaindex]="workflows, sse_starlette"
)

peers=("$@")
if [ ${#peers[@]} -eq 0 ]; then
    peers=(fastapi_sse sse_starlette langgraph pydantic_ai haystack llamaindex)
fi
for peer in "${peers[@]}"; do
    if [ -z "${packages[$peer]+x}" ]; then
        echo "unknown peer: $peer (known: ${!packages[*]})" >&2
        exit 2
    fi
    venv="$venvs/$peer"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import uvloop, httptools, ${imports[$peer]}" 2>/dev/null; then
        continue
    fi
    echo "# setting up $venv: ${packages[$peer]}" >&2
    uv venv --quiet --clear --python "$python_version" "$venv"  # a venv that lacks a package: afresh
    # shellcheck disable=SC2086 # the package list is split on purpose
    uv pip install --quiet --python "$venv/bin/python" ${packages[$peer]} "${server[@]}"
    "$venv/bin/python" -c "import uvloop, httptools, ${imports[$peer]}"
done
