"""What both writers of the bulk path share: conversion in a thread beside the writing, the end of a
load, the reason a load repeating an exposure is given back.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from ..store import DeferredIndexes, LoadResult, finish_load
from .convert import _Converter
from .read import _Source

#: Why a file whose stems the catalog already holds (or that repeats one) goes to the row loader.
REPEATED = "an exposure already in the catalog or repeated in the file (the row loader updates or reports it)"


def _prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """``items`` produced in a thread of their own, ``depth`` ahead (parsing beside writing)."""
    box: queue.Queue = queue.Queue(depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                box.put((True, item))
            box.put((True, done))
        except BaseException as exc:  # handed to the consumer, raised there
            box.put((False, exc))

    worker = threading.Thread(target=produce, name="l2rules-bulk-reader", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = box.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let a blocked producer finish its put and see the stop
            try:
                box.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


def _finish(conn, result: LoadResult, source: _Source, converter: _Converter, deferred: DeferredIndexes) -> None:
    deferred.restore(conn)
    result.rejections = source.template_rows(converter.template_lines)
    result.template_rows = len(result.rejections)
    result.rows += result.template_rows
    finish_load(conn, result.pool_id, source.name, source.sha256, result.rejections)
