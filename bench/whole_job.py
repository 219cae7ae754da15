"""Whole commands as a user waits for them, side by side in one bench run, each split into its parts.

* ``train``: the plain recipe as a user writes it (bench/plain_recipe.py: datasets, Trainer, seqeval,
  then run_ner.py's save / evaluate dev / predict test) against ``tokentune train``, on
  - ``2000``: 2,000 CoNLL-2003 training sentences (tokentune's seeded ``--max-train-samples`` slice),
    the whole dev and test sets, 1 epoch, lr 5e-5, evaluation each epoch;
  - ``seed``: the seed's regime, 200 training and 200 dev sentences (seeded slices written to a temporary
    folder) and the whole test set, 20 epochs, evaluation every 10 steps, the recipe's lr 1.5e-5;
  - ``full`` (only when named in ``--only``): the whole training set, 3 epochs, lr 5e-5, evaluation each
    epoch: on a GPU, where start-up no longer hides the training step.
  Both final models are scored on their dev set by ``tokentune.evaluate`` afterwards (outside the timing).
* ``evaluate``: run_ner.py's ``do_predict`` (bench/plain_evaluate.py: ``Trainer.predict`` on test, argmax,
  seqeval) against ``tokentune evaluate --split test`` (Viterbi), with the model of ``2000``.
* ``predict``: ``pipeline("token-classification", aggregation_strategy="first")`` at batch 32
  (bench/plain_pipeline.py) against ``tokentune predict`` (torch) and ``tokentune predict --backend onnx
  --quantize int8``, on CoNLL-2003 test as raw text (words joined by single spaces, one text per line),
  with the model ``tokentune train`` wrote in ``2000``; entity F1 is exact (label, start, end) match.

Every command is its own process; its wall time runs from the start to the exit; peak RSS and bytes
written (blocks sent to the disk) come from the kernel's accounting of that process (``wait4``, in a small
spawner process: a child's ru_maxrss is at least what its parent held when it started it). The
parts come from each command's own report: the plain scripts print theirs, ``tokentune train`` writes
them in metrics.json (``time``), ``tokentune predict`` prints its throughput line. CPU time (user +
system) comes from the same accounting, and steal (CPU seconds the hypervisor gave this VM's cores to
others while the command ran, from /proc/stat) says which rows ran on a slowed machine.

Run alone (the machine is shared): ``flock /tmp/tokentune-cpu.lock .venv/bin/python bench/whole_job.py
[--only 2000 seed evaluate predict]``; ``--pairs N [--pairs-regime seed] --compare before SRC`` runs only
``tokentune train`` of one regime (2,000 sentences by default), the engines taking turns N times (a change's
effect, with the machine's drift spread).
Prints Markdown tables; ``--json FILE`` keeps the records.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from small_data_tune import DATA, write_slice

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
REGIMES = {
    "2000": {"flags": ["--epochs", "1", "--learning-rate", "5e-5"], "train_samples": 2000},
    "seed": {"flags": ["--epochs", "20", "--learning-rate", "1.5e-5", "--eval-steps", "10"], "train_samples": None},
    # the whole training set: where a GPU is used, start-up no longer hides the step (not run by default)
    "full": {"flags": ["--epochs", "3", "--learning-rate", "5e-5"], "train_samples": None},
}
THROUGHPUT = re.compile(r"(\d+) words in ([\d.]+) s")
# argv: REPORT COMMAND...: runs COMMAND as its child, writes the child's exit code and kernel accounting to REPORT
SPAWNER = """import json, os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as error:
        print(f"cannot run {sys.argv[2]}: {error}", file=sys.stderr)
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"exit": os.waitstatus_to_exitcode(status), "maxrss_kb": usage.ru_maxrss,
               "blocks_out": usage.ru_oublock, "cpu_seconds": usage.ru_utime + usage.ru_stime}, out)
