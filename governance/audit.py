"""Append-only, hash-chained audit log."""

import hashlib
import json
from dataclasses import dataclass

from sqlmodel import Session, col, select

from governance.models import AuditEvent, Ledger, utcnow

GENESIS = "0" * 64


def lock_ledger(session: Session) -> Ledger:
    """Lock the single ledger row for the rest of the transaction."""
    ledger = session.exec(select(Ledger).where(Ledger.id == 1).with_for_update()).one()
    return ledger


def _digest(event: AuditEvent) -> str:
    fields = {
        "seq": event.seq,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "article_id": event.article_id,
        "version_id": event.version_id,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "reason": event.reason,
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    article_id: str | None = None,
    version_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """Append one event inside the caller's transaction."""
    ledger = lock_ledger(session)
    event = AuditEvent(
        seq=ledger.audit_seq + 1,
        at=utcnow(),
        actor=actor,
        action=action,
        article_id=article_id,
        version_id=version_id,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        prev_hash=ledger.audit_head,
        hash="",
    )
    event.hash = _digest(event)
    ledger.audit_seq = event.seq
    ledger.audit_head = event.hash
    session.add(event)
    session.add(ledger)
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify(session: Session) -> ChainReport:
    """Walk the chain in order; name the first event that breaks it."""
    events = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    prev = GENESIS
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            return ChainReport(False, len(events), expected_seq, f"event {expected_seq} is missing")
        if event.prev_hash != prev:
            return ChainReport(False, len(events), event.seq, "link to previous event broken")
        if _digest(event) != event.hash:
            return ChainReport(False, len(events), event.seq, "event content was altered")
        prev = event.hash
    ledger = session.get(Ledger, 1)
    if ledger is not None and (ledger.audit_seq, ledger.audit_head) != (len(events), prev):
        return ChainReport(
            False, len(events), len(events) + 1, "events after this one were deleted"
        )
    return ChainReport(True, len(events))


def events(
    session: Session, *, article_id: str | None = None, after: int = 0, limit: int = 100
) -> list[AuditEvent]:
    """Events in chain order, optionally for one article."""
    query = select(AuditEvent).where(col(AuditEvent.seq) > after)
    if article_id is not None:
        query = query.where(AuditEvent.article_id == article_id)
    return list(session.exec(query.order_by(col(AuditEvent.seq)).limit(limit)).all())
