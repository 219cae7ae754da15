"""``tokentune`` entry point: dispatches to one module per command.

Command modules are imported only when their command runs, so ``tokentune score`` never imports
torch. User errors (:class:`~tokentune.errors.TokentuneError`) become one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..memory import reuse_freed_memory
from ..threads import stop_watch

# command -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("tokentune.cli.train", "fine-tune a model on labelled data"),
    "tune": ("tokentune.cli.tune", "search training settings with Optuna; the best trial's model is the output"),
    "evaluate": ("tokentune.cli.evaluate", "score a trained model on labelled data"),
    "predict": ("tokentune.cli.predict", "tag raw text, JSON lines or CoNLL columns (arguments, a file or stdin)"),
    "score": ("tokentune.cli.score", "score a predictions file (gold and predicted tag columns) without a model"),
    "inspect": ("tokentune.cli.inspect", "show what is in a data set: counts, scheme, problems, lengths"),
    "convert": ("tokentune.cli.convert", "rewrite labelled data in another format or tag scheme"),
    "serve": ("tokentune.cli.serve", "serve a model over HTTP with a web page to try it"),
    "export": ("tokentune.cli.export", "export a model to ONNX, optionally int8-quantized"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line like every other user error (``tokentune CMD: error: ... Fix: ...``), exit code 2."""
        message = " ".join(message.split())  # argparse may wrap a long choice list over lines
        self.exit(2, f"{self.prog}: error: {message}. Fix: see `{self.prog} --help`\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="tokentune", description="Fine-tune, evaluate and serve token-classification models.")
    parser.add_argument("--version", action="version", version=f"tokentune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        if command in (None, name) and command is not None:
            importlib.import_module(module_name).add_arguments(cmd_parser)
    if command is not None:  # the top parser reports unknown flags: name the command as every error does
        parser.prog = f"tokentune {command}"
    return parser


# the commands that compute with torch in this process (predict's --workers and --ray compute elsewhere)
WATCHED_COMMANDS = ("train", "evaluate", "predict", "serve", "tune")


def watch_threads(args) -> None:
    """Threads that give way to other processes, unless the user chose the threads.

    OpenMP's own wait policy is kept (a waiting thread spins some milliseconds, then sleeps): the fastest
    on a machine of one's own. A :class:`tokentune.threads.ThreadWatch` lowers the thread count while
    other processes keep the cores busy, where spinning threads would hold the cores the other job needs
    (bench/shared_machine.py; docs/benchmarks.md, "A shared machine"). With ``--threads`` (or OpenMP's
    count variables) the user's count holds and waiting threads sleep at once, as with ``--ray`` (whose
    local actors inherit it); ``--workers N`` processes see to their own threads
    (:func:`tokentune.threads.watch_or_sleep`).
    """
    from ..threads import watch_or_sleep

    if args.command not in WATCHED_COMMANDS or (getattr(args, "workers", None) or 1) > 1:
        return
    watch_or_sleep(count_chosen=getattr(args, "threads", None) is not None or bool(getattr(args, "ray", None)))


def main(argv: list[str] | None = None) -> int:
    from ..errors import TokentuneError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error already printed: an exit code, not an exit
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        _one_process_unless_train(args.command)
        watch_threads(args)
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.run(args) or 0)
    except TokentuneError as err:
        print(f"tokentune {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        left = f"; {stop}" if str(stop) else ""  # e.g. train's checkpoint for --resume (errors.Interrupted)
        signalled = _TERMINATED[0]
        print(f"tokentune {args.command}: {'terminated' if signalled else 'interrupted'}{left}", file=sys.stderr)
        return 128 + (signalled or 2)
    except BrokenPipeError:  # e.g. `tokentune predict ... | head`: the reader left, not an error
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    finally:
        stop_watch()


# where a command that runs in one process is sent for more of them
_MORE_PROCESSES = {"predict": "; to use more processes: --workers N, or --ray ADDRESS for a cluster",
                   "tune": "; to run trials at once, start several `tokentune tune` with one --storage"}


def _one_process_unless_train(command: str) -> None:
    """Under torchrun / accelerate launch every process would run the whole command (evaluate printed its
    figures once per process and each wrote the same report; tune's processes raced for its lock)."""
    import os

    from ..errors import ConfigError

    # training.distributed.world_size()'s variable, read here: importing the training package costs start-up
    processes = os.environ.get("WORLD_SIZE", "1")
    if command != "train" and processes.isdigit() and int(processes) > 1:
        raise ConfigError(f"{command} runs in one process, but WORLD_SIZE is {processes} (started by torchrun or "
                          f"accelerate launch)", fix=f"run `tokentune {command}` without the launcher: only train runs "
                                                   f"in several processes{_MORE_PROCESSES.get(command, '')}")


_TERMINATED = [0]  # the signal number that stopped the command, when a handler below stopped it


def _interrupt_on_sigterm() -> None:
    """SIGTERM (``kill``, ``timeout``, a job scheduler) stops the command the way Ctrl-C does: the
    partial outputs are removed and train keeps its checkpoint, then the process ends by the signal, as
    before (143 in a shell). Python's default is to die at once, leaving temporary files behind. A
    second SIGTERM kills at once. uvicorn (serve) sets its own handler while it runs, and re-raises the
    signal to this one when it has drained."""
    import signal

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _TERMINATED[0] = signum
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # never over a handler someone chose
        import atexit

        atexit.register(_end_by_the_signal)
        signal.signal(signal.SIGTERM, stop)


def _end_by_the_signal() -> None:
    """Registered first, so run last at exit (after worker processes are joined and every other exit
    handler): a command stopped by SIGTERM ends by it, which supervisors read as a clean stop."""
    import os
    import signal

    if _TERMINATED[0]:
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(_TERMINATED[0], signal.SIG_DFL)
        os.kill(os.getpid(), _TERMINATED[0])


def console_main() -> int:
    """The ``tokentune`` command (and ``python -m tokentune.cli.main``): :func:`main`, then its exit code.

    Before the interpreter shuts down, every object still alive is moved out of the garbage collector's
    reach (``gc.freeze``): shutting down runs collections over the whole heap again and again while it
    clears modules, and with torch, transformers and datasets loaded that took 1.1-1.3 s after a
    ``train`` (0.2 s frozen: docs/benchmarks.md, "Whole jobs"). Only reference cycles go unfreed, which
    the process's end frees anyway; exit handlers, finalizers that ``atexit`` runs and the flushing of
    stdout and stderr happen as before, and every output was closed and renamed into place before this.
    Freed memory is kept in the process (:func:`tokentune.memory.reuse_freed_memory`) here too, not in
    :func:`main`, which tests and other Python code call in their own process."""
    import gc

    reuse_freed_memory()
    _interrupt_on_sigterm()
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(console_main())
