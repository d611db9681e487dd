#!/bin/sh
# Start the visit-prep listener (installs its node_modules from the lockfile first if needed).
here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 1
./setup.sh >&2 || exit 1
exec node src/main.js "$@"
