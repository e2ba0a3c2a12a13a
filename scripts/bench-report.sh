#!/usr/bin/env bash
# Renders the benchmark rows (scripts/bench-lib.sh) as one table.
#
# usage: scripts/bench-report.sh collect ROWS.jsonl OUT.json MODE
#          wraps the rows with the date, commit, CPUs and mode into OUT.json
#        scripts/bench-report.sh table OUT.json
#          prints the Markdown table
#        scripts/bench-report.sh readme OUT.json [README.md]
#          replaces the table between the README's markers
#          <!-- bench:begin --> and <!-- bench:end -->
set -euo pipefail
cd "$(dirname "$0")/.."

table() {
  jq -r '
    def num: if . == null then "" elif . >= 100 then (. | round | tostring)
      else ((. * 1000 | round) / 1000 | tostring) end;
    "Measured \(.date) at commit \(.commit[:7]), \(.cpus) CPUs, \(.mode) mode; ratio = ours / reference, the goal is met when ratio <= goal.",
    "",
    "| goal | tree | figure | ours | reference | ratio | goal | met | load | note |",
    "|---|---|---|---|---|---|---|---|---|---|",
    (.rows | sort_by({"large": 1, "small": 2, "pack": 3, "million": 4, "incremental": 5, "service": 6, "peer": 7}[.item] // 8)
     | .[] | "| \(.item) | \(.name) | \(.figure) | \(.ours | num) | \(.ref | num) (\(.ref_name)) | \(.ratio | num) | " +
      "\(if .goal == null then "-" else "<= \(.goal)" end) | \(if .met == null then "" elif .met then "yes" else "**no**" end) | " +
      "\(.load) | \(.note) |")' "$1"
}

case ${1:-} in
collect)
  jq -s --arg date "$(date -u +%Y-%m-%dT%H:%MZ)" --arg commit "$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --argjson cpus "$(nproc)" --arg mode "$4" \
    '{date: $date, commit: $commit, cpus: $cpus, mode: $mode, rows: .}' "$2" >"$3.tmp"
  mv "$3.tmp" "$3" ;;
table) table "$2" ;;
readme)
  readme=${3:-README.md}
  grep -q '^<!-- bench:begin -->$' "$readme" && grep -q '^<!-- bench:end -->$' "$readme" || {
    echo "bench-report: $readme has no <!-- bench:begin --> / <!-- bench:end --> markers" >&2; exit 1; }
  table "$2" >"$readme.table"
  awk -v t="$readme.table" '
    /^<!-- bench:end -->$/ { while ((getline l < t) > 0) print l; skip = 0 }
    !skip { print }
    /^<!-- bench:begin -->$/ { skip = 1 }' "$readme" >"$readme.tmp"
  rm "$readme.table"
  mv "$readme.tmp" "$readme" ;;
*) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
