"""Micro-batching: the requests of one model that wait together share one forward pass.

One thread per model runs the network. It takes the first waiting request and every other one queued by then (up to
`max_batch`), so nothing waits for a timer: a lone request runs at once, and under load the requests that arrive
during a forward form the next batch. A batch costs less per image than single forwards (one pass over the
weights, wider matrix products), which is what throughput under load gains; on a GPU the gain is larger still.
`max_batch=1` gives one forward per request, in arrival order.

The batch thread also preprocesses (resize, scale, normalise): PyTorch spreads even those small tensor operations
over its intra-op threads, and from a request thread they would compete for the cores with the forward running
beside them (oversubscription: on 2 cores a 1.5 ms preprocessing took 20 ms that way). Request threads only
decode bytes into an image.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Callable

import numpy as np

_STOP = object()


class MicroBatcher:
    """`work(items) -> (views, len(items), outputs)` logits, run on one thread for requests queued from many threads,
    each request a list of items (images). `lock` is held around each call, so other users of the network (Grad-CAM's
    hooks) never overlap it."""

    def __init__(self, work: Callable[[list], np.ndarray], max_batch: int, lock: threading.Lock,
                 name: str = "model"):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1; got {max_batch}")
        self.work, self.max_batch, self.lock = work, max_batch, lock
        self.queue: queue.Queue = queue.Queue()
        self.forwards = self.images = 0  # counts shown by /models: images / forwards is the mean batch
        self.thread = threading.Thread(target=self._run, name=f"medclass-batcher-{name}", daemon=True)
        self.thread.start()

    def __call__(self, items: list) -> np.ndarray:
        """The logits of `items` (their own rows of the shared forward); blocks until they are computed."""
        future: Future = Future()
        self.queue.put((list(items), future))
        return future.result()

    def stats(self) -> dict:
        return {"max_batch": self.max_batch, "forwards": self.forwards, "images": self.images}

    def close(self) -> None:
        self.queue.put(_STOP)
        self.thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is _STOP:
                return
            waiting = [first]
            while len(waiting) < self.max_batch:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self.queue.put(_STOP)  # answer what was taken, then stop
                    break
                waiting.append(item)
            self._answer(waiting)

    def _answer(self, waiting: list) -> None:
        sizes = [len(items) for items, _ in waiting]
        try:
            with self.lock:
                logits = self.work([item for items, _ in waiting for item in items])
        except BaseException as exc:  # every waiting request gets the failure; the thread keeps serving
            for _, future in waiting:
                future.set_exception(exc)
            return
        self.forwards, self.images = self.forwards + 1, self.images + sum(sizes)
        for (_, future), part in zip(waiting, np.split(logits, np.cumsum(sizes)[:-1], axis=1)):
            future.set_result(part)
