# shellcheck shell=bash
# Shared by the scripts/bench-*.sh scripts (source it): one JSON row per
# figure, so that `make bench` (scripts/bench.sh) prints every figure of
# issue 22 in one table and writes it as out/bench.json.
#
# A row compares one figure of ours with a reference measured in the same
# run (the peer's figure, or a machine limit such as the RSA signing floor)
# or with a fixed limit (512 MiB), as ratio = ours / ref; the goal is met
# when ratio <= goal. Rows are appended, one JSON object per line, to the
# file $BENCH_JSON names (nothing is written when it is unset):
#
#   {"item":"large","name":"8 files of 64-256 MiB, zstd-3","figure":"wall s",
#    "ours":3.8,"ref":3.22,"ref_name":"peer: cp + evmctl + mksquashfs",
#    "ratio":1.18,"goal":0.5,"met":false,"load":2.31,"note":"","run":1}
#
#   item      which goal of issue 22: large, small, pack, million,
#             incremental, service (or peer: a tree with no goal but "ahead
#             of the peer")
#   name      the tree and settings; figure: what is compared, with its unit
#   ours/ref  numbers; ratio = ours/ref; goal: the largest ratio that meets
#             the goal, or null for a figure reported without a goal
#   load      the 1-minute load average when the row was measured
#   note      free text (the peer's parts, bytes per file, ...)
#   run       $BENCH_RUN (default 1): scripts/bench.sh --runs N measures
#             every row N times, and the table shows one column per run
#
# Usage: bench_row ITEM NAME FIGURE OURS REF REF_NAME GOAL [NOTE]
# (GOAL "-" for none).
bench_row() {
  local item=$1 name=$2 figure=$3 ours=$4 ref=$5 ref_name=$6 goal=$7 note=${8:-}
  [ -n "${BENCH_JSON:-}" ] || return 0
  [ "$goal" = - ] && goal=null
  jq -nc --arg item "$item" --arg name "$name" --arg figure "$figure" \
    --argjson ours "$(bench_num "$ours")" --argjson ref "$(bench_num "$ref")" --arg ref_name "$ref_name" \
    --argjson goal "$goal" --argjson load "$(cut -d' ' -f1 /proc/loadavg)" --arg note "$note" \
    --argjson run "${BENCH_RUN:-1}" '
    {item: $item, name: $name, figure: $figure, ours: $ours, ref: $ref, ref_name: $ref_name,
     ratio: (if $ref == 0 then null else ($ours / $ref * 10000 | round / 10000) end),
     goal: $goal,
     met: (if $goal == null or $ref == 0 then null else ($ours / $ref <= $goal) end),
     load: $load, note: $note, run: $run}' >>"$BENCH_JSON"
}

# bench_settle: run (untimed) before every timed command. It writes out
# the dirty pages that earlier commands left (`sync`), so that no timed
# command pays for another's writeback: the peer's `cp -a` and
# `mksquashfs` leave up to 2 GB dirty and do not sync, and a build that
# followed them at once competed with that writeback for the disk (this
# VM writes ~570 MB/s): our large-file build (which syncs its own image
# before the rename) took 1.69-1.81 s after a dirty `cp -a` of its tree,
# 1.43-1.73 s after `sync`. Each side still pays for what it does itself.
bench_settle() { sync; }

# bench_num X: X as a JSON number (bc prints ".5" and "-.5").
bench_num() { printf '%.6g' "$1"; }

# Repetitions. A figure that takes seconds on this 2-core VM moves by 10-20%
# between neighbouring measurements of the same binary (the large tree:
# 1.43 s in one run, 1.75 s in the next), which decided goals near their line.
# Where both sides are cheap, the scripts measure a figure BENCH_REPS times
# (default 3), alternating ours and the reference, and report the median of
# each side (bench_median); the log shows every sample. Expensive references
# (the peer's 50,000-file pipeline, cold builds of the Go tree) stay one
# measurement: each script says which figures are repeated.
BENCH_REPS=${BENCH_REPS:-3}
[[ $BENCH_REPS =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_REPS wants a positive number, not \"$BENCH_REPS\"" >&2; exit 2; }

# bench_median X...: the median of the numbers (the mean of the middle two
# for an even count).
bench_median() {
  [ $# -gt 0 ] || { echo "bench_median: no samples" >&2; return 1; }
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_max X...: the largest of the numbers, empty ones left out (none:
# nothing printed); for peak memory over repetitions and the highest of
# several measured rates.
bench_max() { printf '%s\n' "$@" | awk 'NF && (m == "" || $1 + 0 > m + 0) {m = $1} END {if (m != "") print m}'; }
