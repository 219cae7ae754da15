"""Where tagging passes and training steps spend their time here: products, parts, module class, ONNX int8.

bench/flop_ceiling.py says how long tokentune's computation must take at the best product rate. This script
checks where the measured passes and steps stand against that rate, with four measurements:

* ``products``: the encoder's three linear shapes (2,048 rows through 384 -> 384, 384 -> 1536, 1536 -> 384)
  through ``F.linear`` (MKL here), numpy's ``matmul`` (its OpenBLAS), MKL with the weight packed once
  (``torch.ops.mkl._mkl_linear``, what inductor uses on a CPU) and oneDNN's linear module
  (``torch.utils.mkldnn``): GFLOP/s of each, best of 20, and the largest difference from ``F.linear``;
* ``passes MODEL``: the dev pass that ``train`` and ``evaluate`` run (``evaluate_corpus`` on CoNLL-2003
  dev, predictions kept), with the plain-torch BERT that ``evaluate`` loads and with transformers' model of
  the same weights (the class ``train`` evaluates), taking turns; then a cProfile of one plain-torch pass,
  its time split into the linear layers, GELU, attention, layer norms and the rest;
* ``steps MODEL``: a training step's forward and backward (no dropout, no optimizer) on 16 sentences of 21
  sub-tokens packed into 3 rows of 128, with the plain-torch BERT made trainable and with transformers'
  model (the word-embedding matrix frozen in both: training trains the rows the data uses apart), taking
  turns (the module code's share), then torch.profiler's operators over 10 plain-torch steps;
* ``onnx MODEL``: onnxruntime's own profile of ``predict --backend onnx --quantize int8`` on CoNLL-2003 test
  as raw text (needs ``tokentune export MODEL --quantize int8`` first), time by operator type.

    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/pass_costs.py products
    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/pass_costs.py passes MODEL_DIR [--rounds 3]
    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/pass_costs.py steps MODEL_DIR [--rounds 8]
    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/pass_costs.py onnx MODEL_DIR
"""
from __future__ import annotations

import collections
import cProfile
import glob
import json
import os
import pstats
import tempfile
import time

from flop_ceiling import model_sizes
from one_line_parser import OneLineParser
from small_data_tune import DATA

ROWS = 2048  # positions through each linear shape of ``products``
# cProfile's names of the plain-torch pass's operators, and the part each is reported under
PARTS = {"linear": "linear layers", "gelu": "GELU", "scaled_dot_product_attention": "attention",
         "layer_norm": "layer norms"}


def best_seconds(function, repeats: int = 20) -> float:
    function()
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def shape_rates(rows: int, inputs: int, outputs: int) -> tuple[list[float], float]:
    """GFLOP/s of one linear shape through each library, and packed MKL's largest difference from F.linear."""
    import torch
    import torch.nn.functional as F
    from torch.utils import mkldnn

    x, weight, bias = torch.randn(rows, inputs), torch.randn(outputs, inputs), torch.randn(outputs)
    packed = torch.ops.mkl._mkl_reorder_linear_weight(weight, rows)
    module = torch.nn.Linear(inputs, outputs)
    module.weight.data, module.bias.data = weight, bias
    module, x_dnn = mkldnn.to_mkldnn(module), x.to_mkldnn()
    x_np, weight_np = x.numpy(), weight.numpy().T.copy()
    runs = (lambda: F.linear(x, weight, bias), lambda: x_np @ weight_np,
            lambda: torch.ops.mkl._mkl_linear(x, packed, weight, bias, rows), lambda: module(x_dnn))
    rates = [2 * rows * inputs * outputs / best_seconds(run) / 1e9 for run in runs]
    difference = (torch.ops.mkl._mkl_linear(x, packed, weight, bias, rows) - F.linear(x, weight, bias)).abs().max()
    return rates, float(difference)


def products() -> None:
    import torch

    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| rows x in -> out | F.linear | numpy matmul | MKL, weight packed | oneDNN module | packed vs F.linear |")
    print("|---|---:|---:|---:|---:|---:|")
    _, hidden, inner = model_sizes()  # the embedded encoder's
    for inputs, outputs in ((hidden, hidden), (hidden, inner), (inner, hidden)):
        rates, difference = shape_rates(ROWS, inputs, outputs)
        print(f"| {ROWS} x {inputs} -> {outputs} | " + " | ".join(f"{rate:.1f}" for rate in rates)
              + f" | {difference:.1e} |")
    print("\n(GFLOP/s, best of 20 calls each)")


