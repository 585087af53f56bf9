"""The worker threads that drain the queue of accepted invocations; resizable while running."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from bulkinvoke.emulator.jobs import Job
from bulkinvoke.emulator.stats import Stats

log = logging.getLogger(__name__)
# How long an idle worker waits before noticing that the pool shrank or stopped.
_POLL_SECONDS = 0.2


class WorkerPool:
    def __init__(
        self, work: Callable[[Job], None], size: int, stats: Stats, stopping: threading.Event
    ) -> None:
        self._work = work
        self._stats = stats
        self._stopping = stopping
        self._queue: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._threads: dict[int, threading.Thread] = {}
        self._size = 0
        self._unfinished = 0
        self._busy = 0
        self.resize(size)

    def resize(self, size: int) -> None:
        """Grow at once; shrink as surplus workers finish their current job."""
        with self._lock:
            self._size = size
            for index in range(size):
                if index not in self._threads:
                    thread = threading.Thread(
                        target=self._run,
                        args=(index,),
                        name=f"emulator-worker-{index}",
                        daemon=True,
                    )
                    self._threads[index] = thread
                    thread.start()

    def submit(self, job: Job) -> None:
        with self._lock:
            self._unfinished += 1
        self._queue.put(job)

    def depth(self) -> int:
        return self._queue.qsize()

    def busy(self) -> int:
        return self._busy

    def size(self) -> int:
        return self._size

    def wait_idle(self, timeout: float) -> bool:
        """True once every submitted job is finished, False if ``timeout`` passes first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers; queued jobs are dropped, running ones end at their next wait."""
        with self._lock:
            self._stopping.set()
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def _run(self, index: int) -> None:
        while True:
            with self._lock:
                # Checked under the lock that resize() holds, so a worker never retires while
                # resize() counts it as alive.
                if self._stopping.is_set() or index >= self._size:
                    del self._threads[index]
                    return
            try:
                job = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            with self._lock:
                self._busy += 1
            try:
                self._work(job)
            except Exception:
                # An S3 or SNS call that kept failing: the job is lost, as it would be to a
                # crashed instance, but the emulator keeps serving.
                log.exception("worker failed on inference %s", job.inference_id)
                self._stats.count("worker_errors")
            finally:
                with self._idle:
                    self._busy -= 1
                    self._unfinished -= 1
                    if self._unfinished == 0:
                        self._idle.notify_all()
