#!/bin/sh
# Start the booking API with the project's venv python (found from the repo root).
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py="$root/.venv/bin/python"
[ -x "$py" ] || py=python3
cd "$here" || exit 1
export PYTHONUNBUFFERED=1
exec "$py" app.py "$@"
