"""Devices and torch.distributed: what procl needs to run as several processes.

`torchrun` starts one process (a rank) per GPU or per share of the CPU and tells each
its place in environment variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR, MASTER_PORT). `init_from_env` joins them into one process group: gloo on
CPU, nccl on GPU (plus a gloo group for the small CPU objects: settings, samples,
barriers). Without those variables, or with WORLD_SIZE=1, nothing is initialised and
every helper here is a no-op (rank 0 of 1), so the same code runs in one process.

Every collective has a bounded timeout (PROCL_DIST_TIMEOUT seconds, default 1800): a
rank that dies makes the others stop at their next collective, at once when its
connections close and after the timeout when it hangs, with a ProclError naming what
was being waited for (the command line prints it and exits 2). A hanging collective
on nccl is ended by torch's watchdog, which aborts the process after the same timeout.

    resolve_device(choice)      "auto" | "cpu" | "cuda" -> torch.device (cuda:LOCAL_RANK under torchrun)
    init_from_env(device)       join the ranks torchrun started; False when there is one
    rank(), world_size(), local_rank(), local_world_size(), is_main(), is_distributed(),
    launched_world_size()
    all_reduce_sum(tensor)      the sum over ranks (a new tensor on the input's device)
    all_gather_object(obj)      every rank's obj, in rank order (small objects only)
    broadcast(tensor, src=0)    rank src's tensor on every rank
    barrier(what)               wait for every rank; names the ranks that did not come
    guard(what)                 a failed collective (another rank died or hung) -> ProclError
    main_first(fn, what)        fn() on rank 0, then on the others (a step that writes files)
    main_only(fn, what)         fn() on rank 0 alone, its result (or ProclError) on every rank
    ddp(module, find_unused)    the module in DistributedDataParallel (itself in one process)
    shard(items, weights)       this rank's part of a list: disjoint, deterministic
    check_same_settings(dict)   every rank was started with the same settings, or a clear error
    shutdown()                  leave the process group
    exit_on_sigterm()           SIGTERM -> SystemExit, so that `finally` blocks run
    spawn(fn, nprocs, args)     run fn in nprocs local gloo processes (tests, bench)
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from procl import ProclError

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_TIMEOUT_S = 1800.0
TIMEOUT_ENV = "PROCL_DIST_TIMEOUT"
_ENV = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

T = TypeVar("T")

_cpu_group: Any = None  # the gloo group for CPU objects (the default group on CPU)
_timeout_s: float = DEFAULT_TIMEOUT_S


# ---------------------------------------------------------------- devices


@contextmanager
def threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to n for the duration, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(choice: str | torch.device = "auto") -> torch.device:
    """The torch.device of a --device choice: "auto" (cuda when available), "cpu" or "cuda".

    Under torchrun a cuda rank takes GPU LOCAL_RANK. ProclError for an unknown choice,
    for "cuda" on a machine without CUDA, and for more local ranks than GPUs.
    """
    if isinstance(choice, torch.device):
        return choice
    name = str(choice).strip().lower()
    if name not in DEVICES:
        raise ProclError(f"device {choice!r} is not one of {', '.join(DEVICES)}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ProclError(
            f"--device cuda: no CUDA GPU is available on this machine (torch {torch.__version__}, {build}); "
            "use --device cpu, or --device auto to take a GPU only where there is one"
        )
    index, count = local_rank(), torch.cuda.device_count()
    if index >= count:
        raise ProclError(
            f"local rank {index} needs GPU {index} but this machine has {count}: "
            f"start at most {count} processes per machine (torchrun --nproc_per_node {count})"
        )
    return torch.device("cuda", index)


def add_device_argument(parser: Any, what: str = "the networks run") -> None:
    """The --device option of the commands: auto (default), cpu or cuda."""
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help=f"where {what} (default auto: a GPU when there is one, else the CPU)")


# ---------------------------------------------------------------- the process group


def _env_int(name: str, default: int | None = None) -> int:
    text = os.environ.get(name)
    if text in (None, ""):
        if default is None:
            raise ProclError(f"environment variable {name} is not set: start the ranks with torchrun")
        return default
    try:
        return int(text)
    except ValueError:
        raise ProclError(f"environment variable {name}={text!r} is not an integer (torchrun sets it)") from None


def timeout_s() -> float:
    """The collectives' timeout: PROCL_DIST_TIMEOUT seconds, default 1800."""
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ProclError(f"{TIMEOUT_ENV}={text!r} must be a positive number of seconds")
    return value


