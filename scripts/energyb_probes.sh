#!/bin/bash
# Short QAT probes of the energy term with batch activity (RESULTS.md, issue 11 part 6):
# 10,000 training images, one QAT epoch with distillation 0.5, from the twofold sweep's
# shared float stage (train it first: scripts/twofold_cifar.sh or
# `hamq sweep configs/sweeps/twofold-cifar-r20.yaml --out runs/twofold-cifar-r20 --only w8-baseline`);
# energy on the first 300 test images. About 6 minutes per lambda on one thread here.
#   bash scripts/energyb_probes.sh                  # lambdas 0, 0.1, 0.5
#   LAMS="0.02 0.05" bash scripts/energyb_probes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FLOAT=runs/twofold-cifar-r20/w8-baseline
[ -f "$FLOAT/float.safetensors" ] || { echo "no float stage in $FLOAT: train it first (see above)" >&2; exit 2; }
mkdir -p runs/probes
for lam in ${LAMS:-0 0.1 0.5}; do
  out=runs/probes/eb-$lam
  OMP_NUM_THREADS=1 hamq train --config configs/recipes/resnet20-cifar10-converged.yaml --out "$out" \
    --quiet --resume --set train.init_from="$FLOAT" --set train.float_epochs=0 \
    --set train.qat_epochs=1 --set data.train_limit=10000 --set regularizer.name=energy \
    --set regularizer.lambda="$lam" --set regularizer.activity=batch \
    --set hardware.representation=differential --set train.distill=0.5
  echo "== lambda $lam: $(python -c "import json,sys; print(json.load(open(sys.argv[1]))['accuracy'])" "$out/run.json")"
  OMP_NUM_THREADS=1 hamq energy "$out" --hw rram-2b-40nm --samples 300 | grep -E "^  E_cb(&AD)? "
done
