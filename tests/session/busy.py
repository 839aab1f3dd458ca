"""Helpers of the tests of a restock session whose database is busy or gone (issue 16 items 2, 3):
a session site on SQLite or PostgreSQL, another connection holding the cabinet's writer lock, a
TCP proxy in front of PostgreSQL that can be cut (the server unreachable) and restored, and the
person at the Modbus TCP emulator's cabinet."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from adc.sim.serve import CabinetServer
from tests.controller.site import Site, build_site
from tests.session.helpers import POCKETS, WallClock

WAIT_S = "1"  # the lock wait of the `adc` under test (ADC_DB_LOCK_TIMEOUT)
APP = "adc-busy-test"  # the PostgreSQL application_name of the `adc` under test


@dataclass
class DbSite:
    """A restock site (helpers.POCKETS assigned on cabinet W1) on SQLite or PostgreSQL."""

    site: Site
    url: str
    home: Path

    @property
    def postgres(self) -> bool:
        return self.url.startswith("postgresql")

    def adc_url(self, via: int | None = None) -> str:
        """The URL the `adc` under test uses: named (PostgreSQL), through a proxy's port."""
        if not self.postgres:
            return self.url
        url = make_url(self.url).update_query_dict({"application_name": APP})
        if via is not None:
            url = url.set(host="127.0.0.1", port=via)
        return url.render_as_string(hide_password=False)

    def env(self, via: int | None = None, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("ADC_")}
        return {
            **base,
            "ADC_DATABASE_URL": self.adc_url(via),
            "ADC_HOME": str(self.home),
            "ADC_DB_LOCK_TIMEOUT": WAIT_S,
            "COLUMNS": "250",
            **extra,
        }

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        engine = create_engine(self.url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(query)).all()]
        finally:
            engine.dispose()

    def on_hand(self, pocket: str) -> int:
        return self.rows(f"SELECT on_hand FROM pocket WHERE code = '{pocket}'")[0][0]

    def actions(self, action: str) -> int:
        return self.rows(f"SELECT count(*) FROM audit_entry WHERE action = '{action}'")[0][0]

    def accesses(self) -> list[tuple[Any, ...]]:
        """(drawer, pocket, closed, outcome) of every access on the access log."""
        return self.rows(
            "SELECT drawer_code, pocket_code, closed_at IS NOT NULL, outcome FROM access_log "
            "ORDER BY id"
        )

    def terminate_sessions(self) -> int:
        """End every server backend of the `adc` under test (as a failover or an admin would)."""
        return len(
            self.rows(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE application_name = '{APP}'"
            )
        )


def build_db_site(url: str, home: Path) -> DbSite:
    site = build_site(url, WallClock())
    for pocket, gtin, par, critical_low, max_qty in POCKETS:
        site.assign(pocket, gtin, par=par, critical_low=critical_low, max_qty=max_qty)
    site.ctl.db.close()
    return DbSite(site, url, home)


class Proxy:
    """A TCP relay to the PostgreSQL server on a port of its own: `cut()` drops every connection
    and refuses new ones (the server unreachable), `restore()` serves again on the same port."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.target = (parsed.host or "127.0.0.1", parsed.port or 5432)
        self.port = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for end in (a, b):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


@contextmanager
def proxy(url: str) -> Iterator[Proxy]:
    relay = Proxy(url)
    try:
        yield relay
    finally:
        relay.cut()


def pull(server: CabinetServer, drawer: str, lock: str, timeout: float = 20.0) -> None:
    """The person at the cabinet pulls the drawer while its latch is released."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.lock:
            if not server.cabinet.lock_holding(lock) and server.cabinet.sim_open(drawer):
                return
        time.sleep(0.005)
    raise AssertionError(f"drawer {drawer} was never unlocked")


def load_and_close(
    server: CabinetServer, drawer: str, pocket: str, units: int, grams: float
) -> None:
    with server.lock:
        server.cabinet.sim_add(pocket, units, grams)
    time.sleep(0.3)
    with server.lock:
        server.cabinet.sim_close(drawer)


def relocked(server: CabinetServer, drawer: str, lock: str) -> bool:
    with server.lock:
        return server.cabinet.lock_holding(lock) and not server.cabinet.sim_open(drawer)


class Events:
    """The JSON lines of a scripted `adc restock --json` as they come (a reader thread)."""

    def __init__(self, stream: Any) -> None:
        import json

        self.seen: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._json = json
        self._stream = stream
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self._stream:
            if not line.startswith("{"):
                continue
            with self._cond:
                self.seen.append(self._json.loads(line))
                self._cond.notify_all()

    def wait(self, kind: str, timeout: float = 30.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.seen:
                    if event["event"] == kind and all(event.get(k) == v for k, v in match.items()):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind} event {match}: {self.seen[-5:]}")
                self._cond.wait(left)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.seen if e["event"] == kind]


def next_start_flags_d1(site: DbSite, tmp_path: Path) -> None:
    """The next `adc restock` at W1 (the database free again; it skips a line elsewhere) flags
    drawer D1, whose access was left open on record, for a blind recount, and closes the access
    as interrupted."""
    from tests.conftest import run_adc
    from tests.controller.site import PIN

    skip = tmp_path / "next.toml"
    skip.write_text('[[line]]\npocket = "D2-P1"\nskip = "out of stock"\n')
    after = run_adc(
        "restock",
        "--cabinet",
        "W1",
        "--backend",
        "sim:",
        "--script",
        str(skip),
        env=site.env(ADC_USER="technician", ADC_PIN=PIN),
        timeout=60,
    )
    assert after.returncode == 0, after.stdout + after.stderr
    assert "drawer D1 flagged for a blind recount" in after.stdout
    assert site.accesses() == [("D1", "D1-P1", True, "interrupted")]
