#!/usr/bin/env bash
# Create (or refresh) the project's Python venv with the client libraries in requirements.txt
# and the dependencies of the Python test SUTs and examples (zoo/*/requirements.txt,
# examples/*/requirements.txt).
# Idempotent and safe to call concurrently: a lock serialises callers, and a stamp of the
# requirements file skips the install when nothing changed. Prints the venv's python path.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${CRASHCART_VENV:-$root/.venv}"
reqs=("$root/tests/python/requirements.txt")
for z in "$root"/zoo/*/requirements.txt "$root"/examples/*/requirements.txt; do
  if [[ -f "$z" ]]; then reqs+=("$z"); fi
done
stamp="$venv/.requirements.sha256"

exec 9>"$venv.lock"
flock 9

want="$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
python3 -m venv "$venv" >&2
args=()
for r in "${reqs[@]}"; do args+=(-r "$r"); done
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}" >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
