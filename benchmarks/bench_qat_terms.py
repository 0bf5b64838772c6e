"""What the terms of a ResNet-20 QAT step cost (issue 11): HamQ, ``energy`` with measured
and with batch activity, and knowledge distillation from the float model.

    python benchmarks/bench_qat_terms.py [--threads 2] [--repeats 15] [--warmup 3]

ResNet-20 (CIFAR-10 shape), batch 128, random inputs, 8-bit QAT in float32, NHWC, SGD
with momentum 0.9 at lr 0.01, on ``rram-2b-40nm`` (differential 2-bit cells). Variants,
each training its own copy of the same initial model on the same batches:

- ``qat``: no term; ``hamming``: + HamQ; ``energy``: + the energy term with measured
  activity; ``energy batch``: + the energy term with ``activity: batch``;
- ``distill``: + a float teacher's forward and the KD loss (``train.distill``);
  ``distill bf16``: the teacher under bfloat16 autocast (with ``train.amp``).

Steps are interleaved (one of each variant per round, in rotating order) so machine load
hits all alike; figures are medians over rounds.
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
from hamq.training.distill import kd_loss
from interleave import print_table, step_args, time_interleaved

TERMS = {
    "hamming": {"name": "hamming"},
    "energy": {"name": "energy"},
    "energy batch": {"name": "energy", "activity": "batch"},
}


def main() -> None:
    args = step_args(__doc__, threads=2)
    cl = torch.channels_last
    teacher = build_model(ModelConfig(name="resnet20"), (3, 32, 32), 10).eval().to(memory_format=cl)
    base = copy.deepcopy(teacher).train()
    quantize_model(base, QuantConfig(w_bits=8, a_bits=8))
    x = torch.randn(args.batch, 3, 32, 32).contiguous(memory_format=cl)
    y = torch.randint(0, 10, (args.batch,))
    base(x)  # calibrate the input quantizers once, for every copy alike
    hw = load_hardware("rram-2b-40nm")

    steps = {}
    for name in ("qat", *TERMS, "distill", "distill bf16"):
        model = copy.deepcopy(base).train().to(memory_format=cl)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        reg = None
        if name in TERMS:
            reg = build_regularizer(RegularizerConfig(**TERMS[name], **{"lambda": 1.0}), hw)
            reg.attach(model)

        def step(model=model, opt=opt, reg=reg, name=name) -> None:
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=0.1)
            if name.startswith("distill"):
                with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled="bf16" in name):
                    soft = teacher(x)
                loss = 0.5 * loss + 0.5 * kd_loss(logits, soft, 4.0)
            if reg is not None:
                loss = loss + reg(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[name] = step

    times = time_interleaved(steps, args.warmup, args.repeats)
    print_table(times, args.threads, args.batch, ref="qat")


if __name__ == "__main__":
    main()
