"""The local backend's state on disk: job records and array specs under one state directory.

    <state_dir>/next_id               last array id handed out (under next_id.lock)
    <state_dir>/arrays/<id>.json      the submission (ArraySpec); <id>.lock guards its records
    <state_dir>/arrays/<id>.log       stderr of the detached runner (look here if it crashed)
    <state_dir>/jobs/<job_id>.json    one JobRecord per job, replaced atomically (temp + rename)
    <state_dir>/slots/<n>.lock        machine-wide slots when max_parallel is set (flock)

Every read-modify-write of a record holds its array's lock, so the runner, `cancel` and
`release` in other processes never lose each other's changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rea_cli.executor.local import procs, records
from rea_cli.executor.local.records import ArraySpec, JobRecord
from rea_cli.fsutil import write_text_atomic


class JobStore:
    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir).resolve()
        self.jobs_dir = self.root / "jobs"
        self.arrays_dir = self.root / "arrays"
        self.slots_dir = self.root / "slots"
        for d in (self.jobs_dir, self.arrays_dir, self.slots_dir):
            d.mkdir(parents=True, exist_ok=True)

    # --- ids and specs ---------------------------------------------------------------------

    def new_array_id(self) -> int:
        """A fresh array id: a counter under a file lock, like Slurm's job ids."""
        with _flock(self.root / "next_id.lock"):
            path = self.root / "next_id"
            last = int(path.read_text()) if path.exists() else 0
            _write_atomic(path, f"{last + 1}\n")
        return last + 1

    def write_spec(self, spec: ArraySpec) -> None:
        _write_atomic(self.spec_path(spec.array_id), json.dumps(spec.to_json(), indent=1))

    def read_spec(self, array_id: int) -> ArraySpec:
        return ArraySpec.from_json(json.loads(self.spec_path(array_id).read_text()))

    def spec_path(self, array_id: int) -> Path:
        return self.arrays_dir / f"{array_id}.json"

    def runner_log(self, array_id: int) -> Path:
        return self.arrays_dir / f"{array_id}.log"

    # --- records ---------------------------------------------------------------------------

    def read(self, job_id: str) -> JobRecord | None:
        if records.parse_job_id(job_id) is None:
            return None
        try:
            data = json.loads((self.jobs_dir / f"{job_id}.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return JobRecord.from_json(data)

    def write(self, record: JobRecord) -> None:
        _write_atomic(self.jobs_dir / f"{record.job_id}.json", json.dumps(record.to_json()))

    def all_job_ids(self) -> list[str]:
        return sorted(p.stem for p in self.jobs_dir.glob("*.json"))

    @contextlib.contextmanager
    def locked(self, array_id: int) -> Iterator[None]:
        with _flock(self.arrays_dir / f"{array_id}.lock"):
            yield

    def update(
        self, job_ids: Sequence[str], change: Callable[[JobRecord], JobRecord]
    ) -> list[JobRecord]:
        """Apply `change` to each existing record under its array's lock; return the results."""
        out = []
        for job_id in job_ids:
            parsed = records.parse_job_id(job_id)
            if parsed is None:
                continue
            with self.locked(parsed[0]):
                record = self.read(job_id)
                if record is None:
                    continue
                new = change(record)
                if new != record:
                    self.write(new)
                out.append(new)
        return out

    def current(self, job_id: str) -> JobRecord | None:
        """The record, with a job whose runner died resolved (and persisted) instead of stuck."""
        record = self.read(job_id)
        if record is None or record.state.is_terminal or procs.is_alive(record.runner):
            return record
        try:
            resolved = self.update([job_id], self._resolve)
        except OSError:
            # a full disk, a teammate's record: the answer stands, the next reader persists it
            return self._resolve(record)
        return resolved[0] if resolved else None

    def _resolve(self, record: JobRecord) -> JobRecord:
        if record.state.is_terminal:
            return record
        submitted = records.parse_time(record.submitted_at) or datetime.now(UTC)
        return records.resolve_orphan(
            record,
            runner_alive=procs.is_alive(record.runner),
            task_alive=procs.is_alive(record.task),
            age_s=(datetime.now(UTC) - submitted).total_seconds(),
            at=records.now_iso(),
        )


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def try_slot(slots_dir: Path, max_parallel: int) -> Any | None:
    """Hold one of `max_parallel` machine-wide slots: an open, flock'ed file, or None if all
    are taken. Closing the file (or the holder dying) frees the slot."""
    for n in range(max_parallel):
        fh = open(slots_dir / f"{n}.lock", "a")  # noqa: SIM115 - held while the task runs
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            continue
        return fh
    return None


def _write_atomic(path: Path, text: str) -> None:
    write_text_atomic(path, text)  # follows the umask, like every workspace file