"""


def steal_seconds() -> float | None:
    """CPU seconds the hypervisor gave this VM's cores to others so far (all cores; /proc/stat's steal
    column), None where there is no such file: a row measured while it grew ran on a slowed machine."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def measured(command: list[str], log: str, source: str | None = None) -> dict:
    """Wall seconds, peak RSS (MB) and MB written of one process, and what it printed; ``source``: a
    tokentune source folder to run instead of the installed one (an earlier commit's ``src``)."""
    # the other source first, before whatever the path already holds (where the bench's own packages may be)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (source, os.environ.get("PYTHONPATH"))))} \
        if source else None
    if source and command[0] == os.path.join(BIN, "tokentune"):  # the entry point as that source defines it
        command = [os.path.join(BIN, "python"), "-m", "tokentune.cli.main", *command[1:]]
    started, steal = time.perf_counter(), steal_seconds()
    with open(log, "w") as handle, tempfile.NamedTemporaryFile("r", suffix=".json") as report:
        # through a small spawner: ru_maxrss keeps the peak of the process before exec, and this one may
        # hold a model by now (it scores each trained model); the spawner's is a few MB
        process = subprocess.Popen([sys.executable, "-S", "-c", SPAWNER, report.name, *command], stdout=handle,
                                   stderr=subprocess.STDOUT, env=env)
        process.wait()
        usage = json.loads(report.read() or "null")
    seconds = time.perf_counter() - started
    stolen = None if steal is None else steal_seconds() - steal
    text = open(log, encoding="utf-8", errors="replace").read()
    if not usage or process.returncode != 0 or usage["exit"] != 0:
        raise SystemExit(f"{' '.join(command)} failed; see {log}:\n{text[-3000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage["maxrss_kb"] / 1024),
            "written_mb": round(usage["blocks_out"] * 512 / 1e6), "cpu_seconds": round(usage["cpu_seconds"], 1),
            "steal_seconds": None if stolen is None else round(stolen, 1), "output": text}


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def dev_f1(model_dir: str, data: str) -> float:
    import tokentune

    return tokentune.evaluate(model_dir, data, split="dev")["f1"]


def train_rows(name: str, data: str, work: str, engines: list[tuple[str, str | None]]) -> list[dict]:
    regime = REGIMES[name]
    samples = ["--train-samples", str(regime["train_samples"])] if regime["train_samples"] else []
    plain_out = os.path.join(work, f"plain-{name}")
    plain = measured([os.path.join(BIN, "python"), os.path.join(HERE, "plain_recipe.py"), "--data", data,
                      "--output", plain_out, *samples, *regime["flags"]], plain_out + ".log")
    report = last_json(plain["output"])
    plain.update(parts=report["seconds"], dev_f1=dev_f1(os.path.join(plain_out, "model"), data))
    rows = [{"job": f"train {name}", "engine": "plain recipe", **plain}]
    for label, source in engines:
        rows.append({"job": f"train {name}", "engine": f"tokentune train{' (' + label + ')' if source else ''}",
                     **tokentune_train(name, data, work, label, source)})
    return rows


def tokentune_train(name: str, data: str, work: str, label: str, source: str | None) -> dict:
    regime = REGIMES[name]
    out = os.path.join(work, f"tokentune-{name}" + (f"-{label}" if source else ""))
    samples = ["--max-train-samples", str(regime["train_samples"])] if regime["train_samples"] else []
    ours = measured([os.path.join(BIN, "tokentune"), "train", "--data", data, "--output", out, "--quiet", "--overwrite",
                     *samples, *regime["flags"]], out + ".log", source)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    ours.update(parts=metrics.get("time", {}).get("seconds", {}), dev_f1=metrics["dev"]["f1"])
    return ours


