#!/bin/sh
# The paybench nightly, ready to copy into a CI job (docs/ci/nightly.yml runs it on GitHub
# Actions; any CI that keeps a folder between runs can run it as it is):
#
#   1. restore the history from the previous run's artefact folder;
#   2. run the nightly profile against the built-in reference target (or PAYBENCH_HOST);
#   3. append the run's summary.md to the CI step summary;
#   4. leave the run folder and the history in the artefact folder for the CI to upload.
#
#   sh docs/ci/nightly.sh [more `paybench run` options ...]
#
# Environment, all optional:
#   PAYBENCH                  how to call paybench [paybench]; e.g. ".venv/bin/paybench"
#   PAYBENCH_PREVIOUS         the previous run's artefact folder, as the CI restored it [previous]
#   PAYBENCH_ARTEFACT         the folder to upload [paybench-nightly]
#   PAYBENCH_OUT              paybench's output root [reports]
#   PAYBENCH_RUN_TIME         a shorter run than the profile's 5 minutes (e.g. 20s)
#   PAYBENCH_HOST             load this host (listed under hosts.allow in budgets.yaml)
#   PAYBENCH_FAIL_NOT_JUDGED  1: a run that could not be judged fails the job too
#   GITHUB_STEP_SUMMARY       the step summary file (GitHub Actions sets it)
#
# Exit code: 0 every budget holds, or the run could not be judged (paybench's exit 3,
# reported as "not judged": the target, Locust or the machine failed, which says nothing
# about the code); 1 a budget or regression budget is broken; 2 a configuration error;
# 130 interrupted.
set -u

PAYBENCH=${PAYBENCH:-paybench}
PREVIOUS=${PAYBENCH_PREVIOUS:-previous}
ARTEFACT=${PAYBENCH_ARTEFACT:-paybench-nightly}
OUT=${PAYBENCH_OUT:-reports}
history="$OUT/history.sqlite"

mkdir -p "$OUT/runs" "$ARTEFACT" || exit 2
if [ -f "$PREVIOUS/history.sqlite" ]; then
  # The -wal file holds what was not yet checkpointed, when the copy has one.
  for f in "$PREVIOUS"/history.sqlite*; do cp "$f" "$OUT/"; done
  echo "paybench nightly: history restored from $PREVIOUS/history.sqlite"
elif [ -f "$history" ]; then
  echo "paybench nightly: no previous artefact in $PREVIOUS; keeping $history"
else
  echo "paybench nightly: no previous history in $PREVIOUS; this run starts one"
fi

set -- --profile nightly --out "$OUT" "$@"
if [ -n "${PAYBENCH_RUN_TIME:-}" ]; then set -- "$@" --run-time "$PAYBENCH_RUN_TIME"; fi
if [ -n "${PAYBENCH_HOST:-}" ]; then set -- "$@" --host "$PAYBENCH_HOST"; fi

before=$(ls -1 "$OUT/runs" | sort | tail -n 1)
work=$(mktemp -d) || exit 2
# The progress (stderr) shows live; the verdict (stdout) is kept to read the reason from.
# shellcheck disable=SC2086  # PAYBENCH may be a command with arguments
( $PAYBENCH run "$@" 2>&1 >"$work/out"; echo $? >"$work/code" ) | tee "$work/err" >&2
code=$(cat "$work/code")
cat "$work/out"

run_dir=""
latest=$(ls -1 "$OUT/runs" | sort | tail -n 1)
if [ -n "$latest" ] && [ "$latest" != "$before" ]; then run_dir="$OUT/runs/$latest"; fi

case $code in
  0) verdict="PASS: every budget holds" ;;
  1) verdict="FAIL: a budget or regression budget is broken" ;;
  3) why=$(sed -n 's/^why: //p' "$work/out" | head -n 1)
     [ -n "$why" ] || why=$(grep 'paybench: error: ' "$work/err" | tail -n 1 | sed 's/^paybench: error: //')
     verdict="not judged (exit 3): ${why:-see the log}" ;;
  130) verdict="interrupted (exit 130)" ;;
  *) verdict="error (exit $code): $(grep 'paybench: error: ' "$work/err" | tail -n 1 | sed 's/^paybench: error: //')" ;;
esac
echo "paybench nightly: $verdict"
if [ "$code" = 3 ] && [ "${GITHUB_ACTIONS:-}" = true ]; then
  echo "::warning title=paybench nightly::$verdict"
fi

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  if [ -n "$run_dir" ] && [ -f "$run_dir/summary.md" ]; then
    cat "$run_dir/summary.md" >>"$GITHUB_STEP_SUMMARY"
  fi
  if [ "$code" != 0 ] && [ "$code" != 1 ]; then
    printf '\n**paybench nightly: %s**\n' "$verdict" >>"$GITHUB_STEP_SUMMARY"
  fi
fi

# The artefact: the history (restored next time) and this run's folder.
for f in "$OUT"/history.sqlite*; do
  if [ -f "$f" ]; then cp "$f" "$ARTEFACT/"; fi
done
if [ -n "$run_dir" ]; then
  mkdir -p "$ARTEFACT/runs" && cp -R "$run_dir" "$ARTEFACT/runs/"
fi
rm -rf "$work"

case $code in
  3) if [ "${PAYBENCH_FAIL_NOT_JUDGED:-}" = 1 ]; then exit 3; fi; exit 0 ;;
  *) exit "$code" ;;
esac
