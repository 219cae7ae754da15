"""What the machine offers for training: the device, bf16 support, and the precision ``auto`` picks.

``precision: auto`` chooses bf16 autocast where it pays: CUDA GPUs with bf16 (Ampere and later, the
usual practice) and CPUs with AMX-BF16 (Sapphire Rapids and later). On such a CPU bench/train_speed.py
measured a bf16 matrix product at 3.9x the fp32 rate and, on CoNLL-2003 with MiniLM (whose matrices
are small), training 1.10x faster than fp32 at +0.23 points of dev F1 (docs/benchmarks.md, "Training").
CPUs with AVX512-BF16 but no AMX run bf16 on the vector units, and there torch's speed has differed
between machines of the same flags: on one 2-core AMD EPYC bf16 matrix products ran at 0.3-2.4 GFLOP/s
against 90-116 in fp32; on another (AMD EPYC, family 25 model 17) at 410 against 105-187, and MiniLM's
evaluation of CoNLL-2003 dev took 7.5-8.0 s in bf16 against 13.4 s in fp32 (docs/benchmarks.md, "Whole
jobs"). So on such a CPU ``auto`` measures once per process (:func:`bf16_matmul_speedup`, about 30
milliseconds) and picks bf16 where a product of a transformer layer's shape runs at least
:data:`CPU_BF16_MIN_SPEEDUP` times as fast as in fp32 (``--bf16`` forces bf16, ``--precision fp32`` fp32).

On a GPU, models of bert-base's size and smaller keep the device waiting on the host rather than on
arithmetic at the batch sizes of token classification, and bf16 autocast adds a cast before most
operators (and, in torch 2.11, routes attention to cuDNN, whose host-side set-up took about 4.5 ms a call
with the varying shapes of training batches). On an H200 the embedded MiniLM trained 2.8x slower in bf16
than in fp32 (11.3 against 4.1 s for 2,000 CoNLL-2003 sentences; 1.95 against 1.61 s for 800 in another
run) and predicted 1.8x slower; a model of bert-base's shape trained 1.2x slower (3.04 against 2.51 s for
800 sentences; docs/benchmarks.md, "On a GPU"). So ``auto`` picks bf16 on a GPU only for a model whose
layers hold at least :data:`GPU_BF16_MIN_WEIGHTS` weights (:func:`layer_weights`: bert-large's 302M
do; not measured there), or whose size is unknown.
"""
from __future__ import annotations

import functools
import gc

from ..errors import ConfigError


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bf16() -> str | None:
    """'amx' or 'avx512' when the CPU computes in bf16 natively (and torch's oneDNN can use it); else None."""
    import torch

    if not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512"
    return None


CPU_BF16_MIN_SPEEDUP = 1.3  # measured 2.1-2.7x where bf16 is native, under 0.03x where it is not: far apart


@functools.lru_cache(maxsize=1)
def bf16_matmul_speedup() -> float:
    """How many times as fast a bf16 matrix product runs as an fp32 one on this CPU, with torch's threads:
    256 rows through a 384 x 1536 layer (MiniLM's feed-forward shape), the two taking turns, best of five
    each, after a first call of each that builds the kernels. Measured once per process: about 30 ms where
    bf16 is native. Smaller products measured too noisily here (64 rows: 1.7-2.7x between processes, with
    OpenMP's threads set to sleep between calls, PASSIVE); where bf16 is emulated the turns stop early."""
    import time

    import torch

    generator = torch.Generator().manual_seed(0)
    rows, weight = torch.randn(256, 384, generator=generator), torch.randn(1536, 384, generator=generator)
    operands = {torch.float32: (rows, weight), torch.bfloat16: (rows.bfloat16(), weight.bfloat16())}
    for pair in operands.values():
        torch.nn.functional.linear(*pair)
    best = dict.fromkeys(operands, float("inf"))
    for _ in range(5):
        for dtype, pair in operands.items():
            started = time.perf_counter()
            torch.nn.functional.linear(*pair)
            best[dtype] = min(best[dtype], time.perf_counter() - started)
        if best[torch.bfloat16] > 4 * best[torch.float32]:  # emulated: plainly slower, and each call is long
            break
    return best[torch.float32] / max(best[torch.bfloat16], 1e-9)


