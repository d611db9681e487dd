#!/bin/sh
# Run the follow-up batch with the project's venv python (found from the repo root).
# cron:  15 2 * * *  /opt/stelsewhere/followup-batch/run.sh --once
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py="$root/.venv/bin/python"
[ -x "$py" ] || py=python3
cd "$here" || exit 1
export PYTHONUNBUFFERED=1
exec "$py" app.py "$@"
