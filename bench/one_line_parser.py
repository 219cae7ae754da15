"""The bench scripts' argument parser: a bad argument is one line on stderr and exit 2, as tokentune's own
commands answer it (tests/test_bench_arguments.py)."""
from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}. Fix: see `{self.prog} --help`\n")
