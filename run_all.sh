#!/usr/bin/env bash
# scorecast batch runner.
#   ./run_all.sh [--tier smoke|cpu|paper] [notebook ...]   execute notebooks with papermill into results/<tier>/
#   ./run_all.sh --tier paper --dry-run [run ...]            every paper notebook on tiny generated data (CPU, minutes)
#   ./run_all.sh --tier paper --preflight [notebook ...]     check data, weights, GPU and disk in seconds (also run before every paper batch)
#   ./run_all.sh --tests                                    the whole test suite (unit, paper dry run, nbval on results/smoke, browser)
# Sets up .venv with the pinned dependencies when no environment with scorecast is active.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

tier=smoke
tests=0
dry_run=0
preflight=0
notebooks=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tests) tests=1 ;;
    --dry-run) dry_run=1 ;;
    --tier) shift; tier=${1:?--tier needs smoke, cpu or paper} ;;
    --tier=*) tier=${1#--tier=} ;;
    --preflight) preflight=1 ;;
    -h|--help) sed -n 2,7p "$0"; exit 0 ;;
    -*) echo "run_all.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) notebooks+=("${1%.ipynb}") ;;
  esac
  shift
done
case "$tier" in smoke|cpu|paper) ;; *) echo "run_all.sh: --tier must be smoke, cpu or paper, got '$tier'" >&2; exit 2 ;; esac
[ "$dry_run" = 0 ] || [ "$tier" = paper ] || { echo "run_all.sh: --dry-run checks the paper tier; use --tier paper --dry-run" >&2; exit 2; }
[ "$dry_run" = 0 ] || [ "$preflight" = 0 ] || { echo "run_all.sh: --dry-run runs on generated data; --preflight checks the real one: give one of them" >&2; exit 2; }

# ---------------------------------------------------------------- environment
if [ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ] && python -c "import scorecast" 2>/dev/null; then
  PY=python                                   # an active env (venv or conda from environment.yml)
