"""`tokentune train`: parse flags, build the config (flag > file > default), call tokentune.train."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="directory with train*/dev*/test* files (CoNLL columns)")
    data.add_argument("--train", dest="train_file", metavar="FILE", help="training file (overrides --data's)")
    data.add_argument("--dev", dest="dev_file", metavar="FILE", help="dev file (overrides --data's)")
    data.add_argument("--test", dest="test_file", metavar="FILE", help="test file (overrides --data's)")
    data.add_argument("--scheme", help="tag scheme of the files (IOB1, IOB2, BIOES, BILOU, IO, PLAIN); default: detect")
    data.add_argument("--train-scheme", help="labels the model learns: IOB2 (default) or BIOES")
    data.add_argument("--max-train-samples", type=int, metavar="N", help="train on a seeded random N sentences")
    data.add_argument("--max-eval-samples", type=int, metavar="N", help="evaluate on the first N dev sentences during training")
    model = parser.add_argument_group("model")
    model.add_argument("--model", help="Hub id or local directory (default: the embedded MiniLM-L6-H384)")
    model.add_argument("--max-length", type=int, metavar="N", help="sub-tokens per window (default: the model's limit)")
    model.add_argument("--stride", type=int, metavar="N", help="sub-tokens of overlap between windows (default 128)")
    opt = parser.add_argument_group("optimisation (defaults: the recipe)")
    opt.add_argument("--learning-rate", type=float, help="default 1.5e-5")
    opt.add_argument("--batch-size", type=int, help="training batch size per device (default 16)")
    opt.add_argument("--eval-batch-size", type=int, help="default 16")
    opt.add_argument("--epochs", type=float, help="default 20")
    opt.add_argument("--gradient-accumulation-steps", type=int, metavar="N", help="default 1")
    opt.add_argument("--weight-decay", type=float, help="default 0")
    opt.add_argument("--warmup-ratio", type=float, help="default 0")
    opt.add_argument("--adam-beta1", type=float, help="default 0.9")
    opt.add_argument("--adam-beta2", type=float, help="default 0.999")
    opt.add_argument("--adam-epsilon", type=float, help="default 1e-8")
    opt.add_argument("--lr-scheduler", help="default linear")
    opt.add_argument("--seed", type=int, help="default 42")
    opt.add_argument("--eval-steps", type=int, metavar="N", help="evaluate on dev every N steps (default: each epoch)")
    opt.add_argument("--logging-steps", type=int, metavar="N", help="default 50")
    opt.add_argument("--patience", type=int, metavar="N",
                     help="stop when dev F1 has not improved for N evaluations (default: never)")
    speed = parser.add_argument_group("speed and memory")
    speed.add_argument("--no-group-by-length", dest="group_by_length", action="store_const", const=False,
                       help="with --no-packing: plain random batches instead of batches of similar lengths")
    speed.add_argument("--length-group-batches", type=int, metavar="N",
                       help="batches whose examples are sorted by length together (default 50; "
                            "more: less padding, fewer: more varied batches)")
    speed.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                       help="auto (default): bf16 autocast on GPUs with bf16 and CPUs with AMX-BF16, else fp32")
    speed.add_argument("--bf16", dest="precision", action="store_const", const="bf16",
                       help="bf16 mixed precision (GPUs from Ampere on; CPUs with AVX512-BF16/AMX)")
    speed.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                       help="fp16 mixed precision with loss scaling (CUDA GPUs)")
    speed.add_argument("--batch-mean-loss", dest="token_weighted_loss", action="store_const", const=False,
                       help="mean loss per batch instead of the same weight for every labelled token")
    speed.add_argument("--pad-to-multiple-of", type=int, metavar="N",
                       help="round batch lengths up to a multiple of N (default: 8 under bf16/fp16, else 1)")
    speed.add_argument("--freeze-embeddings", action="store_const", const=True,
                       help="don't train the word-embedding matrix (faster steps, less optimizer memory)")
    speed.add_argument("--packing", action="store_const", const=True,
                       help="the recipe's random batches with several sentences per row (little padding, "
                            "block-diagonal attention); the default where the model family allows it")
    speed.add_argument("--no-packing", dest="packing", action="store_const", const=False,
                       help="batches without packing: grouped by length (or random with --no-group-by-length)")
    speed.add_argument("--torch-compile", action="store_const", const=True,
                       help="compile the model with torch.compile (pays only on long runs: compiling takes minutes)")
    speed.add_argument("--gradient-checkpointing", action="store_const", const=True,
                       help="recompute activations in the backward pass: less memory, slower steps")
    speed.add_argument("--no-auto-batch-size", dest="auto_batch_size", action="store_const", const=False,
                       help="fail on out-of-memory instead of halving the batch (and doubling accumulation)")
    out = parser.add_argument_group("output")
    out.add_argument("--output", "-o", help="model directory to write (appears complete or not at all)")
    out.add_argument("--overwrite", action="store_const", const=True, help="replace an existing output directory")
    out.add_argument("--resume", action="store_const", const=True,
                     help="continue an interrupted run from the last checkpoint in its .OUTPUT.partial directory")
    out.add_argument("--save-total-limit", type=int, metavar="N",
                     help="recent checkpoints kept while training, besides the best one (default 1)")
    out.add_argument("--config", metavar="FILE", help="YAML or JSON file with these settings; flags win over it")
    out.add_argument("--quiet", "-q", action="store_const", const=True, help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..config import build_config
    from ..training.distributed import is_main
    from ..reporting.card import metrics_table
    from ..training.run import train
    from ._common import quiet_libraries

    settings = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    config = build_config(args.config, **settings)
    quiet_libraries(config.quiet)
    result = train(config)
    if not is_main():  # under torchrun / accelerate launch, rank 0 speaks for the job
        return 0
    for note in result.notes:
        print(f"note: {note}")
    for split, metrics in result.metrics.items():
        print(f"\n{split}: precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  "
              f"f1 {metrics['f1']:.4f}  accuracy {metrics['accuracy']:.4f}")
        print(metrics_table(metrics))
    print(f"\ntrained in {result.train_seconds:.0f} s ({result.train_sentences_per_second:.1f} sentences/s); "
          f"model written to {result.output_dir}")
    return 0