def passes(model_dir: str, rounds: int) -> None:
    from tokentune.data import read_corpus
    from tokentune.evaluation import evaluate_corpus
    from tokentune.inference import Tagger
    from tokentune.inference.runners import torch_runner
    from tokentune.modeling import load_trained

    light_bert(model_dir)  # refused here if transformers would load it: nothing to compare
    light = Tagger.from_pretrained(model_dir)
    model, _ = load_trained(model_dir)
    model.eval()
    same = {name: getattr(light, name) for name in (
        "max_length", "stride", "batch_size", "decoding", "aggregation", "word_splitter", "min_score", "crf", "context",
        "context_size", "context_marker", "split_sentences", "precision")}  # every setting the light Tagger has
    transformers_tagger = Tagger(torch_runner(model, "cpu", light.precision), light.tokenizer, light.labels, **same)
    dev = read_corpus(os.path.join(DATA, "dev.txt"))
    print(f"dev: {len(dev)} sentences; {model_dir}\n\n| round | plain-torch BERT (s) | transformers' model (s) | F1 |")
    print("|---|---:|---:|---|")
    for number in range(1, rounds + 1):
        seconds, scores = [], []
        for tagger in (light, transformers_tagger):
            started = time.perf_counter()
            scores.append(evaluate_corpus(tagger, dev, return_predictions=True)["f1"])
            seconds.append(time.perf_counter() - started)
        print(f"| {number} | {seconds[0]:.2f} | {seconds[1]:.2f} | {scores[0]:.4f} / {scores[1]:.4f} |")
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.runcall(evaluate_corpus, light, dev, return_predictions=True)
    total = time.perf_counter() - started
    parts = collections.Counter()
    for (_, _, name), (_, _, own, _, _) in pstats.Stats(profile).stats.items():
        parts[next((part for key, part in PARTS.items() if name.startswith("<built-in method torch.")
                    and name.rstrip(">_").rsplit(".", 1)[-1] == key), "the rest")] += own  # gelu_: the in-place GELU
    print(f"\nOne plain-torch pass under cProfile: {total:.2f} s\n\n| part | seconds | share |\n|---|---:|---:|")
    for part in [*PARTS.values(), "the rest"]:
        print(f"| {part} | {parts[part]:.2f} | {parts[part] / total:.0%} |")


def light_bert(model_dir: str):
    """The plain-torch BERT of ``model_dir`` (inference/bert.py), or exit where transformers would load it."""
    from tokentune.inference.bert import load_light_bert

    loaded = load_light_bert(model_dir)
    if loaded is None:
        raise SystemExit(f"{model_dir} does not load as the plain-torch BERT (inference/bert.py): nothing to compare")
    return loaded[0]


def packed_batch(sentences: int = 16, length: int = 21, width: int = 128) -> dict:
    """``sentences`` random sentences of ``length`` sub-tokens packed into rows of ``width`` by training's own
    collator (training/packing.py): input ids, position ids and the block-diagonal mask."""
    import torch

    from tokentune.training.packing import PackingCollator

    generator = torch.Generator().manual_seed(0)
    features = [{"input_ids": torch.randint(1000, 20000, (length,), generator=generator).tolist(), "labels": [0] * length}
                for _ in range(sentences)]
    batch = PackingCollator(pad_token_id=0, pad_to_multiple_of=width)(features)
    return {name: batch[name] for name in ("input_ids", "position_ids", "attention_mask")}


