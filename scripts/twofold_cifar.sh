#!/bin/bash
# Issue 11 on the converged ResNet-20 / CIFAR-10: the runs of configs/sweeps/
# twofold-cifar-r20.yaml in the order the sessions of 2026-12-06 and 2026-12-07 (three)
# trained them, in two lanes of one thread each (a 2-core machine trains two runs side by
# side faster than one run on both cores). A pattern brings the float stage or retrain its
# runs start from (`w8-rows-0.7-hamq-*` now also the 30-epoch retrain's run). Every call resumes: finished runs are reused, an
# interrupted one goes on from its last epoch, so rerunning this script picks up where it
# stopped.
#   bash scripts/twofold_cifar.sh            # both lanes, in the background, logs in runs/
#   LANE=a bash scripts/twofold_cifar.sh     # one lane in the foreground (a or b)
#   FLOAT_CACHE=1 bash scripts/twofold_cifar.sh   # from the committed float stages
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=configs/sweeps/twofold-cifar-r20.yaml
OUT=runs/twofold-cifar-r20
[ -d data/cifar10-jpeg ] || python -m hamq.data.shared ../shared/data/cifar10-jpeg.tar.gz data/
# FLOAT_CACHE=1: start from the committed float stages (the baseline's, the 50% retrain's;
# docs/sweeps.md) instead of training them again; run folders already there are kept
if [ "${FLOAT_CACHE:-0}" = 1 ]; then
  python scripts/float_cache.py restore artifacts/float-stages/twofold-cifar-r20 "$OUT"
fi
# the float stage and the dense baseline first, on both cores
hamq sweep "$SWEEP" --out "$OUT" --quiet --only w8-baseline > /dev/null
# lane a: dense runs (HamQ, energy with batch activity, L1, bits), then the 50% and 30%
# row grids; lane b: the tile-aligned retrain and its runs (they start QAT from it), then
# the 70% and 90% grids. In each grid, pruning alone first (its float retrain is the
# others' start), then twofold (bits), twofold + energy, twofold + HamQ.
LANE_A="w8-baseline-kd w8-hamming-2-rc80-kd w8-hamming-2-rc96-kd w8-energyb-0.1-kd
  w8-energyb-0.02-kd w8-hamming-2-rc96 w8-l1-0.002-kd w8-bits-0.03-kd
  w8-rows-0.5-kd-ft15 w8-rows-0.5-bits-* w8-rows-0.5-energyb-* w8-rows-0.5-hamq-*
  w8-rows-0.3-* w8-hamming-2-kd w8-hamming-2-s0.05-kd w8-energy-4-kd w8-baseline-kd-q12
  w8-energy-4-s0.03-kd w8-hamming-4-kd w8-hamming-4-kd-last w8-hamming-3-kd
  w8-hamming-2-rc112-kd w8-baseline-qs*"
LANE_B="w8-tiles1-kd-ft30 w8-tiles1-energyb-0.02-kd-ft30 w8-tiles1-hamq-kd-ft30
  w8-tiles1-bits-kd-ft30 w8-rows-0.7-kd-ft15 w8-rows-0.7-bits-* w8-rows-0.7-energyb-*
  w8-rows-0.7-hamq-* w8-rows-0.9-* w8-hamming-2-s0.05-rc96-kd w8-energyb-0.04-kd
  w8-hamming-2-kd-q12 w8-rows-0.7-kd-ft30 w8-rows-0.7-hamq-kd-ft30 w8-hamming-2-rc112
  w8-hamming-2-rc112-qs*"
lane() {
  local -
  set -f  # the patterns are hamq's globs, not the shell's
  for pattern in $1; do
    OMP_NUM_THREADS=1 hamq sweep "$SWEEP" --out "$OUT" --quiet --only "$pattern" > /dev/null \
      || echo "$(date -u +%FT%TZ) $pattern: the sweep reported a failed run (see its error.txt)" >&2
  done
}
mkdir -p runs
case "${LANE:-both}" in
  a) lane "$LANE_A" ;;
  b) lane "$LANE_B" ;;
  both)
    lane "$LANE_A" > runs/twofold-lane-a.log 2>&1 &
    lane "$LANE_B" > runs/twofold-lane-b.log 2>&1 &
    wait ;;
esac
# the lanes' reports race (each writes results.json from the runs finished when it began),
# so one last report of every finished run, then its table (RESULTS.md)
hamq sweep "$SWEEP" --out "$OUT" --quiet --finished-only > /dev/null
python scripts/twofold_table.py "$OUT"
