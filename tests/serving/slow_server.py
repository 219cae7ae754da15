"""A server whose model takes DELAY seconds per batch, run as `python slow_server.py MODEL_DIR DELAY`.

It runs uvicorn in the main thread, as `tokentune serve` does, so SIGTERM reaches uvicorn's own
handler; the graceful-shutdown test needs a request that is certainly still in flight.
"""
from __future__ import annotations

import logging
import sys
import time

import uvicorn

from tokentune.inference import Tagger
from tokentune.serving import create_app


class SlowTagger:
    def __init__(self, tagger: Tagger, delay: float) -> None:
        self.tagger, self.delay, self.labels = tagger, delay, tagger.labels

    def predict_texts(self, texts):
        print("model busy", file=sys.stderr, flush=True)  # the test sends SIGTERM after this line
        time.sleep(self.delay)
        return self.tagger.predict_texts(texts)


def main() -> None:
    model_dir, delay = sys.argv[1], float(sys.argv[2])
    logging.basicConfig(level="INFO", format="%(name)s: %(message)s")
    app = create_app(SlowTagger(Tagger.from_pretrained(model_dir), delay), model_dir=model_dir)
    uvicorn.run(app, host="127.0.0.1", port=0, log_config=None, access_log=False, timeout_graceful_shutdown=30)


if __name__ == "__main__":
    main()
