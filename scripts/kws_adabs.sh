#!/bin/bash
# issue 10: every arm of the noise study on the spread mapping at 1 s, 1 h, 1 d and 1 y,
# 10 programmings, with the BatchNorm statistics re-estimated through the noisy arrays
# (--adapt-bn, AdaBS) on the 300 stratified validation clips that calibrate the ADCs.
# FOLDS="1 2" and ARMS="..." select; needs the runs of RESULTS.md (runs/kws-kfold,
# runs/kws-pcm). Each evaluation writes RUN/noise/ and run.json's noise entry.
cd "$(dirname "$0")/.."
ARMS=${ARMS:-"hamming-0.5-rc96-nat-x4-e32-spread nat-x4-e32-spread baseline hamming-0.5-rc96"}
for a in $ARMS; do for s in ${FOLDS:-0 1 2}; do
  if [ $a = baseline ]; then r=runs/kws-kfold/w8-baseline-s$s; else r=runs/kws-pcm/w8-$a-s$s; fi
  hamq eval $r --hw pcm-14nm --set array.slice_levels=spread --noise --t 1s,1h,1d,1y \
      --repeats 10 --calibration-samples 300 --adapt-bn
done; done
echo done