def init_from_env(device: str | torch.device = "auto", timeout: float | None = None) -> bool:
    """Join the process group of the ranks torchrun started; False (and nothing done)
    when this is the only process (no WORLD_SIZE, or WORLD_SIZE=1).

    device: this rank's device ("auto", "cpu", "cuda"): nccl for cuda, gloo otherwise.
    timeout: seconds a collective (and the joining itself) may wait for the other
    ranks; default PROCL_DIST_TIMEOUT or 1800. Every rank must call it (same device).
    """
    global _cpu_group, _timeout_s
    if dist.is_available() and dist.is_initialized():
        return True
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return False
    if not dist.is_available():
        raise ProclError("this torch build has no torch.distributed: run one process")
    missing = [name for name in _ENV if not os.environ.get(name)]
    if missing:
        raise ProclError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: start the ranks with torchrun "
            "(docs/scale.md)"
        )
    me = _env_int("RANK")
    if not 0 <= me < world:
        raise ProclError(f"RANK={me} is not between 0 and WORLD_SIZE-1={world - 1}")
    _timeout_s = float(timeout) if timeout is not None else timeout_s()
    dev = resolve_device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        if backend == "nccl":
            torch.cuda.set_device(dev)
            dist.init_process_group(backend, timeout=timedelta(seconds=_timeout_s), device_id=dev)
            _cpu_group = dist.new_group(backend="gloo", timeout=timedelta(seconds=_timeout_s))
        else:
            dist.init_process_group(backend, timeout=timedelta(seconds=_timeout_s))
            _cpu_group = dist.group.WORLD
    except (RuntimeError, ValueError) as err:
        raise ProclError(
            f"rank {me} of {world}: could not join the other ranks at {where} within {_timeout_s:g} s "
            f"({_first_line(err)}); start every rank with the same torchrun command (same --device) "
            "and check that the address is reachable"
        ) from None
    return True


def shutdown() -> None:
    """Leave the process group (a no-op when there is none)."""
    global _cpu_group
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _cpu_group = None


@contextmanager
def session(device: str | torch.device = "auto") -> Iterator[bool]:
    """init_from_env(device) for the duration of a `with` block, then shutdown() (when
    this block joined the group: inside another session it leaves it as it was)."""
    already = dist.is_available() and dist.is_initialized()
    joined = init_from_env(device)
    try:
        yield joined
    finally:
        if joined and not already:
            shutdown()


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM (what torchrun sends the other ranks when one fails) into SystemExit
    for the duration of a `with` block, so that `finally` blocks still run (a rank
    lists the videos it finished before it goes). Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def launched_world_size() -> int:
    """The number of ranks torchrun started (WORLD_SIZE), 1 without torchrun; known
    before (and without) init_from_env."""
    return max(1, _env_int("WORLD_SIZE", 1))


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def local_world_size() -> int:
    """Ranks on this machine (LOCAL_WORLD_SIZE, set by torchrun), 1 otherwise."""
    return max(1, _env_int("LOCAL_WORLD_SIZE", 1))


def is_main() -> bool:
    return rank() == 0


# ---------------------------------------------------------------- collectives


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]


@contextmanager
def guard(what: str) -> Iterator[None]:
    """A failed collective (a rank died, hung past the timeout, or crashed) -> ProclError.
    One process: errors pass through unchanged (there is no other rank to blame)."""
    try:
        yield
    except (RuntimeError, ValueError) as err:  # torch's DistError and backend errors are RuntimeErrors
        if not is_distributed():
            raise
        raise ProclError(
            f"rank {rank()} of {world_size()}: {what} failed: another rank stopped or did not answer "
            f"within {_timeout_s:g} s ({_first_line(err)}); see the other ranks' messages, fix the "
            f"cause and rerun ({TIMEOUT_ENV} sets the timeout)"
        ) from None


