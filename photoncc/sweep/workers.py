"""Where a sweep's points run: in this process, in a local process pool (the payload sent to each
worker once, through its initializer) or on a Dask distributed cluster (scattered to every worker
once, one task per point). Each yields (point index, metrics) as points finish."""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from .. import __version__
from ..errors import UserError
from .points import _STAGED, Payload, run_point, stage_model, unstage_model

DISTRIBUTED_EXTRA = 'pip install "photoncc[distributed]"'
CONNECT_TIMEOUT = "10s"  # to reach a Dask scheduler
ORPHAN_POLL = 0.5  # seconds between a pool worker's checks that its parent still runs


_WORKER_PAYLOAD = []  # a pool worker's payload, set once by its initializer


def _start_worker(payload: Payload) -> None:
    _WORKER_PAYLOAD[:] = [payload]
    stage_model(payload)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this pool worker once its parent is gone: a parent killed outright (SIGKILL) leaves its
    workers waiting on their task queue for ever, each holding the others' pipes open."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_POLL)
    for path in list(_STAGED.values()):  # the exit below runs no finalizers
        shutil.rmtree(path.parent, ignore_errors=True)
    os._exit(1)


def _pool_point(profile: dict) -> dict:
    return run_point(_WORKER_PAYLOAD[0], profile)


def _in_process(payload: Payload, jobs: list):
    try:
        for index, profile in jobs:
            yield index, run_point(payload, profile)
    finally:
        unstage_model(payload)


def _local_pool(payload: Payload, jobs: list, workers: int):
    """Run ``jobs`` ((index, profile) pairs) on ``workers`` processes, yielding (index, metrics) as
    they finish. Linux forks the workers (photoncc's own threads are per process: cpu.py), other
    systems spawn them; either way the payload reaches each worker once, in its initializer."""
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(payload,))
    lost = []
    try:
        futures = {pool.submit(_pool_point, profile): index for index, profile in jobs}
        for future in as_completed(futures):
            try:
                metrics = future.result()
            except BrokenProcessPool as e:  # a worker died (killed, out of memory): no row, resume runs it
                lost.append(f"{type(e).__name__}: {e}")
                continue
            yield futures[future], metrics
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if lost:
        raise UserError(f"{len(lost)} point(s) did not run: a worker process died ({lost[0]}); the other points "
                        "are in the CSV, run the same command again to run these")


def require_distributed(address: str | None = None):
    """Dask's distributed scheduler (``Client``, ``as_completed``), or a UserError naming the extra;
    with ``address``, also a UserError when it is not an address Dask can parse."""
    try:
        from distributed import Client, as_completed as finished
    except ImportError:
        raise UserError(f"--scheduler needs Dask's distributed scheduler: {DISTRIBUTED_EXTRA}") from None
    if address is not None:
        _check_address(address)
    return Client, finished


def _dask(payload: Payload, jobs: list, address: str):
    """Connect to the Dask scheduler at ``address`` (a UserError when it cannot be reached) and
    return the generator that runs ``jobs`` there (``_on_cluster``)."""
    Client, finished = require_distributed(address)
    _probe(address)
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as e:  # the scheduler went away since the probe
        raise UserError(f"--scheduler {address}: cannot connect to the Dask scheduler there ({_first_line(e)})") from e
    return _on_cluster(client, finished, payload, jobs, address)


def _probe(address: str) -> None:
    """Connect to ``address`` once, Dask's handshake included, and hang up; a UserError when no
    Dask scheduler answers there. A Client made where none answers cannot be closed: its clean-up
    stalls for twice the timeout and prints a traceback."""
    from distributed.comm import connect

    async def hello():
        comm = await connect(address, timeout=CONNECT_TIMEOUT)
        await comm.close()
    try:
        with ThreadPoolExecutor(1) as thread:  # an event loop of its own, whatever runs in this thread
            thread.submit(asyncio.run, hello()).result()
    except (OSError, TimeoutError) as e:
        raise UserError(f"--scheduler {address}: cannot reach a Dask scheduler there ({_first_line(e)})") from e
    except Exception as e:  # whatever answers garbles Dask's handshake (a MemoryError for a nonsense length...)
        raise UserError(f"--scheduler {address}: what answers there is not a Dask scheduler ({_first_line(e)})") from e


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"


def _on_cluster(client, finished, payload: Payload, jobs: list, address: str):
    """Run ``jobs`` through ``client``: the payload scattered to every worker once, one task per
    point; yields (index, metrics) as they finish, then closes the client."""
    lost = []
    with client:
        data = client.scatter(payload, broadcast=True)
        futures = {client.submit(run_point, data, profile, pure=False): index for index, profile in jobs}
        for future in finished(futures, loop=client.loop):  # this client's loop: it is not the default one
            try:
                metrics = future.result()
            except Exception as e:  # the task's worker died (KilledWorker) or it was lost: no row
                lost.append(f"{type(e).__name__}: {e}")
                continue
            if metrics["photoncc"] != __version__:
                raise UserError(f"--scheduler {address}: a worker runs photoncc {metrics['photoncc']}, this is "
                                f"{__version__}; install the same version on every worker")
            yield futures[future], metrics
    if lost:
        raise UserError(f"{len(lost)} point(s) did not run on the cluster ({lost[0]}); the other points are in "
                        "the CSV, run the same command again to run these")


def _check_address(address: str) -> None:
    """Refuse an address Dask cannot parse before a Client is made of it: a Client that fails to
    start on one leaves a half-made object whose clean-up stalls the exit for 20 s."""
    from distributed.comm import parse_address, parse_host_port
    from distributed.comm.registry import get_backend
    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        if scheme != "inproc":
            parse_host_port(location)
    except ValueError as e:
        raise UserError(f"--scheduler {address}: not a Dask scheduler address ({e}); expected tcp://HOST:PORT, "
                        "as `dask scheduler` prints it") from None


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