def train_pairs(rounds: int, regime: str, data: str, work: str, engines: list[tuple[str, str | None]]) -> None:
    """``tokentune train`` of one regime from each engine in turn, ``rounds`` times: the difference between
    two commits with the machine's drift spread over both."""
    print(f"\n### train {regime}, engines taking turns\n\n| round | engine | whole process | training | dev evaluation "
          "| final evaluation | dev F1 | CPU time | steal | peak RSS |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for number in range(1, rounds + 1):
        for label, source in engines:
            row = tokentune_train(regime, data, work, label, source)
            parts = row["parts"]
            print(f"| {number} | {label} | {row['seconds']:.1f} s | {parts.get('training', 0):.1f} s | "
                  f"{parts.get('dev evaluation', 0):.1f} s | {parts.get('final evaluation', 0):.1f} s | "
                  f"{row['dev_f1']:.4f} | {row['cpu_seconds']:.1f} s | {row['steal_seconds']} s | "
                  f"{row['peak_rss_mb']:,} MB |", flush=True)


def write_texts(path: str) -> list[list[tuple[str, int, int]]]:
    """CoNLL-2003 test as raw text lines; returns each line's gold (label, start, end) character spans."""
    from tokentune.data import read_corpus

    gold = []
    with open(path, "w", encoding="utf-8") as handle:
        for sentence in read_corpus(os.path.join(DATA, "test.txt")):
            starts, position = [], 0
            for word in sentence.words:
                starts.append(position)
                position += len(word) + 1
            gold.append([(label, starts[a], starts[b - 1] + len(sentence.words[b - 1])) for label, a, b in sentence.spans])
            handle.write(" ".join(sentence.words) + "\n")
    return gold


def entity_f1(path: str, gold: list, key=None) -> float:
    correct = predicted = 0
    with open(path, encoding="utf-8") as handle:
        for line, spans in zip(handle, gold):
            record = json.loads(line)
            entities = record["entities"] if isinstance(record, dict) else record
            found = {(e["label"], e["start"], e["end"]) for e in entities}
            predicted += len(found)
            correct += len(found & set(spans))
    total = sum(len(spans) for spans in gold)
    precision, recall = correct / max(predicted, 1), correct / max(total, 1)
    return 2 * precision * recall / max(precision + recall, 1e-12)


def predict_rows(model: str, work: str, engines: list[tuple[str, str | None]]) -> list[dict]:
    texts = os.path.join(work, "test.txt")
    gold = write_texts(texts)
    started = time.perf_counter()
    subprocess.run([os.path.join(BIN, "tokentune"), "export", model, "--quantize", "int8"], check=True,
                   capture_output=True)
    export_seconds = round(time.perf_counter() - started, 1)
    rows = []
    runs = [("pipeline, batch 32", None, [os.path.join(BIN, "python"), os.path.join(HERE, "plain_pipeline.py"),
                                          model, texts])]
    for label, source in engines:
        tag = f" ({label})" if source else ""
        command = [os.path.join(BIN, "tokentune"), "predict", model, "--input", texts]
        runs += [(f"tokentune predict{tag}", source, command),
                 *([] if source else [("tokentune predict --precision fp32", source, [*command, "--precision", "fp32"])]),
                 (f"tokentune predict, ONNX int8{tag}", source, [*command, "--backend", "onnx", "--quantize", "int8"])]
    for engine, source, command in runs:
        output = os.path.join(work, re.sub(r"\W+", "-", engine) + ".jsonl")
        command = [*command, output] if engine.startswith("pipeline") else [*command, "--output", output]
        row = measured(command, output + ".log", source)
        if engine.startswith("pipeline"):
            row["parts"] = last_json(row["output"])["seconds"]
        else:
            words, seconds = THROUGHPUT.findall(row["output"])[-1]
            row["parts"] = {"prediction (reading, tagging, writing)": float(seconds),
                            "start-up and model": round(row["seconds"] - float(seconds), 1)}
        rows.append({"job": "predict", "engine": engine, "f1": entity_f1(output, gold), **row})
    rows[-1]["note"] = f"export to ONNX fp32 + int8 took {export_seconds} s (once, not counted)"
    return rows


def evaluate_rows(model: str, work: str, engines: list[tuple[str, str | None]]) -> list[dict]:
    """run_ner.py's do_predict (bench/plain_evaluate.py) against `tokentune evaluate --split test --json`."""
    plain = measured([os.path.join(BIN, "python"), os.path.join(HERE, "plain_evaluate.py"), model, DATA],
                     os.path.join(work, "plain-evaluate.log"))
    report = last_json(plain["output"])
    rows = [{"job": "evaluate", "engine": "plain recipe (Trainer.predict, seqeval)", "f1": report["f1"],
             "parts": report["seconds"], **plain}]
    fp32 = [[], ["--precision", "fp32"]]  # the flag is newer than the earlier commits --compare may run
    for (label, source), extra in ((engine, extra) for engine in engines for extra in (fp32 if not engine[1] else [[]])):
        tag = f" ({label})" if source else ""
        name = " ".join(["tokentune evaluate", *extra]) + tag
        ours = measured([os.path.join(BIN, "tokentune"), "evaluate", model, "--data", DATA, "--split", "test", "--json",
                         *extra], os.path.join(work, re.sub(r"\W+", "-", name) + ".log"), source)
        result = last_json(ours["output"])
        rows.append({"job": "evaluate", "engine": f"{name} [{result.get('computed_in', 'fp32')}]", "f1": result["f1"],
                     "parts": result.get("time", {}).get("seconds", {}), **ours})
    return rows


def print_tables(rows: list[dict]) -> None:
    for job in dict.fromkeys(row["job"] for row in rows):
        group = [row for row in rows if row["job"] == job]
        base = group[0]["seconds"]
        quality = "dev F1" if "dev_f1" in group[0] else "entity F1"
        print(f"\n### {job}\n\n| engine | whole process | x {group[0]['engine']} | {quality} | peak RSS | written |"
              f" CPU time | steal | parts (s) |\n|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for row in group:
            score = row.get("dev_f1", row.get("f1"))
            parts = ", ".join(f"{k} {v}" for k, v in row["parts"].items() if k != "total")
            print(f"| {row['engine']} | {row['seconds']:.1f} s | {base / row['seconds']:.2f}x | {score:.4f} | "
                  f"{row['peak_rss_mb']:,} MB | {row['written_mb']:,} MB | {row['cpu_seconds']:.1f} s | "
                  f"{'n/a' if row['steal_seconds'] is None else format(row['steal_seconds'], '.1f') + ' s'} | {parts} |")
        for row in group:
            if row.get("note"):
                print(f"\n{row['note']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=("2000", "seed", "full", "evaluate", "predict"),
                        default=["2000", "seed", "evaluate", "predict"])
    parser.add_argument("--work", default=None, help="folder for outputs (default: a temporary one)")
    parser.add_argument("--json", default=None, help="write the records here too")
    parser.add_argument("--compare", nargs=2, action="append", default=[], metavar=("LABEL", "SRC"),
                        help="also run tokentune from another source folder (e.g. a worktree of an earlier commit's "
                             "src), shown as 'tokentune ... (LABEL)'")
    parser.add_argument("--pairs", type=int, default=0, metavar="N",
                        help="only `tokentune train` of one regime (--pairs-regime), each engine in turn, N rounds")
    parser.add_argument("--pairs-regime", choices=("2000", "seed"), default="2000",
                        help="the regime --pairs trains (default 2000)")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="tokentune-whole-job-")
    os.makedirs(work, exist_ok=True)
    rows, engines = [], [("installed", None), *[(label, os.path.abspath(src)) for label, src in args.compare]]
    if args.pairs:
        data = DATA if args.pairs_regime == "2000" else write_slice(os.path.join(work, "seed-data"), 42, 200)
        return train_pairs(args.pairs, args.pairs_regime, data, work, engines)
    model = os.path.join(work, "tokentune-2000")
    if "2000" in args.only or ({"evaluate", "predict"} & set(args.only) and not os.path.exists(model)):
        rows += train_rows("2000", DATA, work, engines)
    if "seed" in args.only:
        rows += train_rows("seed", write_slice(os.path.join(work, "seed-data"), 42, 200), work, engines)
    if "full" in args.only:
        rows += train_rows("full", DATA, work, engines)
    if "evaluate" in args.only:
        rows += evaluate_rows(model, work, engines)
    if "predict" in args.only:
        rows += predict_rows(model, work, engines)
    for row in rows:
        row.pop("output")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    print_tables(rows)


if __name__ == "__main__":
    main()
