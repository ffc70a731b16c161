"""Turns a claimed Run into a training process and relays its events.

The worker never imports torch: training runs in a fresh child process (`python -m training ...`)
in its own session, so cancel signals reach its whole process group and CUDA is never initialised
in a forking parent. The child writes JSON-line events to a pipe; we store them in batches (the
database is the source of truth) and publish each batch to the run's Channels group, best effort:
a channel layer that is down (Redis restarting) holds back live updates, never the training.
"""

import ctypes
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from billiard.process import current_process
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lab.runs.actions import enqueue, paused_message
from lab.runs.models import Run, Status
from lab.runs.streaming import RunPublisher

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STATUS_CHECK_SECONDS = 0.5
# Niceness of this relay once the training process runs: its work can wait a few milliseconds, and
# on a machine with few cores every slice it takes stalls all of the training process's threads.
RELAY_NICENESS = 10
LOG_TAIL_LINES = 30
# What torchrun sets in its ranks' environment: a worker that is itself under torchrun must not pass it on.
TORCHRUN_ENV = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE",
                "GROUP_WORLD_SIZE", "ROLE_NAME"}


# Set when this worker is shutting down (SIGTERM to a pool process; workers.app forwards the main
# process's warm shutdown here): the run is stopped at a checkpoint and handed back to the queue.
_worker_stopping = threading.Event()


def worker_stopping(*_) -> None:
    _worker_stopping.set()


