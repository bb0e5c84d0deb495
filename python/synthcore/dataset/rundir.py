"""The run directory: one writer at a time, a record of every command, finished-stage markers, checkpoints.

Layout (``DIR`` is the ``--outdir`` of the commands)::

    DIR/samples.h5                  SampleCollection (collection.py)
    DIR/stats.h5                    per-iteration statistics (stats.py)
    DIR/run.jsonl                   run record: one JSON object per line, appended (see below)
    DIR/stages.json                 finished stages: {stage: {"finished": time, "command": ..., ...}}
    DIR/checkpoints/<stage>/step_XXXXXXXX.h5     resumable state (checkpoint.py)
    DIR/images_<crop>/<identity:05d>/<label>.png rendered images (render.py)
    DIR/plots/*.png                 plots (plots.py; svg or pdf on request)
    DIR/.lock                       the writer lock

**Lock.** A writing command holds an exclusive ``flock`` on ``DIR/.lock`` and writes its pid, host, command and
start time into it. A second writer is refused at once with :class:`RunDirLocked`, naming the holder. The kernel
drops the lock when its holder dies (however it dies), so a lock left by a killed process is taken over; the
dead holder's details are still in the file and are reported (``RunDir.stale_lock``). A clean release empties
the file (it is never deleted, which would let two processes lock two different files).

**Run record.** ``run.jsonl`` gets an ``event: "start"`` line when a command begins changing the directory
(argv, resolved options, synthcore/torch/python versions, host, pid, UTC time) and an ``event: "end"`` line with
its status (``ok``, ``error`` with the message, ``interrupted``) and duration. A killed command leaves a start
line without an end line. Commands refused because their stage is finished write nothing.

**Stages.** A stage (``references``, ``variations``, ``render_arcface``, ...) is marked finished in
``stages.json`` when its outputs are complete. ``begin_stage`` on a finished stage raises :class:`StageFinished`
(the commands print it and exit 0, changing nothing) unless ``force``; with ``force`` the marker and the stage's
checkpoints are cleared first.
"""

import contextlib
import json
import os
import platform
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from synthcore import __version__
from synthcore.dataset.checkpoint import Checkpoint, latest_checkpoint, save_checkpoint
from synthcore.fileio import write_json_atomic

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunDir", "RunDirLocked", "StageFinished", "utc_now"]


class RunDirLocked(RuntimeError):
    """Another process is writing to the run directory."""

    def __init__(self, path: Path, holder: Mapping[str, Any]) -> None:
        self.path = path
        self.holder = dict(holder)
        who = f"pid {holder.get('pid', '?')}"
        if holder.get("host"):
            who += f" on {holder['host']}"
        what = f" ({holder['command']}, started {holder.get('started', '?')})" if holder.get("command") else ""
        super().__init__(
            f"run directory {path} is in use by {who}{what}; wait for it to finish or use another --outdir"
        )


class StageFinished(RuntimeError):
    """The stage was completed by an earlier command; nothing was changed."""

    def __init__(self, path: Path, stage: str, info: Mapping[str, Any]) -> None:
        self.path = path
        self.stage = stage
        self.info = dict(info)
        when = info.get("finished", "earlier")
        super().__init__(
            f"stage '{stage}' of {path} already finished ({when}); nothing to do. Use --force to redo it "
            "(this replaces its outputs)"
        )


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _jsonable(obj: Any) -> Any:
    """Options as JSON: paths and other objects become strings."""
    return json.loads(json.dumps(obj, default=str, allow_nan=True))


