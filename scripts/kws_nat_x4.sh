#!/bin/bash
# issue 10: HamQ + NAT at scale 4, 32 epochs on the spread mapping, folds 0-2
# FOLDS="1 2" bash scripts/kws_nat_x4.sh runs only those folds
# needs the 5-fold KWS sweep of RESULTS.md (runs/kws-kfold); resumes a fold cut short
cd "$(dirname "$0")/.."
NAT="--set analog.noise=true --set analog.clip_sigma=2.5 --set analog.scale=4 --set train.qat_epochs=32 --set hardware.slice_levels=spread"
for s in ${FOLDS:-0 1 2}; do base=runs/kws-kfold/w8-hamming-0.5-s$s/config.yaml
  r=runs/kws-pcm/w8-hamming-0.5-rc96-nat-x4-e32-spread-s$s
  if [ -f $r/checkpoint.safetensors ]; then RES=--resume; else RES=; fi
  hamq train --config $base --set hardware.preset=pcm-14nm --set quant.range_code=96 $NAT --out $r $RES --quiet
  hamq eval $r --hw pcm-14nm --set array.slice_levels=spread --noise --t 1d --repeats 10 --calibration-samples 300
done
echo done
