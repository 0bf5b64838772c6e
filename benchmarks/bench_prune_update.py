"""What the prune term costs per QAT step, as a loss term and as a proximal step.

    python benchmarks/bench_prune_update.py [--threads 1] [--repeats 15] [--warmup 3]

ResNet-20 (CIFAR-10 shape), batch 128, random inputs, 8-bit QAT, LFSR masks at 50% on every
quantized layer (not fixed yet: the regularized phase), SGD with momentum 0.9 at lr 0.01.
Variants, each training its own copy of the same initial model on the same batches:

- ``qat``: the masks attached, no prune term;
- ``gradient``: plus the prune term in the loss (``sparsity.update: gradient``);
- ``proximal``: plus the proximal step after each optimizer step (``update: proximal``).

Steps are interleaved (one of each variant per round, in rotating order) so machine load
hits all alike; figures are medians over rounds. "Prox alone" times ``prox_step`` by itself
on the ``proximal`` model, interleaved the same way.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from hamq.hardware.spec import load_hardware
from hamq.models import ModelConfig, build_model
from hamq.quantization.config import QuantConfig
from hamq.quantization.convert import quantize_model
from hamq.regularizers import RegularizerConfig, build_regularizer
from hamq.sparsity.config import SparsityConfig
from hamq.sparsity.layers import attach_masks, resolve_masks
from hamq.sparsity.proximal import prox_after_step, prox_step
from interleave import print_table, step_args, time_interleaved

LAMBDA = 0.01


def main() -> None:
    args = step_args(__doc__, threads=1)
    base = build_model(ModelConfig(name="resnet20"), (3, 32, 32), 10)
    quantize_model(base, QuantConfig(w_bits=8, a_bits=8))
    attach_masks(base, resolve_masks(base, SparsityConfig(sparsity=0.5), ()))
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    base(x)  # calibrate the input quantizers once, for every copy alike
    hw = load_hardware("rram-2b-40nm")
    prune = build_regularizer(RegularizerConfig(name="prune", **{"lambda": LAMBDA}), hw)

    steps = {}
    models = {}
    for name in ("qat", "gradient", "proximal"):
        model = copy.deepcopy(base).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        if name == "proximal":
            prox_after_step(opt, model, LAMBDA)

        def step(model=model, opt=opt, name=name) -> None:
            loss = F.cross_entropy(model(x), y)
            if name == "gradient":
                loss = loss + prune(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[name], models[name] = step, (model, opt)

    def prox_alone() -> None:
        model, opt = models["proximal"]
        prox_step(model, opt, LAMBDA)

    timed = {**steps, "prox alone": prox_alone}
    times = time_interleaved(timed, args.warmup, args.repeats)
    print_table(times, args.threads, args.batch, ref="qat")


if __name__ == "__main__":
    main()