def _on_wire(tensor: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """A copy of `tensor` to communicate and the group to do it in: CUDA tensors over
    nccl (the default group on GPU), everything else on the CPU over gloo."""
    if tensor.is_cuda and dist.get_backend() == "nccl":
        return tensor.detach().clone(), None
    return tensor.detach().to("cpu", copy=True), _cpu_group


def all_reduce_sum(tensor: torch.Tensor, what: str = "all_reduce_sum") -> torch.Tensor:
    """The element-wise sum of `tensor` over all ranks, as a new tensor on its device
    and of its dtype; bitwise the same on every rank. One process: a copy of it."""
    if not is_distributed():
        return tensor.clone()
    comm, group = _on_wire(tensor)
    with guard(what):
        dist.all_reduce(comm, op=dist.ReduceOp.SUM, group=group)
    return comm.to(tensor.device)


def all_gather_object(obj: T, what: str = "all_gather_object") -> list[T]:
    """Every rank's `obj` (picklable, small), in rank order. One process: [obj]."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    with guard(what):
        dist.all_gather_object(out, obj, group=_cpu_group)
    return out


def broadcast(tensor: torch.Tensor, src: int = 0, what: str = "broadcast") -> torch.Tensor:
    """Rank `src`'s tensor (same shape and dtype on every rank), as a new tensor."""
    if not is_distributed():
        return tensor.clone()
    comm, group = _on_wire(tensor)
    with guard(what):
        dist.broadcast(comm, src=src, group=group)
    return comm.to(tensor.device)


def barrier(what: str = "barrier") -> None:
    """Wait until every rank is here. A rank that died or does not come within the
    timeout makes the others raise a ProclError (which names it, on rank 0)."""
    if not is_distributed():
        return
    try:
        dist.monitored_barrier(group=_cpu_group, timeout=timedelta(seconds=_timeout_s), wait_all_ranks=True)
    except (RuntimeError, ValueError) as err:
        raise ProclError(
            f"rank {rank()} of {world_size()}: waiting for every rank ({what}) failed within "
            f"{_timeout_s:g} s: {_first_line(err)}; see that rank's messages and rerun "
            f"({TIMEOUT_ENV} sets the timeout)"
        ) from None


def main_first(fn: Callable[[], T], what: str) -> T:
    """fn() on rank 0 first, then on the other ranks: for a step that writes files the
    others then read (the built-in dataset is generated on first use). A ProclError of
    rank 0's is raised on every rank. One process: fn()."""
    if not is_distributed():
        return fn()
    result = _on_main(fn, what, share=False)
    return result if is_main() else fn()


def main_only(fn: Callable[[], T], what: str) -> T:
    """fn() on rank 0 alone, and its result (picklable) on every rank: a step that reads
    or writes rank 0's files (the run folder). A ProclError of rank 0's is raised on
    every rank. One process: fn()."""
    if not is_distributed():
        return fn()
    return _on_main(fn, what, share=True)


def _on_main(fn: Callable[[], T], what: str, share: bool) -> T:
    result, sent = None, [None]
    if is_main():
        try:
            result = fn()
            sent = [("ok", result if share else None)]
        except ProclError as err:
            sent = [("error", str(err))]
    with guard(what):
        dist.broadcast_object_list(sent, src=0, group=_cpu_group)
    kind, value = sent[0]
    if kind == "error":
        raise ProclError(value)
    return result if is_main() else value


def ddp(module: torch.nn.Module, find_unused: bool = False) -> torch.nn.Module:
    """`module` in DistributedDataParallel: the same weights on every rank (rank 0's are
    sent to the others here) and gradients averaged over the ranks in backward (nccl
    between GPUs, gloo on the CPU). find_unused: some parameters get no gradient in a
    step (DDP then looks for them). One process: the module itself."""
    if not is_distributed():
        return module

    device = next(module.parameters()).device
    on_gpu = device.type == "cuda" and dist.get_backend() == "nccl"
    with guard("sharing the model's weights"):
        return DistributedDataParallel(module, device_ids=[device] if on_gpu else None,
                                       process_group=None if on_gpu else _cpu_group,
                                       find_unused_parameters=find_unused)


# ---------------------------------------------------------------- sharding and settings


def shard(items: Sequence[T], weights: Sequence[float] | None = None, what: str = "items") -> list[T]:
    """This rank's part of `items`: the parts of all ranks are disjoint and cover them,
    and depend only on (items, weights, world size), so every rank computes the same split.

    Without weights: items rank, rank + W, rank + 2W, ... With weights (a video's file
    size, say): the heaviest item goes to the least-loaded rank first (ties to the lower
    rank), which balances the ranks' work; each part keeps the items' order. More ranks
    than items: ProclError naming `what`. One process: all items.
    """
    items = list(items)
    world, me = world_size(), rank()
    if world == 1:
        return items
    if len(items) < world:
        raise ProclError(
            f"{world} ranks but only {len(items)} {what}: every rank needs at least one; "
            f"start at most {len(items)} processes (torchrun --nproc_per_node, --nnodes)"
        )
    if weights is None:
        return items[me::world]
    if len(weights) != len(items):
        raise ValueError(f"{len(weights)} weights for {len(items)} items")
    load = [0.0] * world
    owner = [0] * len(items)
    for i in sorted(range(len(items)), key=lambda i: (-float(weights[i]), i)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += float(weights[i])
    mine = [item for item, r in zip(items, owner) if r == me]
    if not mine:  # only with zero weights: give every rank something to do
        return items[me::world]
    return mine


def settings_digest(settings: dict) -> str:
    """A short hash of a settings dict (JSON with sorted keys; non-JSON values as str)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def check_same_settings(settings: dict, what: str = "settings") -> None:
    """Every rank must have been started with the same `settings` (its command's
    arguments, a digest of the dataset, ...): ProclError on every rank otherwise,
    naming the first differing rank and the differing keys. One process: no-op."""
    if not is_distributed():
        return
    mine = (settings_digest(settings), settings)
    gathered = all_gather_object(mine, what=f"comparing {what}")
    ref_digest, ref = gathered[0]
    for r, (digest, theirs) in enumerate(gathered):
        if digest == ref_digest:
            continue
        keys = sorted(k for k in set(ref) | set(theirs) if ref.get(k) != theirs.get(k))
        diff = "; ".join(f"{k}: {_short(theirs.get(k))} on rank {r}, {_short(ref.get(k))} on rank 0" for k in keys)
        raise ProclError(
            f"rank {r} was started with different {what} than rank 0 ({diff}): start every rank "
            "with the same command, on the same files"
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------- local processes (tests, bench)


@dataclass
class RankResult:
    """What one spawned rank returned (value), or why it did not (error, exitcode)."""

    rank: int
    value: Any = None
    error: str | None = None
    exitcode: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.exitcode == 0

    def get(self) -> Any:
        if not self.ok:
            raise ProclError(f"rank {self.rank} failed (exit code {self.exitcode}): {self.error}")
        return self.value


def free_port() -> int:
    """A TCP port that is free on this machine now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawned(fn: Callable, rank_: int, nprocs: int, port: int, args: tuple, env: dict, out) -> None:
    os.environ.update({
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(nprocs),
        "RANK": str(rank_), "LOCAL_RANK": str(rank_), "LOCAL_WORLD_SIZE": str(nprocs), **env,
    })
    torch.set_num_threads(1)
    try:
        with session("cpu"):
            value = fn(*args)
        out.put((rank_, value, None))
    except BaseException as err:  # noqa: BLE001 - reported to the parent
        message = str(err) if isinstance(err, ProclError) else traceback.format_exc()[-3000:]
        out.put((rank_, None, message))


def spawn(fn: Callable, nprocs: int, args: tuple = (), timeout: float = 120.0,
          env: dict[str, str] | None = None, grace: float = 3.0) -> list[RankResult]:
    """Run fn(*args) in `nprocs` fresh local processes joined by gloo (ranks 0..n-1,
    one thread each) and return each rank's RankResult. fn must be importable (a
    module-level function) and its result picklable. When a rank fails, the others
    get `grace` seconds to end before they are killed, as torchrun does; after
    `timeout` seconds every rank still running is killed."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_spawned, args=(fn, r, nprocs, port, tuple(args), dict(env or {}), out), daemon=True)
             for r in range(nprocs)]
    for p in procs:
        p.start()
    results = {r: RankResult(r) for r in range(nprocs)}

    def drain(wait: float) -> None:
        try:
            while True:
                r, value, error = out.get(timeout=wait)
                results[r].value, results[r].error = value, error
                wait = 0.0
        except queue.Empty:
            pass

    deadline, failed_at = time.monotonic() + timeout, None
    while any(p.is_alive() for p in procs):
        drain(0.05)
        now = time.monotonic()
        if failed_at is None and (any(p.exitcode not in (None, 0) for p in procs)
                                  or any(res.error for res in results.values())):
            failed_at = now
        if now > deadline or (failed_at is not None and now > failed_at + grace):
            break
    drain(0.2)
    for r, p in enumerate(procs):
        p.join(timeout=0.5)
        if p.is_alive():
            p.kill()
            p.join()
            why = "timeout" if failed_at is None else "another rank failed"
            results[r].error = results[r].error or f"killed after {why}"
        results[r].exitcode = p.exitcode
        if p.exitcode != 0 and results[r].error is None:
            results[r].error = f"exited with code {p.exitcode}"
    return [results[r] for r in range(nprocs)]
