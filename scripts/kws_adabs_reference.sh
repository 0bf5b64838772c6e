#!/bin/bash
# issue 10: the reference for scripts/kws_adabs.sh: each run read on noiseless arrays
# (every PCM noise scale 0, t = 0) with the same AdaBS re-estimation of BatchNorm on the
# same 300 stratified validation clips. AdaBS alone changes a model whose BatchNorm
# statistics were gathered under training noise; this separates that from drift.
cd "$(dirname "$0")/.."
ARMS=${ARMS:-"hamming-0.5-rc96-nat-x4-e32-spread nat-x4-e32-spread baseline hamming-0.5-rc96"}
QUIET="--set device.prog_noise_scale=0 --set device.read_noise_scale=0 --set device.drift_scale=0"
for a in $ARMS; do for s in ${FOLDS:-0 1 2}; do
  if [ $a = baseline ]; then r=runs/kws-kfold/w8-baseline-s$s; else r=runs/kws-pcm/w8-$a-s$s; fi
  hamq eval $r --hw pcm-14nm --set array.slice_levels=spread $QUIET --noise --t 0s \
      --repeats 1 --calibration-samples 300 --adapt-bn
done; done
echo done
