"""Micro-batching: the requests of one model that wait together share one forward pass.

One thread per model runs the network. It takes the first waiting request and every other one queued by then (up to
`max_batch`), so nothing waits for a timer: a lone request runs at once, and under load the requests that arrive
during a forward form the next batch. A batch costs less per image than single forwards (one pass over the
weights, wider matrix products), which is what throughput under load gains; on a GPU the gain is larger still.
`max_batch=1` gives one forward per request, in arrival order.

The batch thread also preprocesses (resize, scale, normalise): PyTorch spreads even those small tensor operations
over its intra-op threads, and from a request thread they would compete for the cores with the forward running
beside them (oversubscription: on 2 cores a 1.5 ms preprocessing took 20 ms that way). Request threads only
decode bytes into an image (and run the input guard's cheap checks on it, plain Pillow and numpy work).

What the work returns is split back per request along the images: a logits array (views, images, outputs) by its
second axis, anything else (the Predictor's `NetworkOutputs`: logits, pooled features, cheap-check findings) by its
`take(start, stop)`.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

import numpy as np

_STOP = object()


class MicroBatcher:
    """`work(items)` -> the (views, len(items), outputs) logits of the items, or a value whose `take(start, stop)`
    gives the items [start, stop) of it (`NetworkOutputs`); run on one thread for requests queued from many
    threads, each request a list of items (images). `lock` is held around each call, so other users of the network
    (Grad-CAM's hooks) never overlap it."""

    def __init__(self, work: Callable[[list], Any], max_batch: int, lock: threading.Lock,
                 name: str = "model"):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1; got {max_batch}")
        self.work, self.max_batch, self.lock = work, max_batch, lock
        self.queue: queue.Queue = queue.Queue()
        self.forwards = self.images = 0  # counts shown by /models: images / forwards is the mean batch
        self.thread = threading.Thread(target=self._run, name=f"medclass-batcher-{name}", daemon=True)
        self.thread.start()

    def __call__(self, items: list):
        """What the work gave for `items` (their own rows of the shared forward); blocks until it is computed."""
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
                result = self.work([item for items, _ in waiting for item in items])
        except BaseException as exc:  # every waiting request gets the failure; the thread keeps serving
            for _, future in waiting:
                future.set_exception(exc)
            return
        self.forwards, self.images = self.forwards + 1, self.images + sum(sizes)
        stops = np.cumsum(sizes)
        for (_, future), start, stop in zip(waiting, stops - sizes, stops):
            future.set_result(rows(result, int(start), int(stop)))


def rows(result, start: int, stop: int):
    """The images [start, stop) of what one forward gave: an array's along axis 1, else `result.take`."""
    if isinstance(result, np.ndarray):  # ndarray.take is numpy's fancy indexing, not this
        return result[:, start:stop]
    return result.take(start, stop)