def steps(model_dir: str, rounds: int) -> None:
    from transformers import AutoModelForTokenClassification

    light = light_bert(model_dir).train()
    for parameter in light.parameters():
        parameter.requires_grad_(True)
    plain = AutoModelForTokenClassification.from_pretrained(model_dir, attn_implementation="sdpa", hidden_dropout_prob=0.0,
                                                            attention_probs_dropout_prob=0.0).train()
    # tokentune trains only the word-embedding rows the data uses (training/rows.py): no dense matrix gradient here
    light.weights["bert/embeddings/word_embeddings/weight"].requires_grad_(False)
    plain.get_input_embeddings().weight.requires_grad_(False)
    inputs = packed_batch()

    def step(model) -> None:
        model(**inputs).logits.sum().backward()

    seconds = {"plain-torch BERT": [], "transformers' model": []}
    for model in (light, plain, light, plain):
        step(model)
    for _ in range(rounds):
        for name, model in zip(seconds, (light, plain)):
            started = time.perf_counter()
            for _ in range(5):
                step(model)
            seconds[name].append((time.perf_counter() - started) / 5 * 1000)
    shape = tuple(inputs["input_ids"].shape)
    print(f"forward + backward of {shape} packed rows, {rounds} rounds of 5 steps taking turns (ms a step)\n")
    print("| module | median | fastest round |\n|---|---:|---:|")
    for name, times in seconds.items():
        print(f"| {name} | {sorted(times)[len(times) // 2]:.1f} | {min(times):.1f} |")
    print_step_profile(step, light)


def print_step_profile(step, model, count: int = 10) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(count):
            step(model)
    events = sorted(profiler.key_averages(), key=lambda event: -event.self_cpu_time_total)
    total = sum(event.self_cpu_time_total for event in events) / 1000 / count
    print(f"\ntorch.profiler, {count} plain-torch steps: operators {total:.1f} ms a step\n")
    print("| operator | ms a step | share |\n|---|---:|---:|")
    for event in events[:8]:
        spent = event.self_cpu_time_total / 1000 / count
        print(f"| {event.key[:60]} | {spent:.1f} | {spent / total:.0%} |")


def onnx_profile(model_dir: str) -> None:
    from tokentune.data import read_corpus
    from tokentune.inference import Tagger, runners

    plain_options = runners.session_options
    folder = tempfile.mkdtemp(prefix="tokentune-onnx-profile-")

    def profiled_options(threads=None):
        options = plain_options(threads)
        options.enable_profiling, options.profile_file_prefix = True, os.path.join(folder, "session")
        return options

    runners.session_options = profiled_options
    try:
        tagger = Tagger.from_pretrained(model_dir, backend="onnx", quantize="int8")
    finally:
        runners.session_options = plain_options
    texts = [" ".join(sentence.words) for sentence in read_corpus(os.path.join(DATA, "test.txt"))]
    started = time.perf_counter()
    tagger.predict_texts(texts)
    seconds = time.perf_counter() - started
    del tagger  # the session writes its profile when it is released
    import gc

    gc.collect()
    (path,) = glob.glob(os.path.join(folder, "session*.json"))
    with open(path, encoding="utf-8") as handle:
        events = json.load(handle)
    by_type = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_type[event["args"]["op_name"]] += event["dur"] / 1e6
    total = sum(by_type.values())
    print(f"{len(texts)} texts tagged in {seconds:.2f} s (profiling on); operators {total:.2f} s\n")
    print("| operator | seconds | share |\n|---|---:|---:|")
    for name, spent in by_type.most_common(10):
        print(f"| {name} | {spent:.3f} | {spent / total:.1%} |")


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("products", "passes", "steps", "onnx"))
    parser.add_argument("model", nargs="?", metavar="MODEL_DIR", help="a tokentune model directory (passes, steps, onnx)")
    parser.add_argument("--rounds", type=int, default=3, help="passes, steps: rounds of the two models taking turns (default 3)")
    args = parser.parse_args()
    if args.what != "products" and not args.model:
        parser.error(f"{args.what} needs MODEL_DIR, a model directory written by tokentune train")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, not {args.rounds}")
    if args.model and not os.path.isfile(os.path.join(args.model, "config.json")):
        parser.error(f"{args.model} is not a model directory (no config.json there): pass one written by tokentune train")
    if args.what == "onnx" and not os.path.isfile(os.path.join(args.model, "model.int8.onnx")):
        parser.error(f"{args.model} has no model.int8.onnx: run `tokentune export {args.model} --quantize int8` first")
    {"products": products, "passes": lambda: passes(args.model, args.rounds), "steps": lambda: steps(args.model, args.rounds),
     "onnx": lambda: onnx_profile(args.model)}[args.what]()


if __name__ == "__main__":
    main()
