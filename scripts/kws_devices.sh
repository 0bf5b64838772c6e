#!/bin/bash
# issue 10: does a cell of several PCM devices close the drift gap? Noise-aware training
# (scale 4, 32 epochs, spread mapping), with HamQ (arm hamq-nat) and without (arm nat),
# on folds 0-2, read at one day with per-column compensation and AdaBS (the best setting
# of RESULTS.md), with 1, 2 and 4 devices per cell (array.devices_per_cell; the models
# are trained on one device per cell, so more devices only quiet the arrays they are read
# on). TRAIN_DEVICES=2 trains on arrays of 2 devices per cell instead (run folders end
# in -d2). Resumable: the sweep and each training resume; an evaluation is measured again
# (the same figures, same seeds). FOLDS="1 2", ARMS="nat" and N="1 4" select.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d data/speech_commands_v0.02_test ] || python -m hamq.data.shared ../shared/data/speech_commands_v0.02_test.flac.tar.gz data/
FOLDS=${FOLDS:-"0 1 2"}
only=(); for s in $FOLDS; do only+=(--only "w8-baseline-s$s"); done
hamq sweep configs/sweeps/kws-kfold.yaml --out runs/kws-kfold --quiet "${only[@]}" > /dev/null
NAT="--set analog.noise=true --set analog.clip_sigma=2.5 --set analog.scale=4 --set train.qat_epochs=32 --set hardware.slice_levels=spread"
for arm in ${ARMS:-hamq-nat nat}; do for s in $FOLDS; do
  # the 5-fold sweep's HamQ 0.5 run of this fold, as a config (its float stage is the baseline's)
  cfg=runs/kws-pcm/configs/w8-hamming-0.5-s$s.yaml
  mkdir -p runs/kws-pcm/configs
  python - "$s" "$cfg" <<'PY'
import sys
from pathlib import Path
import yaml
from hamq.experiments.sweep import load_sweep, run_config, variants
fold, cfg = sys.argv[1], Path(sys.argv[2])
sweep = load_sweep(Path("configs/sweeps/kws-kfold.yaml"))
runs = dict(variants(sweep, Path("runs/kws-kfold")))
plain = run_config(sweep, runs[f"w8-hamming-0.5-s{fold}"]).to_plain()
cfg.write_text(yaml.safe_dump(plain, sort_keys=False))
PY
  if [ $arm = hamq-nat ]; then
    r=runs/kws-pcm/w8-hamming-0.5-rc96-nat-x4-e32-spread-s$s; own="--set quant.range_code=96"
  else
    r=runs/kws-pcm/w8-nat-x4-e32-spread-s$s; own="--set regularizer.name=none"
  fi
  if [ "${TRAIN_DEVICES:-1}" != 1 ]; then
    r=$r-d$TRAIN_DEVICES; own="$own --set hardware.devices_per_cell=$TRAIN_DEVICES"
  fi
  if [ -f $r/checkpoint.safetensors ]; then RES=--resume; else RES=; fi
  hamq train --config $cfg --set hardware.preset=pcm-14nm $own $NAT --out $r $RES --quiet > /dev/null
  for n in ${N:-1 2 4}; do
    hamq eval $r --hw pcm-14nm --set array.slice_levels=spread --set device.compensation_scope=column \
        --set array.devices_per_cell=$n --noise --t 1d --repeats 10 --calibration-samples 300 --adapt-bn
  done
done; done
echo done
