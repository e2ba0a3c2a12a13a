#!/usr/bin/env bash
# Renders the benchmark rows (scripts/bench-lib.sh) as one table, one line
# per figure with one column per run.
#
# usage: scripts/bench-report.sh collect ROWS.jsonl OUT.json MODE [PARTS.jsonl]
#          wraps the rows (and the parts' timings, one JSON object a line:
#          {"run":1,"part":"peer","seconds":139,"rc":0}) with the date,
#          commit, CPUs, mode and number of runs into OUT.json
#        scripts/bench-report.sh merge OUT.json IN.json...
#          one OUT.json of several, their runs renumbered 1, 2, ... in order
#          (two invocations of scripts/bench.sh taken as two runs; the
#          trees' time, run 0, stays run 0)
#        scripts/bench-report.sh table OUT.json
#          prints the Markdown table
#        scripts/bench-report.sh readme OUT.json [README.md]
#          replaces the table between the README's markers
#          <!-- bench:begin --> and <!-- bench:end -->
# Paths are relative to the current directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# The table: rows grouped by (item, name, figure) in the order of the items
# of issue 22, then of first appearance; a column per run showing the ratio
# and, in brackets, ours and the reference; "met" lists each run's verdict.
table() {
  jq -r '
    def num: if . == null then "-" elif (. >= 100 or . <= -100) then (round | tostring)
      else ((. * 1000 | round) / 1000 | tostring) end;
    def md: tostring | gsub("\\|"; "\\|") | gsub("\n"; " ");
    def order: {"large": 1, "small": 2, "pack": 3, "million": 4, "incremental": 5, "service": 6, "peer": 7}[.] // 8;
    def verdict: if . == null then "-" elif .met == null then "-" elif .met then "yes" else "**no**" end;
    def cell: if . == null then "-" else "\(.ratio | num) (\(.ours | num) / \(.ref | num))" end;
    def joined(f): map(if . == null then "-" else (f | tostring) end) | join(", ");
    . as $doc
    | ([$doc.runs // 0, ($doc.rows[] | .run // 1)] | max) as $n
    | [range(1; $n + 1)] as $runs
    | [$doc.rows | to_entries[] | .value + {idx: .key, run: (.value.run // 1)}] as $rows
    | ($rows | group_by([.item, .name, .figure]) | sort_by([(.[0].item | order), (map(.idx) | min)])) as $groups
    | [$groups[] | select(.[0].goal != null)] as $goals
    | "Measured \($doc.date) at commit \($doc.commit[:7]), \($doc.cpus) CPUs, \($doc.mode) mode, \($n) run\(if $n == 1 then "" else "s" end); " +
      "ratio = ours / reference, the goal is met when ratio <= goal.",
      "",
      "| item | tree | figure | reference | goal | " + ($runs | map("run \(.): ratio (ours / ref)") | join(" | ")) + " | met | load | note |",
      "|---|---|---|---|---|" + ($runs | map("---|") | join("")) + "---|---|---|",
      ($groups[] | . as $g
       | [$runs[] as $r | ($g | map(select(.run == $r)) | .[0])] as $by
       | ($g | map(.note) | unique | map(select(. != ""))) as $notes
       | "| \(.[0].item | md) | \(.[0].name | md) | \(.[0].figure | md) | \($g | map(.ref_name) | unique | join(" / ") | md) | " +
         "\(if .[0].goal == null then "-" else "<= \(.[0].goal)" end) | " +
         ($by | map(cell) | join(" | ")) + " | " +
         ($by | map(verdict) | join(", ")) + " | " + ($by | joined(.load)) + " | " +
         (if ($notes | length) <= 1 then ($notes | join("")) else ($by | map(if . == null or .note == "" then "-" else .note end) | to_entries | map("run \(.key + 1): \(.value)") | join("; ")) end | md) + " |"),
      "",
      "Goals met in every run: \([$goals[] | select(length == $n and all(.met == true))] | length) of \($goals | length) rows with a goal" +
      (if $n > 1 then "; in some runs only: \([$goals[] | select(any(.met == true) and (length < $n or any(.met != true)))] | length)" else "" end) +
      "; in none: \([$goals[] | select(all(.met != true))] | length)" +
      (if ($doc.parts // []) == [] then "." else
        ". Time per part: " + ([$doc.parts | to_entries[] | .value + {i: .key}] | group_by(.part) | sort_by(map(.i) | min)
          | map("\(.[0].part) " + (map("\(.seconds) s" + (if .rc != 0 then " (failed)" else "" end)) | join(" + "))) | join(", ")) +
        "; total \([$doc.parts[].seconds] | add) s." end)' "$1"
}

case ${1:-} in
collect)
  parts=${5:-/dev/null}
  jq -n --slurpfile rows "$2" --slurpfile parts "$parts" --arg date "$(date -u +%Y-%m-%dT%H:%MZ)" \
    --arg commit "$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)" --argjson cpus "$(nproc)" --arg mode "$4" '
    {date: $date, commit: $commit, cpus: $cpus, mode: $mode,
     runs: ([0, ($rows[] | .run // 1), ($parts[] | .run)] | max), parts: $parts, rows: $rows}' >"$3.tmp"
  mv "$3.tmp" "$3" ;;
merge)
  out=$2; shift 2
  [ $# -gt 0 ] || { echo "bench-report: merge OUT.json IN.json..." >&2; exit 2; }
  jq -s '
    def runs: [.runs // 0, (.rows[] | .run // 1)] | max;
    reduce .[] as $d ({base: 0, doc: (.[0] | .rows = [] | .parts = [])};
      .base as $b
      | .doc.rows += [$d.rows[] | .run = (.run // 1) + $b]
      | .doc.parts += [($d.parts // [])[] | if .run == 0 then . else .run += $b end]
      | .doc.date = $d.date | .doc.commit = $d.commit
      | .base += ($d | runs))
    | .doc + {runs: .base}' "$@" >"$out.tmp"
  mv "$out.tmp" "$out" ;;
table) table "$2" ;;
readme)
  readme=${3:-$root/README.md}
  if ! grep -q '^<!-- bench:begin -->$' "$readme" || ! grep -q '^<!-- bench:end -->$' "$readme"; then
    echo "bench-report: $readme has no <!-- bench:begin --> / <!-- bench:end --> markers" >&2; exit 1
  fi
  table "$2" >"$readme.table"
  awk -v t="$readme.table" '
    /^<!-- bench:end -->$/ { while ((getline l < t) > 0) print l; skip = 0 }
    !skip { print }
    /^<!-- bench:begin -->$/ { skip = 1 }' "$readme" >"$readme.tmp"
  rm "$readme.table"
  mv "$readme.tmp" "$readme" ;;
*) sed -n '2,18p' "$0" >&2; exit 2 ;;
esac