def _stop_with_the_worker() -> object:
    """In a prefork pool process SIGTERM exits at once (billiard's handler), the training process
    with it; make it ask for a stop at a checkpoint instead. In Celery's main process (a solo pool)
    SIGTERM stays Celery's warm shutdown, which workers.app relays to the run. Returns the handler
    it replaced (None where it replaced none)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and current_process().name != "MainProcess":
        return signal.signal(signal.SIGTERM, worker_stopping)
    return None


def _die_with_parent() -> None:
    # If the worker is killed (kill -9, machine loss), the kernel kills the training process too,
    # so a resumed copy never races an orphan writing to the same run folder.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def supervise(run_id: int, hostname: str) -> str:
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return "missing"
    token = run.claim(hostname, settings.LAB_LEASE_SECONDS)
    if token is None:
        return f"not claimed (status {run.status})"  # a duplicate delivery, or cancelled while queued
    replaced = _stop_with_the_worker()
    try:
        return Supervisor(run, token).run()
    finally:
        if replaced is not None:
            # The run is over: a pool process that has handed in its last result must die when the
            # pool's main process SIGTERMs it, not sleep out billiard's exit second while the next
            # run waits for a fresh pool process (worker_max_tasks_per_child=1).
            signal.signal(signal.SIGTERM, replaced)


class Supervisor:
    def __init__(self, run: Run, token: str):
        self.run_row = run
        self.token = token
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.final_status: str | None = None
        self.last_error: dict = {}
        self.signalled_at: float | None = None
        self.stop_reason: str | None = None  # "cancel" or "pause" (a person), "shutdown" (the worker stops)
        self.peak_rss_kib = 0
        self.lease_lost = False
        self.publish = RunPublisher(run)

    # -- launch ------------------------------------------------------------------------------

    def write_config(self) -> Path:
        run = self.run_row
        out_dir = Path(run.config["output_dir"])
        out_dir.mkdir(parents=True, exist_ok=True)
        config = dict(run.config)
        if run.last_checkpoint and Path(run.last_checkpoint).is_dir():
            config["resume_from"] = run.last_checkpoint
        path = out_dir / f"attempt-{run.attempt}.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def launch(self, config_path: Path) -> subprocess.Popen:
        run = self.run_row
        read_fd, write_fd = os.pipe()
        python = settings.LAB_TRAINING_PYTHON or sys.executable
        stage = ["-m", "training", run.stage, "--config", str(config_path), "--seq-start", str(run.last_seq + 1)]
        log_file = open(Path(run.config["output_dir"]) / "process.log", "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if run.devices > 1:
            # torchrun closes inherited descriptors in its ranks: events come on its stdout, which
            # every rank shares and rank 0 alone writes (training/distributed.py).
            cmd = [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={run.devices}",
                   f"--shutdown-timeout={int(settings.LAB_CANCEL_GRACE_SECONDS)}", *stage, "--events", "-"]
            env = {k: v for k, v in env.items() if k not in TORCHRUN_ENV and not k.startswith(("MASTER_", "TORCHELASTIC_"))}
            # torchrun gives each rank one OpenMP thread unless told: gloo ranks on a CPU worker share its cores.
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // run.devices)))
            out, fds = write_fd, ()
        else:
            cmd = [python, *stage, "--events", f"/dev/fd/{write_fd}"]
            out, fds = log_file, (write_fd,)
        proc = subprocess.Popen(
            cmd, pass_fds=fds, stdin=subprocess.DEVNULL, stdout=out, stderr=log_file,
            start_new_session=True, preexec_fn=_die_with_parent, cwd=settings.BASE_DIR, env=env,
        )
        os.close(write_fd)
        log_file.close()
        threading.Thread(target=self._read_events, args=(read_fd,), daemon=True).start()
        return proc

    def _read_events(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as pipe:
            for line in pipe:
                self.lines.put(line)
        self.lines.put(None)

    # -- relay ------------------------------------------------------------------------------

    def run(self) -> str:
        run = self.run_row
        resuming = f", resuming from {Path(run.last_checkpoint).name}" if run.last_checkpoint else ""
        note = run.append_event("log", level="info", message=f"attempt {run.attempt} on {run.worker}{resuming}")
        running = run.append_event("status", status=Status.RUNNING, message="started")
        self.publish([note.as_message(), running.as_message()])
        try:
            proc = self.launch(self.write_config())
        except OSError as exc:
            return self.finish(Status.FAILED, f"could not start the training process: {exc}")
        restore_cpu = yield_cpu_to_training()
        try:
            self.relay(proc)
        finally:
            restore_cpu()
        return self.conclude(proc.returncode)

    def relay(self, proc: subprocess.Popen) -> None:
        """Store and publish the training process's events, renew the lease and obey stops until it has exited."""
        reader_done = False
        next_heartbeat = time.monotonic() + settings.LAB_HEARTBEAT_SECONDS
        next_status_check = 0.0
        while True:
            reader_done = self.flush(wait=settings.LAB_EVENT_FLUSH_SECONDS) or reader_done
            now = time.monotonic()
            if now >= next_heartbeat:
                next_heartbeat = now + settings.LAB_HEARTBEAT_SECONDS
                self.lease_lost = self.lease_lost or not self.run_row.renew_lease(self.token, settings.LAB_LEASE_SECONDS)
            if now >= next_status_check:
                next_status_check = now + STATUS_CHECK_SECONDS
                self.obey_stop(proc)
            if self.lease_lost:
                self.signal(proc, signal.SIGKILL)
                self.reap(proc, block=True)
                break
            if reader_done and self.reap(proc):
                break

    def reap(self, proc: subprocess.Popen, block: bool = False) -> bool:
        """True once the training process has exited; keeps its peak memory (ru_maxrss)."""
        if proc.returncode is not None:
            return True
        pid, status, usage = os.wait4(proc.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.peak_rss_kib = usage.ru_maxrss  # KiB on Linux
        return True

    def flush(self, wait: float) -> bool:
        """Store and publish what the child wrote since the last flush. True once the pipe closed."""
        batch: list[dict] = []
        closed = False
        deadline = time.monotonic() + wait
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                closed = True
                break
            event = self._parse(line)
            if event is not None:
                batch.append(event)
        if batch and not self.lease_lost:
            self.lease_lost = not self.store(batch)
        return closed

    def _parse(self, line: str) -> dict | None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            log.warning("run %s: ignoring a line that is not JSON: %r", self.run_row.pk, line[:200])
            return None
        if not isinstance(event, dict) or not isinstance(event.get("seq"), int) or "type" not in event:
            log.warning("run %s: ignoring a malformed event: %r", self.run_row.pk, line[:200])
            return None
        return event

    def store(self, batch: list[dict]) -> bool:
        """Save a batch under our lease (Run.store_events), then publish it. False if the lease was taken
        from us: nothing is kept."""
        if not self.run_row.store_events(batch, self.token):
            return False
        for event in batch:
            if event["type"] == "status":
                self.final_status = event.get("status")
            elif event["type"] == "error":
                self.last_error = event
        self.publish(batch)
        return True

    def obey_stop(self, proc: subprocess.Popen) -> None:
        """A cancel (the run is CANCELLING), a pause (PAUSING) or this worker shutting down: the
        training process is asked to stop at a checkpoint (SIGINT, training/events.py), killed after
        the grace period."""
        status = Run.objects.filter(pk=self.run_row.pk).values_list("status", flat=True).first()
        if status == Status.CANCELLING and self.stop_reason != "cancel":
            self.run_row.status = Status.CANCELLING
            self.ask_to_stop(proc, "cancel")
        elif status == Status.PAUSING and self.stop_reason not in ("pause", "cancel"):
            self.run_row.status = Status.PAUSING
            self.ask_to_stop(proc, "pause")
        elif _worker_stopping.is_set() and self.stop_reason is None:
            log.info("run %s: the worker stops; asking for a checkpoint", self.run_row.pk)
            self.ask_to_stop(proc, "shutdown")
        elif self.signalled_at is not None and time.monotonic() - self.signalled_at > settings.LAB_CANCEL_GRACE_SECONDS:
            self.signal(proc, signal.SIGKILL)

    def ask_to_stop(self, proc: subprocess.Popen, reason: str) -> None:
        self.stop_reason = reason  # a cancel during a shutdown or a pause wins: the run ends cancelled
        if self.signalled_at is None:
            self.signalled_at = time.monotonic()
            self.signal(proc, signal.SIGINT)

    @staticmethod
    def signal(proc: subprocess.Popen, sig: int) -> None:
        """`sig` to the training process's group. A SIGINT to torchrun is forwarded to its ranks (it
        waits LAB_CANCEL_GRACE_SECONDS for them); a SIGKILL reaches them by their pids, as torchrun
        starts each rank in a session of its own."""
        pids = _descendants(proc.pid) if sig == signal.SIGKILL else []
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    # -- outcome ----------------------------------------------------------------------------

    def conclude(self, returncode: int) -> str:
        if self.lease_lost:
            return "lease lost: another worker or the reaper took the run"
        if self.final_status == Status.SUCCEEDED and returncode == 0:
            return self.finish(Status.SUCCEEDED)
        if self.stop_reason in ("shutdown", "pause") and not self.last_error:  # an error is the run's own
            return self.hand_back()
        if self.final_status == Status.CANCELLED or self.stop_reason == "cancel":
            return self.finish(Status.CANCELLED)
        if returncode < 0:
            return self.finish(Status.FAILED, self._killed_message(-returncode))
        message = self.last_error.get("message") or self._log_tail() or f"training process exited with code {returncode}"
        return self.finish(Status.FAILED, message, self.last_error.get("field", ""))

    def hand_back(self) -> str:
        """The run stopped at a checkpoint without ending. Paused (PAUSING: also when the pause came
        during a shutdown), it lets go of its lease and waits for a resume. Else the worker is stopping:
        it goes back to the queue, to resume from its checkpoint when a worker starts (the message
        waits in Redis, kept on disk; a lost one is sent again)."""
        run = self.run_row
        with transaction.atomic():
            if run.settle_pause(self.token):
                event = run.append_event("status", status=Status.PAUSED, message=paused_message(run))
                outcome = "paused: the worker is free"
            else:
                mine = Run.objects.filter(pk=run.pk, lease_token=self.token, status=Status.RUNNING)
                # Not ours any more: cancelled meanwhile (CANCELLING), or the lease was taken.
                if not mine.update(status=Status.QUEUED, lease_token="", lease_expires_at=None):
                    return self.finish(Status.CANCELLED)
                run.refresh_from_db()
                where = _checkpoint_name(run) or "the start"
                message = f"the worker stopped: the run resumes from {where} when a worker starts"
                event = run.append_event("status", status=Status.QUEUED, message=message)
                enqueue(run)
                outcome = "handed back to the queue: the worker is stopping"
        self.publish([event.as_message()], last=True)
        return outcome

    def _killed_message(self, signum: int) -> str:
        """Why a training process the lab did not signal was killed, and what to do."""
        step = self.run_row.step
        checkpoint = _checkpoint_name(self.run_row)
        if checkpoint:
            resume = f"Resume continues from {checkpoint}"
        else:
            resume = "It had no checkpoint: run the cell again"
        if signum != signal.SIGKILL:
            return f"the training process was killed by signal {signum} at step {step}. {resume}."
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return (f"the training process was killed (SIGKILL) at step {step}, not by the lab: most "
                f"likely by the out-of-memory killer. Its memory peaked at "
                f"{_mib(self.peak_rss_kib * 1024)} (this machine has {_mib(total)}). It is not "
                f"retried by itself. {resume} once memory is free, or run the cell again with a "
                "smaller batch_size or context_length.")

    def _log_tail(self) -> str:
        path = Path(self.run_row.config["output_dir"]) / "process.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
        except OSError:
            return ""

    def finish(self, status: str, error: str = "", field: str = "") -> str:
        run = self.run_row
        with transaction.atomic():
            if not run.finish(self.token, status, error, field):
                return "lease lost before finishing"
            events = []
            if status == Status.FAILED:
                events.append(run.append_event("status", status=status, message=error.splitlines()[-1] if error else ""))
            elif self.final_status != status:
                events.append(run.append_event("status", status=status, message=f"ended {timezone.now():%H:%M:%S}"))
        self.publish([e.as_message() for e in events], last=True)
        self.publish.drain()
        return status


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), children first."""
    found, todo = [], [pid]
    while todo:
        children = []
        for task in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                children += [int(c) for c in task.read_text().split()]
            except OSError:
                pass  # the thread or the process ended meanwhile
        found += children
        todo += children
    return found


def _checkpoint_name(run: Run) -> str:
    return f"{Path(run.last_checkpoint).name} (step {run.step})" if run.last_checkpoint else ""


def _mib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def yield_cpu_to_training():
    """Lower this worker's CPU priority below the training process it started, until the returned
    function is called.

    Linux keeps a nice value per thread, so every thread is reniced; and with autogroup scheduling
    (on by default) CPU is shared first between sessions, so the nice value of this worker's
    session group is raised too. The training process runs in its own session and keeps its own.
    """
    for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else [0]:
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), RELAY_NICENESS)
        except OSError:
            pass
    try:
        before = _autogroup_nice()
        _set_autogroup_nice(RELAY_NICENESS)
    except (OSError, ValueError):
        return lambda: None  # no autogroup scheduling in this kernel
    # The session is the worker's: its main process receives the next run and forks the pool process
    # that claims and launches it, at its own priority again once this run is over (a nice value of
    # 0 or more needs no privilege). The threads reniced above end with this pool process.
    return lambda: _set_autogroup_nice(before)


def _autogroup_nice() -> int:
    with open("/proc/self/autogroup") as group:
        return int(group.read().split()[-1])  # "/autogroup-42 nice 0"


def _set_autogroup_nice(nice: int) -> None:
    try:
        with open("/proc/self/autogroup", "w") as group:
            group.write(str(nice))
    except OSError:
        pass  # the kernel refuses a change within 100 ms of the last one, host-wide: leave it
