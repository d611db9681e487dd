#!/usr/bin/env bash
# The wrk method of issue 18's table: wrk against a mock endpoint and the bare-axum baseline,
# alternating (baseline, mock, baseline, mock, ...), one ratio per round, the median of the
# rounds reported. The servers are benches/wrk_targets.rs (release build, mimalloc, two
# worker threads, the mocks' own accept loop for the baseline too).
#
#   benches/wrk-ratio.sh                       # wrk -t2 -c50 -d10s, 3 rounds
#   ROUNDS=5 DURATION=20s benches/wrk-ratio.sh
#   ONLY="proxy min_proxy" benches/wrk-ratio.sh   # some targets only
#
# Targets: record_get (mock Salesforce), llm_chat (mock LLM), proxy (the chaos proxy, no
# toxic, in front of the baseline), min_proxy (tokio's copy_bidirectional in front of it: the
# ceiling of a proxy hop here).
#
# Needs wrk (Debian: apt-get install wrk). Prints one line per target:
#   record_get  mock 61234 req/s  baseline 140321 req/s  ratios 0.44 0.43 0.45  median 0.44
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
command -v wrk >/dev/null || { echo "wrk-ratio.sh: wrk not found (Debian: apt-get install wrk)" >&2; exit 2; }

bin=$(cargo bench --bench wrk_targets --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*wrk_targets-[0-9a-f]*\)).*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "wrk-ratio.sh: could not build benches/wrk_targets.rs" >&2; exit 3; }

work=$(mktemp -d)
trap 'exec 7>&- 2>/dev/null || true; kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkfifo "$work/in" "$work/out"
CRASHCART_WRK_SERVE=1 "$bin" < "$work/in" > "$work/out" &
pid=$!
exec 7> "$work/in"   # the servers live while this stays open
declare -A method url header body
names=()
exec 8< "$work/out"
while IFS=$'\t' read -r n m u h b <&8 && [ "$n" != end ]; do
  names+=("$n"); method[$n]=$m; url[$n]=$u; header[$n]=$h; body[$n]=$b
done

# One wrk run; its requests per second.
rps() {
  local n=$1 script="$work/$1.lua"
  {
    echo "wrk.method = \"${method[$n]}\""
    if [ "${header[$n]}" != "-" ]; then
      echo "wrk.headers[\"${header[$n]%%: *}\"] = \"${header[$n]#*: }\""
    fi
    if [ "${body[$n]}" != "-" ]; then
      echo 'wrk.headers["Content-Type"] = "application/json"'
      printf 'wrk.body = [==[%s]==]\n' "${body[$n]}"
    fi
  } > "$script"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$script" "${url[$n]}" \
    | awk '/^Requests\/sec:/ {print $2}'
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rps baseline > /dev/null   # warm-up
for n in "${names[@]}"; do
  [ "$n" = baseline ] && continue
  [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $n "* ]] && continue
  ratios=(); mocks=(); bases=()
  for _ in $(seq "$ROUNDS"); do
    b=$(rps baseline); m=$(rps "$n")
    bases+=("$b"); mocks+=("$m")
    ratios+=("$(awk -v m="$m" -v b="$b" 'BEGIN {printf "%.3f", m / b}')")
  done
  printf '%-11s mock %8.0f req/s  baseline %8.0f req/s  ratios %s  median %s\n' \
    "$n" "$(median "${mocks[@]}")" "$(median "${bases[@]}")" "${ratios[*]}" "$(median "${ratios[@]}")"
done