else
  PY="$ROOT/.venv/bin/python"
  stamp="$ROOT/.venv/.scorecast-installed"
  want=$(sha256sum pyproject.toml | cut -c1-16)
  if [ ! -x "$PY" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== setting up .venv (pinned dependencies; a few minutes the first time)"
    [ -x "$PY" ] || python3 -m venv "$ROOT/.venv"
    "$PY" -m pip install --quiet --no-cache-dir --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    "$PY" -m pip install --quiet --no-cache-dir -e "$ROOT" 2>&1 | grep -v "^WARNING: Location" || true
    "$PY" -c "import scorecast, torch, torch_geometric, papermill, nbval" || { echo "run_all.sh: installing the pinned dependencies into .venv failed; pip's message above says why (torch's x86_64 wheels with their CUDA libraries need about 6 GB free on the disk holding $ROOT)" >&2; exit 1; }
    echo "$want" > "$stamp"
  fi
fi
export PYTHONHASHSEED=0 SCORECAST_QUIET=1 MPLBACKEND=Agg
# Every tier pins its torch thread count: the count changes floating-point reduction order (and so
# the numbers), the cache keys include it, and results/<tier>/provenance.json records it.
# The counts are scorecast.provenance.TIER_THREADS (hand runs of a tier's notebooks use them too);
# SCORECAST_THREADS overrides, and is recorded. The tests re-execute the stored smoke notebooks at the
# count their provenance.json records, whatever SCORECAST_THREADS says (see below).
threads=$("$PY" -m scorecast.provenance threads "$([ "$dry_run" = 1 ] && echo smoke || echo "$tier")") || exit 2  # the dry run is a CPU check
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads

# ---------------------------------------------------------------- executing a notebook
# papermill runs in a process group of its own; jupyter_client starts its kernel in a session of its
# own. On SIGINT/SIGTERM, stop() kills both groups (papermill, the kernel and whatever the kernel
# started), so an interrupted run_all.sh leaves no orphans.
# "${detached[@]}" CMD ...: CMD in a process group of its own, which stop() can kill as a whole.
detached=("$PY" -c 'import os, sys; os.setpgid(0, 0); os.execvp(sys.argv[1], sys.argv[1:])')
running=  # the process group in_group waits for
beside=   # the process group of the tests' background lane (a run_all.sh of its own)
stop() {
  trap - INT TERM
  [ -z "$beside" ] || kill -TERM -- "-$beside" 2>/dev/null || true  # a run_all.sh of its own: it stops its notebooks
  if [ -n "$running" ]; then
    groups=("-$running")
    for kernel in $(pgrep -P "$running" || true); do groups+=("-$kernel"); done
    kill -TERM -- "${groups[@]}" 2>/dev/null || true
    wait "$running" 2>/dev/null || true
  fi
  echo "run_all.sh: interrupted (SIG$1); papermill and its kernel stopped" >&2
  exit $((128 + $(kill -l "$1")))
}
trap 'stop INT' INT
trap 'stop TERM' TERM
# temporary files and folders, removed however the script ends (stop() included)
temporary=()
trap 'rm -rf "${temporary[@]}"' EXIT

# in_group CMD ...: run CMD in a process group of its own (stop() kills it, and the groups of the kernels
# it started) and wait for it; CMD's exit status.
in_group() {
  local rc=0
  "${detached[@]}" "$@" &
  running=$!
  wait "$running" || rc=$?
  running=
  return "$rc"
}

# execute NAME NOTEBOOK PARAMS VALUES OUT_DIR: papermill notebooks/NOTEBOOK.ipynb -> OUT_DIR/NOTEBOOK.ipynb with
# the checked values of the parameter file PARAMS in the file VALUES (its layers merged: `scorecast.params
# check --write`, or a dry run's shrunk file) and output_dir OUT_DIR; on failure says which notebook, file and cell.
execute() {
  local name=$1 notebook=$2 params=$3 values=$4 out=$5 rc=0 marker
  marker=$(mktemp)
  temporary+=("$marker")
  mkdir -p "$out"
  in_group "$PY" -m papermill "notebooks/$notebook.ipynb" "$out/$notebook.ipynb" -f "$values" \
    -p output_dir "$out" --kernel python3 --cwd "$ROOT" --log-level WARNING || rc=$?
  if [ "$rc" != 0 ]; then
    if [ "$out/$notebook.ipynb" -nt "$marker" ]; then
      echo "run_all.sh: notebook $name failed$(failed_cell "$out/$notebook.ipynb") (parameters: $params); the executed notebook with the error is kept at $out/$notebook.ipynb" >&2
    else
      echo "run_all.sh: notebook $name failed before executing (parameters: $params; see the error above); no executed copy was written" >&2
    fi
  fi
  rm -f "$marker"
  return "$rc"
}

# failed_cell NOTEBOOK: " at cell In [n] (first line of its source)" for the first cell with an error
failed_cell() {
  "$PY" - "$1" <<'PYTHON' 2>/dev/null || true
import json, sys
for cell in json.load(open(sys.argv[1]))["cells"]:
    if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
        lines = [l for l in "".join(cell["source"]).splitlines() if l.strip() and not l.startswith("# NBVAL")]
        print(f" at cell In [{cell.get('execution_count')}] ({lines[0] if lines else ''})", end="")
        break
PYTHON
}

# dry_run [RUN ...]: the paper tier on tiny generated data (scorecast.dryrun): executed notebooks go to
# scratch/dry-run/out/, never results/; stops at the first failing notebook.
dry_run() {
  local scratch="$ROOT/scratch/dry-run" plan run notebook params out notes start
  rm -rf "$scratch" && mkdir -p "$scratch"
  plan=$("$PY" -m scorecast.dryrun "$scratch" "$@")
  echo "== paper tier, dry run: $(wc -l <<<"$plan") notebooks on tiny generated data in $scratch"
  while IFS=$'\t' read -r run notebook params out notes; do
    start=$(date +%s)
    execute "$run" "$notebook" "$params" "$params" "$out" </dev/null || { echo "run_all.sh: the paper-tier dry run failed at $run" >&2; return 1; }
    echo "   $run: ok in $(( $(date +%s) - start )) s${notes:+ (dry-run substitutions: $notes)}"
  done <<<"$plan"
  echo "== paper tier, dry run: all $(wc -l <<<"$plan") notebooks ran: $(cut -f1 <<<"$plan" | paste -sd ' ')"
}

# ---------------------------------------------------------------- tests
if [ "$tests" = 1 ]; then
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "== installing Debian's chromium for the browser check"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || { echo "run_all.sh: could not install chromium (needed by tests/test_browser.py)" >&2; exit 1; }
  fi
  # Two lanes side by side, one torch thread each on this 2-core machine: the paper-tier dry run (a
  # run_all.sh of its own, in the background; it only has to run every cell, its numbers are not
  # compared) beside the unit tests and then nbval. nbval re-executes copies of the stored smoke
  # notebooks (their output_dir pointed at a scratch folder, so results/ is never written) from an empty
  # cache; it checks that every cell runs and that printed text keeps its shape (numbers sanitised);
  # compare_results.py then checks every number of every stored table within the tolerance of its
  # quantity (tests/tolerances.yaml, measured across CPUs). Every check runs; the failures are listed at the end.
  fresh=$(mktemp -d)
  temporary+=("$fresh")
  "$PY" tests/compare_results.py prepare results/smoke "$fresh" >/dev/null
  stored=$("$PY" -m scorecast.provenance stored-threads results/smoke) || exit 1
  echo "== paper tier, dry run: started in the background (one thread); its log follows the tests"
  SCORECAST_THREADS=1 "${detached[@]}" "$ROOT/run_all.sh" --tier paper --dry-run >"$fresh/dry-run.log" 2>&1 </dev/null &
  beside=$!
  failed=()
  echo "== unit, packaging and browser tests"
  in_group "$PY" -m pytest tests -q || failed+=("the unit tests")
  echo "== nbval: re-execute the results/smoke notebooks (copies, from an empty cache, at the $stored torch thread(s) they were made with)"
  if in_group env SCORECAST_ROOT="$ROOT" SCORECAST_CACHE="$fresh/cache" OMP_NUM_THREADS="$stored" MKL_NUM_THREADS="$stored" \
      "$PY" -m pytest -q -p no:cacheprovider --rootdir "$fresh" --nbval "$fresh"/notebooks/*.ipynb \
      --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 900; then
    echo "== stored numbers: fresh tables against results/smoke within measured tolerances"
    "$PY" tests/compare_results.py check results/smoke "$fresh" || failed+=("the stored numbers")
  else
    failed+=("nbval")
  fi
  dry=0
  wait "$beside" || dry=$?
  beside=
  tr '\r' '\n' <"$fresh/dry-run.log" | grep -v '^Executing: ' || true  # its log, less papermill's progress bars
  [ "$dry" = 0 ] || failed+=("the paper-tier dry run")
  if [ ${#failed[@]} -gt 0 ]; then
    echo "run_all.sh --tests: failed: $(IFS=,; echo "${failed[*]}" | sed 's/,/, /g') (see above); the fresh notebooks and tables are kept in $fresh" >&2
    temporary=()
    exit 1
  fi
  echo "== all tests passed"
  exit 0
fi

# ---------------------------------------------------------------- notebooks
if [ "$dry_run" = 1 ]; then
  dry_run "${notebooks[@]}"
  exit 0
fi
if [ "$tier" = cpu ] && [ -z "${SCORECAST_DATA_ROOT:-}" ]; then
  if [ ! -d data/cifar10-jpeg ] && [ -f ../shared/data/cifar10-jpeg.tar.gz ]; then
    echo "== unpacking ../shared/data/cifar10-jpeg.tar.gz into data/"
    mkdir -p data && tar -xzf ../shared/data/cifar10-jpeg.tar.gz -C data
  fi
  [ -d data/cifar10-jpeg ] || { echo "run_all.sh: the cpu tier needs CIFAR-10 as an image folder: set SCORECAST_DATA_ROOT or put it in data/cifar10-jpeg" >&2; exit 1; }
  export SCORECAST_DATA_ROOT="$ROOT/data/cifar10-jpeg"
fi
# A run is named after its parameter file: params/<tier>/<notebook>.yaml (the tier's values over
# params/base/<notebook>.yaml), or <notebook>--<variant>.yaml for a second setting of the same artefact
# (e.g. tab4_adversarial--2m, the paper's Table 5; its values over the tier file's), which executes the
# same notebook into its own folder results/<tier>/<notebook>--<variant>/.
if [ ${#notebooks[@]} -eq 0 ]; then
  for f in params/"$tier"/*.yaml; do
    name=$(basename "$f" .yaml)
    [ -f "notebooks/${name%%--*}.ipynb" ] && notebooks+=("$name")
  done
fi
for name in "${notebooks[@]}"; do
  [ -f "notebooks/${name%%--*}.ipynb" ] || { echo "run_all.sh: no notebook notebooks/${name%%--*}.ipynb" >&2; exit 2; }
  [ -f "params/$tier/$name.yaml" ] || { echo "run_all.sh: no parameter file params/$tier/$name.yaml" >&2; exit 2; }
done
# Every parameter file is checked against its notebook before any notebook runs: unknown keys
# (papermill would only warn), bad scorer/method options and impossible values stop the batch here.
pairs=()
files=()
for name in "${notebooks[@]}"; do pairs+=("notebooks/${name%%--*}.ipynb" "params/$tier/$name.yaml"); files+=("params/$tier/$name.yaml"); done
merged=$(mktemp -d)  # each file's checked values, merged over its layers: what papermill gets
temporary+=("$merged")
"$PY" -m scorecast.params check --write "$merged" "${pairs[@]}" || { echo "run_all.sh: fix the parameter file(s) named above; no notebook was run" >&2; exit 2; }
# Pre-flight (scorecast.preflight): data readable, weights present, a GPU where the tier needs one, disk
# space for the planned records. --preflight runs only this; a paper batch runs it first and stops on a problem.
if [ "$preflight" = 1 ] || [ "$tier" = paper ]; then
  "$PY" -m scorecast.preflight "${files[@]}" || { echo "run_all.sh: the pre-flight found the problem(s) above; no notebook was run" >&2; exit 2; }
  [ "$preflight" = 0 ] || exit 0
fi
# A failed notebook does not stop the batch: the others run, the index is written, and the exit status
# is 1 with the failed runs named at the end.
failed=()
for name in "${notebooks[@]}"; do
  notebook=${name%%--*}
  out="results/$tier"
  [ "$name" = "$notebook" ] || out="results/$tier/$name"
  echo "== $tier: $name"
  start=$(date +%s)
  execute "$name" "$notebook" "params/$tier/$name.yaml" "$merged/$name.yaml" "$out" || { failed+=("$name"); echo "   FAILED after $(( $(date +%s) - start )) s; going on with the other notebooks"; continue; }
  "$PY" -m jupyter nbconvert --to html --log-level WARN --TagRemovePreprocessor.remove_cell_tags parameters "$out/$notebook.ipynb" --output-dir "$out" >/dev/null  # readers see the injected tier values, not the smoke defaults
  "$PY" -m scorecast.provenance record "results/$tier" "$name" "$tier"
  echo "   done in $(( $(date +%s) - start )) s"
done
"$PY" -m scorecast.report "results/$tier"
echo "== index: results/$tier/index.html"
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_all.sh: ${#failed[@]} of ${#notebooks[@]} notebook(s) failed: ${failed[*]} (the errors are above; the others ran and are in the index)" >&2
  exit 1
fi
