"""Accounts worked on at the same time by one run: a bounded thread pool, each worker with its
own store connection (an SQLite connection, like a psycopg one, is not shared by threads that
write). With one worker the caller's own store is used, on the caller's thread: exactly the
sequential run."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mailtix.store import Store

A = TypeVar("A")
B = TypeVar("B")


def each(store: Store, items: Sequence[tuple[A, B]], work: Callable[[Store, A, B], None],
         workers: int) -> None:
    """work(store, *item) for every item, at most `workers` at a time. A failure of one item
    (a store error: the run must stop) is raised once the others have finished."""
    workers = max(1, min(workers, len(items)))
    if workers == 1:
        for a, b in items:
            work(store, a, b)
        return
    from concurrent.futures import ThreadPoolExecutor  # not on the sequential (cron) path

    local = threading.local()
    opened: list[Store] = []
    guard = threading.Lock()

    def own_store() -> Store:
        mine = getattr(local, "store", None)
        if mine is None:
            mine = local.store = store.another()
            with guard:
                opened.append(mine)
        return mine

    def job(a: A, b: B) -> None:
        work(own_store(), a, b)

    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="mailtix-account") as pool:
            futures = [pool.submit(job, a, b) for a, b in items]
        errors = [f.exception() for f in futures if f.exception() is not None]
    finally:
        for opened_store in opened:
            opened_store.close()
    if errors:
        raise errors[0]


def serialised(fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
    """A callback (progress output) that several workers may call: one call at a time."""
    if fn is None:
        return None
    lock = threading.Lock()

    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return fn(*args, **kwargs)

    return call


__all__ = ["each", "serialised"]