def cpu_bf16_pays() -> tuple[bool, str]:
    """Whether bf16 autocast makes a model faster on this CPU, and why (see the module's note)."""
    kind = cpu_bf16()
    if kind == "amx":
        return True, "the CPU has AMX-BF16"
    if kind is None:
        return False, "the CPU has no native bf16"
    speedup = bf16_matmul_speedup()
    pays = speedup >= CPU_BF16_MIN_SPEEDUP
    return pays, (f"AVX512-BF16, and a bf16 matrix product ran {speedup:.1f}x as fast as fp32 here, "
                  f"{'at least' if pays else 'under'} {CPU_BF16_MIN_SPEEDUP}x")


GPU_BF16_MIN_WEIGHTS = 100_000_000  # the embedded MiniLM's layers hold 10.6M, bert-base's 85M: both faster in fp32


def layer_weights(model_config) -> int | None:
    """About how many weights the encoder's layers multiply by: 12 x layers x hidden size squared (four
    attention matrices and two feed-forward ones four times as wide, as BERT and its kin are shaped);
    None where the model's config does not say. ``model_config``: an object with attributes (a
    transformers config, whose attribute map gives DistilBERT's ``dim`` as ``hidden_size``), not the
    dict of config.json, which would miss such names."""
    hidden = getattr(model_config, "hidden_size", None)
    layers = getattr(model_config, "num_hidden_layers", None)
    if not isinstance(hidden, int) or not isinstance(layers, int):
        return None
    return 12 * layers * hidden * hidden


def gpu_bf16_pays(model_config) -> bool:
    """Whether bf16 autocast is expected to make this model faster on a GPU (see the module's note)."""
    weights = layer_weights(model_config)  # None for no config too
    return weights is None or weights >= GPU_BF16_MIN_WEIGHTS


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_precision(requested: str, model_config=None) -> tuple[str, str]:
    """The precision to train in (fp32, bf16 or fp16) and a note saying why; ``model_config``: the model's
    (its size decides ``auto`` on a GPU), None where unknown."""
    import torch

    cuda = has_cuda()
    if requested == "fp16" and not cuda:
        raise ConfigError("fp16 mixed precision needs a CUDA GPU; this machine has none",
                          fix="use --bf16 (CPUs with AVX512-BF16/AMX) or --precision fp32")
    if requested == "bf16" and cuda and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ConfigError("this GPU has no bf16 support (it needs compute capability 8.0 or newer)",
                          fix="use --fp16 on this GPU, or --precision fp32")
    if requested != "auto":
        return requested, f"precision: {requested} (asked for)"
    if cuda:
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            return "fp32", "precision: fp32 (auto: the GPU has no bf16; --fp16 is available)"
        if not gpu_bf16_pays(model_config):
            return "fp32", (f"precision: fp32 (auto: on a GPU a model this size, {layer_weights(model_config) / 1e6:.1f}M "
                            "weights in its layers, trains faster in fp32 than in bf16 autocast; --bf16 forces bf16)")
        return "bf16", "precision: bf16 autocast (auto: the GPU supports bf16)"
    pays, reason = cpu_bf16_pays()
    if pays:
        return "bf16", f"precision: bf16 autocast (auto: {reason}; --precision fp32 for fp32)"
    return "fp32", f"precision: fp32 (auto: {reason}; --bf16 forces bf16)"


def is_out_of_memory(err: BaseException) -> bool:
    import torch
    from accelerate.utils.memory import should_reduce_batch_size

    return isinstance(err, torch.OutOfMemoryError) or should_reduce_batch_size(err)


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