class RunDir:
    """A run directory (created on first write). See the module docstring for what it holds.

    Typical command::

        run = RunDir(outdir)
        with run.session("references", options=resolved, argv=sys.argv[1:]):
            run.begin_stage("references", force=args.force)        # StageFinished if done already
            ckpt = run.latest_checkpoint("references")             # resume?
            ... run.save_checkpoint("references", step, state) every K steps ...
            run.finish_stage("references")
    """

    LOCK_NAME = ".lock"
    RECORD_NAME = "run.jsonl"
    STAGES_NAME = "stages.json"

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self._lock_fd: Optional[int] = None
        self.stale_lock: Optional[Dict[str, Any]] = None
        self._command: Optional[str] = None
        self._argv: Optional[List[str]] = None
        self._options: Dict[str, Any] = {}
        self._run_id: Optional[str] = None
        self._started: Optional[float] = None

    # --- paths ---------------------------------------------------------------------------------------------

    @property
    def samples_path(self) -> Path:
        return self.path / "samples.h5"

    @property
    def stats_path(self) -> Path:
        return self.path / "stats.h5"

    @property
    def record_path(self) -> Path:
        return self.path / self.RECORD_NAME

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    def images_dir(self, crop: str) -> Path:
        """``images_<crop>``: where images rendered with a crop preset go (``images_full`` for no crop)."""
        return self.path / f"images_{crop}"

    def checkpoint_dir(self, stage: str) -> Path:
        return self.path / "checkpoints" / _check_stage(stage)

    # --- lock ----------------------------------------------------------------------------------------------

    @property
    def locked(self) -> bool:
        """Whether this object holds the writer lock."""
        return self._lock_fd is not None

    def holder(self) -> Optional[Dict[str, Any]]:
        """Details of the process holding the lock now, or None if nobody does (or this object does)."""
        if self.locked:
            return None
        path = self.path / self.LOCK_NAME
        if not path.exists():
            return None
        fd = os.open(path, os.O_RDWR)
        try:
            if fcntl is None:  # pragma: no cover
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_lock_info(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def lock(self, command: str = "") -> "RunDir":
        """Take the writer lock or raise :class:`RunDirLocked`. Takes over a lock left by a dead process."""
        if self.locked:
            return self
        if fcntl is None:  # pragma: no cover
            raise RuntimeError("run-directory locking needs POSIX file locks (fcntl), not available here")
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / self.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_lock_info(fd)
            os.close(fd)
            raise RunDirLocked(self.path, info) from None
        except BaseException:
            os.close(fd)
            raise
        previous = _read_lock_info(fd)
        # A non-empty file under a free lock: its writer died without releasing (kill -9, crash, power loss).
        self.stale_lock = previous or None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "started": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
        self._lock_fd = fd
        return self

    def unlock(self) -> None:
        """Release the writer lock (emptying the lock file first)."""
        if self._lock_fd is None:
            return
        fd, self._lock_fd = self._lock_fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _require_lock(self, what: str) -> None:
        if not self.locked:
            raise RuntimeError(f"{what} needs the run directory's writer lock (call lock() or session() first)")

    # --- run record ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(
        self, command: str, options: Optional[Mapping[str, Any]] = None, argv: Optional[Sequence[str]] = None
    ) -> Iterator["RunDir"]:
        """Lock the directory for one command; record its end (status, duration) if it recorded a start.

        The start entry is written by :meth:`begin_stage` (or :meth:`record_start` for stage-less commands),
        so a command refused because its stage is finished leaves no trace.
        """
        self.lock(command)
        self._command = command
        self._argv = list(sys.argv[1:] if argv is None else argv)
        self._options = _jsonable(dict(options or {}))
        status, message = "ok", ""
        try:
            yield self
        except StageFinished:
            status = "skipped"
            raise
        except KeyboardInterrupt:
            status, message = "interrupted", "interrupted by the user"
            raise
        except BaseException as exc:
            status, message = "error", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            try:
                if self._run_id is not None and status != "skipped":
                    self.record_end(status, message)
            finally:
                self._run_id = None
                self.unlock()

    def set_options(self, options: Mapping[str, Any]) -> None:
        """Replace the resolved options the run record will show (before the start entry is written)."""
        self._options = _jsonable(dict(options))

    def record_start(self) -> str:
        """Append the start entry of the current session's command; returns its run id (idempotent)."""
        self._require_lock("recording a command")
        if self._run_id is not None:
            return self._run_id
        import torch

        self._run_id = uuid.uuid4().hex[:12]
        self._started = time.monotonic()
        entry = {
            "event": "start",
            "run_id": self._run_id,
            "command": self._command,
            "argv": self._argv,
            "options": self._options,
            "synthcore_version": __version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "cwd": os.getcwd(),
            "time": utc_now(),
        }
        if self.stale_lock:
            entry["took_over_stale_lock"] = self.stale_lock
        self._append_record(entry)
        return self._run_id

    def record_end(self, status: str = "ok", message: str = "") -> None:
        """Append the end entry of the current command."""
        if self._run_id is None:
            return
        duration = time.monotonic() - (self._started or time.monotonic())
        entry = {
            "event": "end",
            "run_id": self._run_id,
            "command": self._command,
            "status": status,
            "time": utc_now(),
            "duration_s": round(duration, 3),
        }
        if message:
            entry["message"] = message
        self._append_record(entry)

    def _append_record(self, entry: Mapping[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True, allow_nan=True, default=str) + "\n"
        # One write() on an O_APPEND descriptor: a line is never interleaved or half-replaced; mode 0666 less the umask.
        fd = os.open(self.record_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> List[Dict[str, Any]]:
        """Every entry of the run record, oldest first (a torn last line is skipped)."""
        if not self.record_path.exists():
            return []
        out = []
        for line in self.record_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    # --- stages --------------------------------------------------------------------------------------------

    def _stages(self) -> Dict[str, Any]:
        path = self.path / self.STAGES_NAME
        if not path.exists():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    def stage_info(self, stage: str) -> Optional[Dict[str, Any]]:
        """The marker of a finished stage, or None."""
        return self._stages().get(_check_stage(stage))

    def is_finished(self, stage: str) -> bool:
        return self.stage_info(stage) is not None

    def finished_stages(self) -> Dict[str, Dict[str, Any]]:
        return self._stages()

    def begin_stage(self, stage: str, force: bool = False) -> None:
        """Start (or resume) a stage; raises :class:`StageFinished` if it is finished and not ``force``.

        With ``force`` a finished stage's marker and checkpoints are removed. Records the command's start.
        """
        self._require_lock("starting a stage")
        info = self.stage_info(stage)
        if info is not None and not force:
            self._check_samples(stage, info)
            raise StageFinished(self.path, stage, info)
        self.record_start()
        if force:
            self.clear_stage(stage)
            self.clear_checkpoints(stage)

    SAMPLE_STAGES = ("references", "variations")  # the stages that write samples.h5

    def _check_samples(self, stage: str, info: Mapping[str, Any]) -> None:
        """A finished stage that wrote ``samples.h5`` is only "nothing to do" while that file is whole: a missing (if
        the marker lists it) or damaged one (truncated, failed checksum; checked on open, cheaply) raises ValueError
        naming it and the commands that rebuild it."""
        if stage not in self.SAMPLE_STAGES:
            return
        from synthcore.dataset.collection import DamagedCollectionError, SampleCollection

        # variations rewrites samples.h5 from the references rows in it, so a lost file is rebuilt from the start.
        redo = ["references"] + [s for s in self.SAMPLE_STAGES[1:] if self.is_finished(s)]
        how = ", then ".join(f"synthcore {s} --outdir {self.path} --force" for s in redo)
        where = f"stage '{stage}' finished, but its output {self.samples_path}"
        if not self.samples_path.is_file():
            if self.samples_path.name in info.get("outputs", ()):
                raise ValueError(f"{where} is missing; rebuild it: {how}")
            return
        try:
            SampleCollection.open(self.samples_path).close()
        except DamagedCollectionError as exc:
            raise ValueError(f"{where} is damaged ({exc.what}); rebuild it: {how}") from None

    def finish_stage(self, stage: str, info: Optional[Mapping[str, Any]] = None) -> None:
        """Mark a stage finished (``info``: anything worth keeping, e.g. output counts)."""
        self._require_lock("finishing a stage")
        stages = self._stages()
        entry = {"finished": utc_now(), "command": self._command, "run_id": self._run_id}
        if stage in self.SAMPLE_STAGES and self.samples_path.is_file():
            entry["outputs"] = [self.samples_path.name]  # checked when the stage is run again (_check_samples)
        entry.update(_jsonable(dict(info or {})))
        stages[_check_stage(stage)] = entry
        write_json_atomic(self.path / self.STAGES_NAME, stages, allow_nan=True)

    def clear_stage(self, stage: str) -> None:
        """Forget that a stage finished."""
        self._require_lock("clearing a stage")
        stages = self._stages()
        if stages.pop(_check_stage(stage), None) is not None:
            write_json_atomic(self.path / self.STAGES_NAME, stages, allow_nan=True)

    # --- checkpoints ---------------------------------------------------------------------------------------

    def save_checkpoint(self, stage: str, step: int, state: Any, keep: int = 2) -> Path:
        """Atomically save a stage's state at ``step`` (keeping the newest ``keep`` checkpoints)."""
        self._require_lock("saving a checkpoint")
        return save_checkpoint(self.checkpoint_dir(stage), step, state, keep=keep)

    def latest_checkpoint(self, stage: str) -> Optional[Checkpoint]:
        """The newest complete checkpoint of a stage, or None."""
        return latest_checkpoint(self.checkpoint_dir(stage))

    def checkpointer(self, stage: str, keep: int = 2) -> Callable[[int, Any], None]:
        """A ``checkpoint(step, state)`` callback for the identity algorithms."""

        def checkpoint(step: int, state: Any) -> None:
            self.save_checkpoint(stage, step, state, keep=keep)

        return checkpoint

    def clear_checkpoints(self, stage: str) -> None:
        """Delete a stage's checkpoints (after it finished, or when it is redone)."""
        self._require_lock("clearing checkpoints")
        d = self.checkpoint_dir(stage)
        if d.is_dir():
            shutil.rmtree(d)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}{', locked' if self.locked else ''})"


def _check_stage(stage: str) -> str:
    if not isinstance(stage, str) or not stage or not all(ch.isalnum() or ch in "_-." for ch in stage):
        raise ValueError(f"bad stage name {stage!r} (letters, digits, '_', '-', '.')")
    return stage


def _read_lock_info(fd: int) -> Dict[str, Any]:
    try:
        size = os.fstat(fd).st_size
        raw = os.pread(fd, min(size, 65536), 0).decode("utf-8", "replace").strip()
        return json.loads(raw) if raw else {}
    except (OSError, ValueError):
        return {"pid": "?"}
