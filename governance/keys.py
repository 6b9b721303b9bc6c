"""API keys: stored as SHA-256 only, with scopes and optional audience / service-line pins.

A key is `canon_<prefix>_<secret>`: the prefix finds the row, the secret (32 random
bytes) is compared by hash in constant time. High-entropy secrets make a plain
SHA-256 sufficient; nothing reversible is stored.
"""

import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from governance import audit
from governance.errors import InvalidInput, NotFound, PermissionDenied, Unauthenticated
from governance.models import ApiKey, Audience, Ledger, utcnow
from governance.service import Actor, Role


class Scope(StrEnum):
    answer = "answer"
    author = "author"
    review = "review"
    clinical_review = "clinical-review"
    admin = "admin"


_ROLE_OF: dict[Scope, Role] = {
    Scope.author: Role.author,
    Scope.review: Role.reviewer,
    Scope.clinical_review: Role.clinical_reviewer,
    Scope.admin: Role.admin,
}


@dataclass(frozen=True)
class Principal:
    """Who is calling, what they may do, and what they may see."""

    name: str
    prefix: str
    scopes: frozenset[Scope]
    audience_pin: Audience | None = None
    service_lines_pin: tuple[str, ...] = ()

    def require(self, *any_of: Scope) -> None:
        if not self.scopes.intersection(any_of):
            needed = " or ".join(s.value for s in any_of)
            raise PermissionDenied(f"key {self.prefix} lacks the {needed} scope")

    def actor(self) -> Actor:
        return Actor(self.name, frozenset(_ROLE_OF[s] for s in self.scopes if s in _ROLE_OF))

    def audience(self, requested: Audience) -> Audience:
        """The audience a request may use: a patient-pinned key can never read staff content."""
        if self.audience_pin == Audience.patient and requested != Audience.patient:
            raise PermissionDenied(
                f"key {self.prefix} is pinned to the {self.audience_pin.value} audience"
            )
        return requested

    def service_lines(self, requested: Sequence[str]) -> tuple[str, ...]:
        """Requested service lines, limited to the key's pins (all pins when none requested)."""
        if not self.service_lines_pin:
            return tuple(requested)
        outside = sorted(set(requested) - set(self.service_lines_pin))
        if outside:
            pinned = ", ".join(self.service_lines_pin)
            raise PermissionDenied(
                f"key {self.prefix} is pinned to service lines {pinned}; not {', '.join(outside)}"
            )
        return tuple(requested) or self.service_lines_pin


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in (value or "").split(",") if v)


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    scopes: set[Scope] = set()
    for value in values:
        try:
            scopes.add(Scope(value))
        except ValueError:
            allowed = ", ".join(s.value for s in Scope)
            raise InvalidInput(f"scope {value!r} is not one of {allowed}") from None
    if not scopes:
        raise InvalidInput("a key needs at least one scope")
    return frozenset(scopes)


def create(
    session: Session,
    *,
    name: str,
    scopes: Iterable[str],
    created_by: str,
    audience: Audience | None = None,
    service_lines: Sequence[str] = (),
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its plaintext, which is never stored."""
    if not name.strip():
        raise InvalidInput("name: a key needs the name of who or what uses it")
    parsed = parse_scopes(scopes)
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        prefix=prefix,
        secret_hash=_hash(secret),
        name=name.strip(),
        scopes=",".join(sorted(s.value for s in parsed)),
        audience_pin=audience,
        service_lines_pin=",".join(sorted(set(service_lines))) or None,
        created_by=created_by,
    )
    session.add(key)
    audit.record(
        session,
        actor=created_by,
        action="key.create",
        reason=f"key {prefix} for {key.name}: scopes {key.scopes}"
        + (f"; audience {audience.value}" if audience else "")
        + (f"; service lines {key.service_lines_pin}" if key.service_lines_pin else ""),
    )
    session.commit()
    session.refresh(key)
    return key, f"canon_{prefix}_{secret}"


def authenticate(session: Session, presented: str | None) -> Principal:
    if not presented:
        raise Unauthenticated("an API key is required (Authorization: Bearer canon_...)")
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != "canon":
        raise Unauthenticated("malformed API key")
    _, prefix, secret = parts
    key = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(secret)):
        raise Unauthenticated("unknown API key")
    if key.revoked_at is not None:
        raise Unauthenticated(f"API key {prefix} was revoked")
    return Principal(
        name=key.name,
        prefix=key.prefix,
        scopes=parse_scopes(_split(key.scopes)),
        audience_pin=key.audience_pin,
        service_lines_pin=_split(key.service_lines_pin),
    )


_AUDIT_SEQ = select(Ledger.audit_seq).where(Ledger.id == 1)


class KeyCache:
    """`authenticate` from memory, keyed by the SHA-256 of the whole presented key.

    An entry holds while the audit sequence it was read at is still the database's:
    creating or revoking a key appends an audit event in the same transaction, so a
    revoked key fails on the very next request, whichever process revoked it. That
    check is one primary-key read of the ledger row instead of a key lookup, parse and
    hash compare. Failures are never cached.
    """

    def __init__(self, engine: Engine, *, size: int = 1024) -> None:
        self._engine = engine
        self._size = size
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Principal, int]] = {}

    def authenticate(self, presented: str | None) -> Principal:
        digest = _hash(presented or "")
        with self._engine.connect() as connection:
            # The sequence is read before the key row, so an entry is never stored under a
            # sequence newer than the row it was built from.
            seq = connection.execute(_AUDIT_SEQ).scalar() or 0
            hit = self._entries.get(digest)
            if hit is not None and hit[1] == seq:
                return hit[0]
            with Session(bind=connection) as session:
                principal = authenticate(session, presented)
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[digest] = (principal, seq)
        return principal

    def sequence(self) -> int:
        """The audit sequence now: a cached entry read at it is still current."""
        with self._engine.connect() as connection:
            return int(connection.execute(_AUDIT_SEQ).scalar() or 0)

    def cached(self, presented: str | None, seq: int) -> Principal | None:
        """The cached principal for `presented` if it was read at audit sequence `seq`.

        For callers that read `seq` themselves after the request arrived (an event loop
        reads it once for all the requests that arrived before the read: see
        `retrieval.api.caller`); `None` means authenticate the slow way."""
        hit = self._entries.get(_hash(presented or ""))
        return hit[0] if hit is not None and hit[1] == seq else None


def revoke(session: Session, prefix: str, *, by: str) -> ApiKey:
    key = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if key is None:
        raise NotFound(f"no API key with prefix {prefix!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        audit.record(session, actor=by, action="key.revoke", reason=f"key {prefix} for {key.name}")
        session.commit()
    return key


def listing(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(col(ApiKey.created_at))).all())
