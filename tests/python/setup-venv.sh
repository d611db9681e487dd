#!/usr/bin/env bash
# Create (or refresh) the project's Python venv with the client libraries in requirements.txt.
# Idempotent and safe to call concurrently: a lock serialises callers, and a stamp of the
# requirements file skips the install when nothing changed. Prints the venv's python path.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${CRASHCART_VENV:-$root/.venv}"
req="$root/tests/python/requirements.txt"
stamp="$venv/.requirements.sha256"

exec 9>"$venv.lock"
flock 9

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
echo "$want" > "$stamp"
echo "$venv/bin/python"
