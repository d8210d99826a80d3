"""The arithmetic precision of a trial's network: fp32, bf16 or fp16 autocast, or `auto`.

Only the network's forward pass runs under ``torch.autocast`` (Micikevicius et al., "Mixed
Precision Training", ICLR 2018): its output is cast back to float32 before the miner and the
loss, so the kernels and their float32 / float64 references keep their contracts. fp16 has
a narrow exponent range and needs loss scaling (a ``torch.amp.GradScaler``); bf16 keeps
float32's range (Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training",
arXiv:1905.12322, 2019) and needs none.

`auto` is resolved once per machine, before a trial's id is computed (``resolve_precision``),
so the concrete precision is part of what the id hashes.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# The x86 flags of a CPU with native bf16 arithmetic (AMX tiles, or AVX-512 BF16 dot
# products): without them oneDNN emulates bf16 and it is slower than fp32.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def device_type(device: str | torch.device) -> str:
    """"cuda:1" -> "cuda"; the device type autocast takes."""
    return torch.device(device).type


def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The bf16 flags of CPU_BF16_FLAGS that this machine's CPU has (none where
    /proc/cpuinfo cannot be read, e.g. not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return tuple(f for f in CPU_BF16_FLAGS if f in flags)


@functools.lru_cache(maxsize=None)
def default_precision(device: str | torch.device = "cpu") -> str:
    """What `auto` means on this machine for `device`: bf16 where the hardware computes it
    natively (a CPU with AMX or AVX-512 BF16; a CUDA device where
    torch.cuda.is_bf16_supported()), else fp32. fp16 is never chosen: it needs loss scaling
    and gains nothing over bf16 where bf16 exists."""
    kind = device_type(device)
    if kind == "cpu":
        return "bf16" if cpu_bf16_flags() else "fp32"
    if kind == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def concrete(precision: str, device: str | torch.device) -> str:
    """`precision` with `auto` replaced by this machine's default for `device`."""
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return default_precision(str(device)) if precision == "auto" else precision


def resolve_precision(config):
    """A copy of the TrialConfig with train.precision `auto` made concrete for its
    train.device on this machine (the config itself when it is concrete already)."""
    train = config.train
    if train.precision != "auto":
        return config
    update = {"precision": concrete("auto", train.device)}
    return config.model_copy(update={"train": train.model_copy(update=update)})


def autocast(device: str | torch.device, precision: str):
    """The context the forward pass runs in: autocast to bf16 / fp16, nothing for fp32."""
    precision = concrete(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type(device), dtype=DTYPES[precision])


def grad_scaler(device: str | torch.device, precision: str) -> torch.amp.GradScaler:
    """A loss scaler, enabled for fp16 only; disabled, its scale / step / update are the
    plain backward and optimizer step."""
    return torch.amp.GradScaler(device_type(device), enabled=concrete(precision, device) == "fp16")
