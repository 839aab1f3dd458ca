"""Users, roles, PINs and lock-out.

PINs are stored as scrypt hashes (standard library, per-user random salt, memory-hard so a stolen
database does not give up 4–8 digit PINs cheaply). Every failed PIN is counted in the database,
audited, and after `policy.max_pin_failures` the account locks until an admin unlocks it. The very
first user of an empty database may be created without an actor, and must be an admin: that is how
a site bootstraps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import Session

from adc.controller.context import Actor, Controller
from adc.controller.models import Role, User
from adc.controller.permissions import Action
from adc.errors import BadInput, Refused

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
PIN_RE = re.compile(r"^[0-9]{4,12}$")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def pin_matches(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            pin.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(base64.b64decode(digest)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


def check_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.match(name):
        raise BadInput(
            f"user name {username!r} is not valid: 2–64 characters, a letter first, then "
            "letters, digits, '.', '_' or '-'"
        )
    return name


def check_pin(pin: str) -> str:
    if not PIN_RE.match(pin):
        raise BadInput("a PIN is 4 to 12 digits")
    return pin


def parse_role(role: str) -> Role:
    try:
        return Role(role.strip().lower())
    except ValueError:
        raise BadInput(
            f"unknown role {role!r}; roles: {', '.join(r.value for r in Role)}"
        ) from None


@dataclass(frozen=True)
class UserView:
    username: str
    full_name: str
    role: str
    active: bool
    locked: bool
    failed_attempts: int


def _view(user: User) -> UserView:
    return UserView(
        user.username, user.full_name, user.role, user.active, user.locked, user.failed_attempts
    )


def add_user(
    ctl: Controller, actor: Actor | None, username: str, role: str, pin: str, full_name: str = ""
) -> UserView:
    """Create a user; without an actor only the first user, an admin, may be created."""
    name, the_role, pin = check_username(username), parse_role(role), check_pin(pin)
    pin_hash = hash_pin(pin)  # slow on purpose: done before the writer lock is taken
    with ctl.write(actor, Action.USER_MANAGE) as tx:
        if actor is None:
            if tx.session.execute(select(func.count()).select_from(User)).scalar_one():
                raise Refused("users exist already: log in as an admin to add more")
            if the_role is not Role.ADMIN:
                raise Refused("the first user of a database must be an admin")
        if tx.session.execute(select(User.id).where(User.username == name)).first():
            raise BadInput(f"user {name} exists already")
        user = User(
            username=name,
            full_name=full_name.strip(),
            role=the_role,
            pin_hash=pin_hash,
            created_at=tx.now,
        )
        tx.session.add(user)
        tx.session.flush()
        tx.audit(
            "user.add",
            {
                "user": name,
                "role": the_role.value,
                "full_name": user.full_name,
                "bootstrap": actor is None,
            },
        )
        return _view(user)


def _load(session: Session, username: str) -> User:
    user = session.execute(select(User).where(User.username == username.strip().lower())).scalar()
    if user is None:
        raise BadInput(f"unknown user {username!r}")
    return user


def disable_user(ctl: Controller, actor: Actor, username: str) -> UserView:
    with ctl.write(actor, Action.USER_MANAGE) as tx:
        user = _load(tx.session, username)
        if user.id == actor.user_id:
            raise Refused("you cannot disable your own account")
        if not user.active:
            raise Refused(f"user {user.username} is disabled already")
        user.active = False
        tx.audit("user.disable", {"user": user.username})
        return _view(user)


def unlock_user(ctl: Controller, actor: Actor, username: str) -> UserView:
    with ctl.write(actor, Action.USER_MANAGE) as tx:
        user = _load(tx.session, username)
        if not user.locked and not user.failed_attempts:
            raise Refused(f"user {user.username} is not locked out")
        user.locked, user.failed_attempts = False, 0
        tx.audit("user.unlock", {"user": user.username})
        return _view(user)


def list_users(ctl: Controller) -> list[UserView]:
    with ctl.read() as session:
        users = session.execute(select(User).order_by(User.username)).scalars().all()
        return [_view(u) for u in users]


def authenticate(ctl: Controller, username: str, pin: str) -> Actor:
    """Check a PIN. A wrong PIN is counted (and audited) even though the call then fails."""
    with ctl.read() as session:
        user = _load(session, username)
        stored, user_id = user.pin_hash, user.id
    if not user.active:
        raise Refused(f"user {user.username} is disabled")
    if user.locked:
        raise Refused(f"user {user.username} is locked out; an admin must unlock the account")
    good = pin_matches(pin, stored)
    if good and not user.failed_attempts:
        # Nothing to reset or record: no write, so a login never waits for the site lock (which
        # a stalled change on any one cabinet would hold up for every cabinet's logins).
        return Actor(user_id=user_id or 0, username=user.username, role=Role(user.role))
    with ctl.write(None, None) as tx:
        current = tx.session.get(User, user_id)
        assert current is not None
        tx.user = current  # the person trying to log in is the actor of these entries
        if current.locked:  # locked by a parallel attempt meanwhile
            raise Refused(
                f"user {current.username} is locked out; an admin must unlock the account"
            )
        if good:
            if current.failed_attempts:
                current.failed_attempts = 0
                tx.audit("user.pin_ok_after_failures", {"user": current.username})
            actor = Actor(
                user_id=current.id or 0, username=current.username, role=Role(current.role)
            )
        else:
            current.failed_attempts += 1
            limit = ctl.policy.max_pin_failures
            current.locked = current.failed_attempts >= limit
            tx.audit(
                "user.pin_failed",
                {
                    "user": current.username,
                    "attempt": current.failed_attempts,
                    "locked": current.locked,
                },
            )
            attempts, locked = current.failed_attempts, current.locked
    if good:
        return actor
    if locked:
        raise Refused(
            f"wrong PIN for {user.username}: account locked after {attempts} failed attempts; "
            "an admin must unlock it"
        )
    raise BadInput(f"wrong PIN for {user.username} (failed attempt {attempts} of {limit})")
