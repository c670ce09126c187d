"""The promises the model-based test (tests/e2e/test_model.py) checks after every step, as a
mixin of its state machine: (a) never twice, (b) one row per command OneNET holds, (c) every
command accounted for, (d) finals stay, (e) a canary judged the job as it was."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

from dispatcher.emulator.server import StoredCommand
from dispatcher.job.model import load_job
from dispatcher.ledger.address import LedgerAddress, PostgresAddress
from tests.support.model_world import (
    PRODUCTS,
    Content,
    Done,
    JobModel,
    LedgerRow,
    held_identity,
)


class Violation(AssertionError):
    """A promise of the tool broken: the sequence before it is the reproduction."""


class Promises:
    """The checks of the promises, over the state machine's job, ledgers and the canary's record."""

    dir: Path
    job: JobModel
    lanes: int
    retry_files: list[Path]
    finals: dict[tuple[str, int], tuple[str, str | None, int | None]]
    judged: dict[str | None, set[Content]]
    judged_yaml: dict[str | None, str]

    @property
    def job_path(self) -> Path:
        return self.dir / "job.yaml"

    ledger_url: str | None = None  # a PostgreSQL ledger (config ledger.url): a job per file

    def ledger_of(self, job: Path) -> LedgerAddress:
        """The ledger a run of ``job`` writes: the file beside it, or its job (named after the
        file) in the PostgreSQL ledger."""
        if self.ledger_url is not None:
            return PostgresAddress.parse(self.ledger_url).with_job(job.stem)
        return job.with_name(job.name + ".ledger.db")

    def check_never_twice(self, held: list[StoredCommand]) -> None:
        """(a)"""
        twice = {k: n for k, n in Counter(map(held_identity, held)).items() if n > 1}
        if twice:
            raise Violation(f"(a) commands OneNET got more than once: {twice}")

    def check_each_held_command_has_one_row(
        self, held: list[StoredCommand], rows: list[LedgerRow]
    ) -> None:
        """(b)"""
        by_uuid: dict[str, list[LedgerRow]] = {}
        for r in rows:
            if r.uuid is not None:
                by_uuid.setdefault(r.uuid, []).append(r)
        unsettled = Counter(r.identity for r in rows if r.status in ("in_flight", "in_doubt"))
        for c in held:
            claims = by_uuid.pop(c.uuid, [])
            if len(claims) > 1:
                raise Violation(f"(b) {c.uuid} is held by {len(claims)} rows: {claims}")
            if claims:
                (row,) = claims
                if row.status != "accepted" or row.identity != held_identity(c):
                    raise Violation(f"(b) {c.uuid} ({held_identity(c)}) is held by {row}")
            elif unsettled[held_identity(c)] > 0:
                unsettled[held_identity(c)] -= 1
            else:
                raise Violation(
                    f"(b) OneNET holds {c.uuid} {held_identity(c)}, and no ledger row has it,"
                    " in flight or in doubt"
                )
        if by_uuid:
            raise Violation(f"(b) ledger rows hold uuids OneNET never created: {by_uuid}")

    def check_every_command_accounted_for(
        self, held: list[StoredCommand], ledgers: dict[Path, list[LedgerRow]]
    ) -> None:
        """(c)"""
        at_onenet = {c.uuid for c in held}
        contents = {job: self.job_contents(job) for job in ledgers if job.exists()}
        for job, rows in ledgers.items():
            if not job.exists():
                continue
            active = {r.key: r for r in rows if r.retired is None}
            for key in contents[job]:
                row = active.get(key)
                if row is None:
                    continue  # not registered yet (a stop or a kill came first): pending
                self.check_row_says_why(row, at_onenet)
            for row in rows:
                if row.retried_in is not None:
                    self.check_handed_over(row, contents)

    @staticmethod
    def job_contents(job: Path) -> dict[str, tuple[str, Content]]:
        """Each command of a job file by its ledger key: its device and content."""
        return {
            c.key: (c.imei, (c.op, c.obj_id, c.obj_inst_id, c.res_id, c.args))
            for c in load_job(job).commands()
        }

    @staticmethod
    def check_row_says_why(row: LedgerRow, at_onenet: set[str]) -> None:
        if row.status == "accepted":
            if row.uuid is None or row.uuid not in at_onenet:
                raise Violation(f"(c) accepted, and OneNET does not hold it: {row}")
        elif row.status == "skipped" and not row.error:
            raise Violation(f"(c) skipped with no reason: {row}")
        elif row.status == "retried" and row.retried_in is None:
            raise Violation(f"(c) retried, and handed to no job: {row}")
        elif row.status not in (
            "pending", "in_flight", "in_doubt", "rejected", "failed", "expired", "skipped",
            "retried",
        ):  # fmt: skip
            raise Violation(f"(c) a state that says nothing: {row}")

    def check_handed_over(
        self, row: LedgerRow, contents: dict[Path, dict[str, tuple[str, Content]]]
    ) -> None:
        assert row.retried_in is not None
        path = Path(row.retried_in)
        if not path.is_absolute():
            path = self.dir / path
        found = next((c for p, c in contents.items() if p.resolve() == path.resolve()), None)
        if found is None:
            raise Violation(f"(c) handed to {row.retried_in}, which is not there: {row}")
        if (row.imei, row.content) not in found.values():
            raise Violation(f"(c) handed to {path.name}, which does not hold it: {row}")

    def check_finals_stay(self, rows: list[LedgerRow]) -> None:
        """(d)"""
        now = {(r.ledger, r.seq): r for r in rows}
        for place, was in self.finals.items():
            row = now.get(place)
            if row is None or (row.status, row.uuid, row.errno) != was:
                raise Violation(f"(d) a final row changed: was {was}, now {row}")
        for r in rows:
            if (r.status == "accepted" and r.uuid is not None) or r.status == "rejected":
                self.finals[(r.ledger, r.seq)] = (r.status, r.uuid, r.errno)

    def check_canary(self, done: Done, sent: list[StoredCommand]) -> None:
        """(e), lane by lane: each product draws, judges and pauses on its own canary."""
        assert self.job.canary is not None
        text = self.job_path.read_text(encoding="utf-8")
        lanes = list(PRODUCTS) if self.lanes > 1 else [None]
        paused = self.paused_lanes(done, lanes)
        contents = {content for _, content in self.job_contents(self.job_path).values()}
        # a canary is of devices (each gets every step)
        worth = self.job.canary * max(1, len(self.job.steps))
        for lane in lanes:
            if lane in paused and self.judged_yaml.get(lane) == text:
                raise Violation(f"(e) the same job paused again after a good canary ({lane})")
            judged = self.judged.get(lane, set())
            unjudged = [
                c
                for c in sent
                if c.product == lane
                and (c.type.lower(), c.obj_id, c.obj_inst_id, c.res_id, c.args) not in judged
            ]
            if len(unjudged) > worth:
                raise Violation(
                    f"(e) {len(unjudged)} commands sent that no canary judged (canary size"
                    f" {self.job.canary}, product {lane}):"
                    f" {[held_identity(c) for c in unjudged]}"
                )
            if lane in paused:  # what earlier canaries judged stays judged (an edit back)
                self.judged[lane] = judged | contents
                self.judged_yaml[lane] = text
            elif done.code == -signal.SIGKILL:  # its canary may have passed, unsaid: judged
                self.judged[lane] = judged | contents

    @staticmethod
    def paused_lanes(done: Done, lanes: list[str | None]) -> set[str | None]:
        """The lanes a run paused after a good canary (several products: each says so)."""
        if lanes == [None]:
            return {None} if done.paused else set()
        return {p for p in lanes if f"product {p}: stopped: paused after the canary" in done.out}
