"""Stock operations: each one locked transaction that moves stock, writes its transactions, updates
on-hand and lots, opens discrepancies and shortage notifications, and appends its audit entry.

The rules are checked inside the transaction, after the writer lock, so a recall entered or a lot
expiring between a scan and its recording still refuses the line. Every refusal raises before the
first write, and the transaction rolls back on any error: a refused action changes nothing.
Quantities are whole units; on-hand never goes negative (checked here and by the database).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from adc.controller import counts, quarantine, rows, shortages, study_rules
from adc.controller.cabinet_policy import (
    CabinetPolicy,
    cabinet_policy,
    policy_from_rows,
    settings_prefix,
)
from adc.controller.context import Actor, Controller, FastTx, Tx
from adc.controller.gs1 import Scan, unit_gtin
from adc.controller.models import (
    Discrepancy,
    DiscrepancyStatus,
    Item,
    Pocket,
    StockLot,
    Transaction,
    TxnKind,
    User,
)
from adc.controller.permissions import Action
from adc.controller.policy import Policy
from adc.controller.stock import (
    block_from_rows,
    find_pocket,
    held_lots,
    item_label,
    recalled,
)
from adc.controller.store import Store
from adc.controller.witness import check_witness
from adc.errors import BadInput, Refused


@dataclass(frozen=True)
class Verdict:
    """A scan checked against a pocket: the item it is, and how close to expiry."""

    item_id: int
    item: str
    days_left: int
    short_dated: bool


def verify_scan(
    store: Store, code: str, item_id: int, scan: Scan, today: date, policy: Policy
) -> Verdict:
    """Wrong drug, recalled lot, expired lot: Refused with the reason; short-dated: flagged.

    Run when the technician scans (restock.py) and again inside the transaction that records
    the line, so a recall entered or a lot expiring in between still refuses it.
    """
    expected = rows.item(store, item_id)
    assert expected is not None
    mapped = rows.gtin_item(store, scan.gtin)
    unit = unit_gtin(scan.gtin) if mapped is None else None
    if unit is not None and rows.gtin_item(store, unit) == item_id:
        raise Refused(
            f"GTIN {scan.gtin} is a case or bundle (indicator {scan.gtin[0]}) of "
            f"{item_label(expected)} (unit GTIN {unit}): pocket {code} holds single units — "
            "scan the unit pack's own barcode"
        )
    if mapped is None:
        raise Refused(
            f"wrong drug: GTIN {scan.gtin} is not in the formulary; "
            f"pocket {code} holds {item_label(expected)}"
        )
    if mapped != item_id:
        other = rows.item(store, mapped)
        raise Refused(
            f"wrong drug: scanned {item_label(other)}, pocket {code} holds {item_label(expected)}"
        )
    if not expected.active:
        raise Refused(f"{item_label(expected)} is no longer active in the formulary")
    recall = rows.recall_of(store, scan.gtin, scan.lot)
    if recall is not None:
        why = f" ({recall[0]})" if recall[0] else ""
        raise Refused(f"recalled lot: GTIN {scan.gtin} lot {scan.lot} is under recall{why}")
    if scan.expiry < today:
        raise Refused(f"expired lot: lot {scan.lot} expired on {scan.expiry.isoformat()}")
    days = (scan.expiry - today).days
    return Verdict(item_id, item_label(expected), days, days <= policy.short_dated_days)


@dataclass
class Movement:
    """What one operation did to one pocket."""

    pocket: str
    kind: str
    qty: int  # signed change of on-hand
    on_hand: int
    txn_ids: list[int] = field(default_factory=list)
    discrepancy_id: int | None = None
    shortages: dict[str, list[int]] = field(default_factory=dict)
    audit_seq: int = 0


def _txn(
    tx: Tx,
    pocket: Pocket,
    kind: TxnKind,
    qty: int,
    lot: StockLot | None,
    *,
    session_id: str | None = None,
    **extra: Any,
) -> Transaction:
    assert pocket.id is not None and pocket.item_id is not None and tx.user is not None
    txn = Transaction(
        at=tx.now,
        kind=kind,
        cabinet_id=pocket.cabinet_id,
        pocket_id=pocket.id,
        item_id=pocket.item_id,
        lot_id=lot.id if lot else None,
        qty=qty,
        user_id=tx.user.id or 0,
        session_id=session_id,
        audit_seq=tx.upcoming_seq(),
        **extra,
    )
    tx.session.add(txn)
    return txn


def _finish(
    tx: Tx,
    pocket: Pocket,
    kind: TxnKind,
    txns: list[Transaction],
    payload: dict[str, Any],
    *,
    witness: User | None = None,
) -> Movement:
    """Flush, update notifications, audit, and stamp the audit sequence on the transactions."""
    tx.session.flush()
    notes = shortages.update_levels(tx, pocket)
    moved = [(t.id or 0, t.lot_id, t.qty) for t in txns]
    return _audited(tx, pocket, kind, moved, notes, payload, witness)


def finish_fast(
    tx: FastTx,
    pocket: rows.PocketRow,
    kind: TxnKind,
    moved: list[tuple[int, int | None, int]],
    payload: dict[str, Any],
) -> Movement:
    """`_finish` on the raw cursor: notifications, audit entry, the movement."""
    notes = shortages.update_levels_fast(tx, pocket)
    return _audited(tx, pocket, kind, moved, notes, payload)


def _audited(
    tx: Tx | FastTx,
    pocket: Any,
    kind: TxnKind,
    moved: list[tuple[int, int | None, int]],
    notes: dict[str, list[int]],
    payload: dict[str, Any],
    witness: Any = None,
) -> Movement:
    """The movement a change made, and its audit entry: (id, lot id, qty) per transaction."""
    movement = Movement(
        pocket=pocket.code,
        kind=kind,
        qty=sum(qty for _, _, qty in moved),
        on_hand=pocket.on_hand,
        txn_ids=[txn_id for txn_id, _, _ in moved],
        shortages=notes,
    )
    payload = {
        "cabinet": pocket.cabinet_id,
        "pocket": pocket.code,
        "item_id": pocket.item_id,
        "kind": kind.value,
        "on_hand": pocket.on_hand,
        "txns": [{"id": txn_id, "lot_id": lot_id, "qty": qty} for txn_id, lot_id, qty in moved],
        **payload,
    }
    if notes:
        payload["shortages"] = notes
    movement.audit_seq = tx.audit(f"stock.{kind.value}", payload, witness=witness)
    return movement


def _discrepancy(
    tx: Tx,
    ctl: Controller,
    pocket: Pocket,
    trigger: str,
    expected: int,
    counted: int,
    txn: Transaction | None,
) -> Discrepancy:
    assert pocket.id is not None and pocket.item_id is not None and tx.user is not None
    item = tx.session.get(Item, pocket.item_id)
    deadline = None
    if item is not None and item.schedule is not None:  # the cabinet's policy says by when
        deadline = cabinet_policy(tx.session, pocket.cabinet_id).deadline(tx.now, ctl.policy)
    disc = Discrepancy(
        cabinet_id=pocket.cabinet_id,
        pocket_id=pocket.id,
        item_id=pocket.item_id,
        transaction_id=txn.id if txn else None,
        trigger=trigger,
        expected=expected,
        counted=counted,
        opened_by=tx.user.id or 0,
        opened_at=tx.now,
        deadline=deadline,
    )
    tx.session.add(disc)
    tx.session.flush()
    return disc


@dataclass(frozen=True)
class Sensed:
    """What a bin sensor said about a line.

    A scale gives `count`, the units that moved (in for a refill, out for an unload or pull); a
    presence sensor gives `present`, whether anything is in the pocket after the access.
    """

    kind: str  # weight, presence
    count: int | None = None
    present: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "present": self.present, **self.detail}


def _sensor_discrepancy(
    tx: Tx, ctl: Controller, pocket: Pocket, sensor: Sensed | None, qty: int, txn: Transaction
) -> Discrepancy | None:
    """A person's count that the sensor disagreed with (they confirmed it): opened for review."""
    found = sensor_disagreement(sensor, qty, pocket.on_hand)
    if found is None:
        return None
    return _discrepancy(tx, ctl, pocket, "sensor", found[0], found[1], txn)


def sensor_disagreement(sensor: Sensed | None, qty: int, on_hand: int) -> tuple[int, int] | None:
    """(sensor's number, person's number) where they disagree, else None.

    For a scale the numbers are units moved; for a presence sensor they are on-hand after the
    access, the sensor's side being 1 (something there) or 0 (nothing).
    """
    if sensor is None:
        return None
    if sensor.count is not None and sensor.count != qty:
        return sensor.count, qty
    if sensor.present is not None and sensor.present != (on_hand > 0):
        return int(sensor.present), on_hand
    return None


def check_levels(par: int, critical_low: int, max_qty: int, capacity: int) -> None:
    if not 0 <= critical_low < par <= max_qty:
        raise BadInput(
            f"levels must satisfy 0 ≤ critical-low < par ≤ max; got critical-low {critical_low}, "
            f"par {par}, max {max_qty}"
        )
    if max_qty > capacity:
        raise BadInput(f"max {max_qty} is more than the pocket holds ({capacity})")


# ------------------------------------------------------------------------------------ receiving
def _receive(
    tx: FastTx,
    ctl: Controller,
    pocket: rows.PocketRow,
    scan: Scan,
    qty: int,
    kind: TxnKind,
    *,
    confirm_short_dated: bool,
    session_id: str | None,
    sensor: Sensed | None,
    extra_payload: dict[str, Any],
    witness: Actor | None = None,
) -> Movement:
    """Stock `qty` units of the scanned lot into a pocket whose item is assigned (refill, load).

    A restock line's record: on the raw cursor (`Controller.write_fast`, rows.py).
    """
    assert pocket.item_id is not None and tx.user is not None
    store = tx.store
    if qty <= 0:
        raise BadInput(f"quantity to {kind.value} must be at least 1, got {qty}")
    study_rules.guard(store, pocket, tx.user, "restock")
    quarantine.refuse_if_quarantined(store, pocket.id, pocket.code, "restocking")
    today = ctl.today()
    verdict = verify_scan(store, pocket.code, pocket.item_id, scan, today, ctl.policy)
    item = rows.item(store, pocket.item_id)
    controlled = item is not None and item.schedule is not None
    policy = _cabinet_policy(tx, pocket.cabinet_id) if controlled else None
    witness_user = check_witness(
        tx,
        Action.RESTOCK,
        witness,
        required=bool(policy and policy.cs_refill_witness),
        what=f"a controlled {kind.value}",
    )
    if verdict.short_dated and not confirm_short_dated:
        raise Refused(
            f"short-dated: lot {scan.lot} expires {scan.expiry.isoformat()} "
            f"({verdict.days_left} days): confirm to stock it"
        )
    block = block_from_rows(pocket.code, rows.held_lots(store, pocket.id), today)
    if block is not None:
        raise Refused(f"{block.reason}: pull it before restocking")
    if pocket.on_hand + qty > pocket.max_qty:
        raise Refused(
            f"pocket {pocket.code} holds {pocket.on_hand} of max {pocket.max_qty}: "
            f"at most {pocket.max_qty - pocket.on_hand} more, not {qty}"
        )
    lot_id = rows.find_lot(store, pocket.id, scan.gtin, scan.lot, scan.expiry)
    if lot_id is None:
        lot_id = rows.insert_lot(
            store,
            pocket_id=pocket.id,
            item_id=pocket.item_id,
            gtin=scan.gtin,
            lot=scan.lot,
            expiry=scan.expiry,
            qty=qty,
            received_at=tx.now,
        )
    else:
        rows.add_to_lot(store, lot_id, qty)
    pocket = pocket._replace(on_hand=pocket.on_hand + qty)
    rows.set_on_hand(store, pocket.id, pocket.on_hand)
    txn_id = rows.insert_txn(
        store,
        at=tx.now,
        kind=kind.value,
        cabinet_id=pocket.cabinet_id,
        pocket_id=pocket.id,
        item_id=pocket.item_id,
        lot_id=lot_id,
        qty=qty,
        user_id=tx.user.id,
        witness_id=witness_user.id if witness_user else None,
        session_id=session_id,
        audit_seq=tx.upcoming_seq(),
    )
    disc_id = _sensor_discrepancy_fast(tx, ctl, pocket, sensor, qty, txn_id)
    notes = shortages.update_levels_fast(tx, pocket)
    movement = _audited(
        tx,
        pocket,
        kind,
        [(txn_id, lot_id, qty)],
        notes,
        {
            "gtin": scan.gtin,
            "lot": scan.lot,
            "expiry": scan.expiry.isoformat(),
            "serial": scan.serial,
            "short_dated_confirmed": verdict.short_dated,
            "session": session_id,
            "sensor": sensor.as_json() if sensor else None,
            "discrepancy": disc_id,
            **extra_payload,
        },
        witness=witness_user,
    )
    movement.discrepancy_id = disc_id
    return movement


def _cabinet_policy(tx: FastTx, cabinet_id: str) -> CabinetPolicy:
    settings = rows.cabinet_settings(tx.store, settings_prefix(cabinet_id))
    return policy_from_rows(cabinet_id, settings)


def _sensor_discrepancy_fast(
    tx: FastTx,
    ctl: Controller,
    pocket: rows.PocketRow,
    sensor: Sensed | None,
    qty: int,
    txn_id: int,
) -> int | None:
    """`_sensor_discrepancy` on the raw cursor: the same rule, the same row."""
    found = sensor_disagreement(sensor, qty, pocket.on_hand)
    if found is None:
        return None
    return open_discrepancy(tx, ctl, pocket, "sensor", found[0], found[1], txn_id)


@study_rules.audit_refusals
def refill(
    ctl: Controller,
    actor: Actor,
    cabinet: str,
    pocket_code: str,
    scan: Scan,
    qty: int,
    *,
    confirm_short_dated: bool = False,
    session_id: str | None = None,
    sensor: Sensed | None = None,
    witness: Actor | None = None,
) -> Movement:
    """Add `qty` units of the scanned lot to a pocket that has its item assigned.

    A pocket whose count is due on access (controlled substances always) must have been counted
    by the actor just before (`counts.count_pocket`); see `counts.require_access_count`.
    """
    with ctl.write_fast(actor, Action.RESTOCK, cabinet=cabinet) as tx:
        pocket = rows.pocket(tx.store, cabinet, pocket_code)
        if pocket.item_id is None:
            raise Refused(f"pocket {pocket.code} has no item assigned: load it instead")
        counts.require_access_count_fast(tx, pocket, "refill it")
        return _receive(
            tx,
            ctl,
            pocket,
            scan,
            qty,
            TxnKind.REFILL,
            confirm_short_dated=confirm_short_dated,
            session_id=session_id,
            sensor=sensor,
            extra_payload={},
            witness=witness,
        )


@study_rules.audit_refusals
def load(
    ctl: Controller,
    actor: Actor,
    cabinet: str,
    pocket_code: str,
    item_id: int,
    levels: tuple[int, int, int],
    scan: Scan,
    qty: int,
    *,
    confirm_short_dated: bool = False,
    session_id: str | None = None,
    sensor: Sensed | None = None,
    witness: Actor | None = None,
) -> Movement:
    """Assign a new item to an empty pocket and stock it, in one transaction.

    `levels` is (par, critical_low, max).
    """
    par, critical_low, max_qty = levels
    with ctl.write_fast(actor, Action.RESTOCK, cabinet=cabinet) as tx:
        pocket = rows.pocket(tx.store, cabinet, pocket_code)
        if pocket.kind == "return-bin":
            raise Refused(f"pocket {pocket.code} is a return bin: it holds no assigned item")
        if pocket.on_hand or rows.held_lots(tx.store, pocket.id):
            raise Refused(f"pocket {pocket.code} is not empty: unload it first")
        if rows.item(tx.store, item_id) is None:
            raise BadInput(f"no item with id {item_id}")
        check_levels(par, critical_low, max_qty, pocket.capacity)
        before = pocket.item_id
        pocket = pocket._replace(
            item_id=item_id, par=par, critical_low=critical_low, max_qty=max_qty
        )
        rows.assign_pocket(tx.store, pocket.id, item_id, par, critical_low, max_qty)
        return _receive(
            tx,
            ctl,
            pocket,
            scan,
            qty,
            TxnKind.LOAD,
            confirm_short_dated=confirm_short_dated,
            session_id=session_id,
            extra_payload={
                "assigned": {
                    "item_id": item_id,
                    "previous_item_id": before,
                    "par": par,
                    "critical_low": critical_low,
                    "max": max_qty,
                },
            },
            sensor=sensor,
            witness=witness,
        )


# ------------------------------------------------------------------------------------- removing
def _take_fefo(tx: Tx, pocket: Pocket, qty: int, kind: TxnKind, **extra: Any) -> list[Transaction]:
    """Take `qty` units from the pocket's lots, earliest expiry first."""
    txns: list[Transaction] = []
    for lot, take in fefo(held_lots(tx.session, pocket.id or 0), qty):
        lot.qty -= take
        pocket.on_hand -= take
        txns.append(_txn(tx, pocket, kind, -take, lot, **extra))
    return txns


def fefo(lots: list[Any], qty: int) -> list[tuple[Any, int]]:
    """(lot, units taken) for `qty` units from lots held in FEFO order (see `stock.held_lots`)."""
    taken: list[tuple[Any, int]] = []
    remaining = qty
    for lot in lots:
        if remaining == 0:
            break
        take = min(lot.qty, remaining)
        taken.append((lot, take))
        remaining -= take
    if remaining:
        raise RuntimeError("the pocket's lots hold less than its on-hand")  # invariant broken
    return taken


@study_rules.audit_refusals
def remove(
    ctl: Controller,
    actor: Actor,
    cabinet: str,
    pocket_code: str,
    qty: int,
    *,
    reason: str | None = None,
    subject: str | None = None,
    dose: str | None = None,
) -> Movement:
    """Take doses out (first expiry first out); refused while the pocket holds expired or
    recalled stock, and, where a count is due on access, until the actor has counted it.

    The busiest change of all (every dose a nurse takes): it runs on the raw cursor
    (`Controller.write_fast`, rows.py), with the same rules as the other operations.
    Investigational stock needs the subject's study id and the dose (study_rules.py).
    """
    with ctl.write_fast(actor, Action.REMOVE, cabinet=cabinet) as tx:
        store = tx.store
        pocket = rows.pocket(store, cabinet, pocket_code)
        if pocket.item_id is None:
            raise Refused(f"pocket {pocket.code} has no item assigned")
        if qty <= 0:
            raise BadInput(f"quantity to remove must be at least 1, got {qty}")
        study = study_rules.guard(store, pocket, tx.user, "remove", subject=subject, dose=dose)
        counts.require_access_count_fast(tx, pocket, f"remove {qty}")
        lots = rows.held_lots(store, pocket.id)
        block = block_from_rows(pocket.code, lots, ctl.today())
        if block is not None:
            raise Refused(f"{block.reason}: removal blocked until it is pulled")
        quarantine.refuse_if_quarantined(store, pocket.id, pocket.code)
        if qty > pocket.on_hand:
            raise Refused(f"pocket {pocket.code} holds {pocket.on_hand}, cannot remove {qty}")
        assert tx.user is not None
        seq = tx.upcoming_seq()
        moved = []
        for lot, take in fefo(lots, qty):
            rows.take_from_lot(store, lot.id, take)
            txn_id = rows.insert_txn(
                store,
                at=tx.now,
                kind=TxnKind.REMOVE.value,
                cabinet_id=pocket.cabinet_id,
                pocket_id=pocket.id,
                item_id=pocket.item_id,
                lot_id=lot.id,
                qty=-take,
                user_id=tx.user.id,
                reason=reason,
                audit_seq=seq,
            )
            moved.append((txn_id, lot.id, -take))
        pocket = pocket._replace(on_hand=pocket.on_hand - qty)
        rows.set_on_hand(store, pocket.id, pocket.on_hand)
        study_rules.record_dispense(store, study, [txn_id for txn_id, _, _ in moved])
        payload = {"reason": reason, **study_rules.dispense_payload(study)}
        return finish_fast(tx, pocket, TxnKind.REMOVE, moved, payload)


def _write_off(
    tx: Tx,
    pocket: Pocket,
    lots: list[StockLot],
    kind: TxnKind,
    expected: int,
    counted: int,
    session_id: str | None,
    reason_of: Any,
) -> list[Transaction]:
    txns = []
    for lot in lots:
        taken = lot.qty
        lot.qty = 0
        pocket.on_hand -= taken
        txns.append(
            _txn(
                tx,
                pocket,
                kind,
                -taken,
                lot,
                expected=expected,
                counted=counted,
                session_id=session_id,
                reason=reason_of(lot),
            )
        )
    return txns


@study_rules.audit_refusals
def unload(
    ctl: Controller,
    actor: Actor,
    cabinet: str,
    pocket_code: str,
    removed: int,
    *,
    session_id: str | None = None,
    sensor: Sensed | None = None,
) -> Movement:
    """Everything out and the item unassigned; `removed` is what the person took out.

    A difference from on-hand opens a discrepancy: the pocket is empty either way.
    """
    if removed < 0:
        raise BadInput(f"quantity removed cannot be negative, got {removed}")
    with ctl.write(actor, Action.RESTOCK) as tx:
        pocket = find_pocket(tx.session, cabinet, pocket_code)
        if pocket.item_id is None:
            raise Refused(f"pocket {pocket.code} has no item assigned: nothing to unload")
        study_rules.guard(tx.session, pocket, tx.user, "unload")
        quarantine.refuse_if_quarantined_orm(tx.session, pocket.id or 0, pocket.code, "unloading")
        counts.require_access_count(tx, pocket, "unload it")
        expected = pocket.on_hand
        lots = held_lots(tx.session, pocket.id or 0)
        txns = _write_off(
            tx, pocket, lots, TxnKind.UNLOAD, expected, removed, session_id, lambda lot: None
        )
        if not txns:  # nothing was in it: still a recorded unload
            txns.append(
                _txn(
                    tx,
                    pocket,
                    TxnKind.UNLOAD,
                    0,
                    None,
                    expected=expected,
                    counted=removed,
                    session_id=session_id,
                )
            )
        tx.session.flush()
        disc = None
        if removed != expected:
            disc = _discrepancy(tx, ctl, pocket, "unload", expected, removed, txns[0])
        else:
            disc = _sensor_discrepancy(tx, ctl, pocket, sensor, removed, txns[0])
        item_id = pocket.item_id
        pocket.item_id, pocket.par, pocket.critical_low, pocket.max_qty = None, 0, 0, 0
        movement = _finish(
            tx,
            pocket,
            TxnKind.UNLOAD,
            txns,
            {
                "expected": expected,
                "removed": removed,
                "session": session_id,
                "discrepancy": disc.id if disc else None,
                "sensor": sensor.as_json() if sensor else None,
                "unassigned_item_id": item_id,
            },
        )
        movement.discrepancy_id = disc.id if disc else None
        return movement


@study_rules.audit_refusals
def pull(
    ctl: Controller,
    actor: Actor,
    cabinet: str,
    pocket_code: str,
    removed: int,
    *,
    session_id: str | None = None,
    sensor: Sensed | None = None,
) -> Movement:
    """Take out every expired or recalled lot; `removed` is what the person took out.

    The system writes those lots to zero; a difference from what it expected opens a discrepancy.
    """
    if removed < 0:
        raise BadInput(f"quantity removed cannot be negative, got {removed}")
    with ctl.write(actor, Action.PULL) as tx:
        pocket = find_pocket(tx.session, cabinet, pocket_code)
        if pocket.item_id is not None:
            study_rules.guard(tx.session, pocket, tx.user, "unload")
        today = ctl.today()
        lots = [
            lot
            for lot in held_lots(tx.session, pocket.id or 0)
            if lot.expiry < today or recalled(tx.session, lot)
        ]
        if not lots:
            raise Refused(f"pocket {pocket.code} holds no expired or recalled stock")
        expected = sum(lot.qty for lot in lots)
        txns = _write_off(
            tx,
            pocket,
            lots,
            TxnKind.PULL,
            expected,
            removed,
            session_id,
            lambda lot: "expired" if lot.expiry < today else "recalled",
        )
        tx.session.flush()
        disc = None
        if removed != expected:
            disc = _discrepancy(tx, ctl, pocket, "pull", expected, removed, txns[0])
        else:
            disc = _sensor_discrepancy(tx, ctl, pocket, sensor, removed, txns[0])
        remaining = held_lots(tx.session, pocket.id or 0)
        movement = _finish(
            tx,
            pocket,
            TxnKind.PULL,
            txns,
            {
                "expected": expected,
                "removed": removed,
                "session": session_id,
                "discrepancy": disc.id if disc else None,
                "sensor": sensor.as_json() if sensor else None,
                "lots": [
                    {"lot": lot.lot, "gtin": lot.gtin, "expiry": lot.expiry.isoformat()}
                    for lot in lots
                ],
                "earliest_expiry_left": remaining[0].expiry.isoformat() if remaining else None,
            },
        )
        movement.discrepancy_id = disc.id if disc else None
        return movement


@dataclass
class Counted:
    """What `apply_count` did: the expected number, the transactions, the discrepancy opened."""

    expected: int
    moved: list[tuple[int, int | None, int]]  # (transaction id, lot id, qty)
    discrepancy_id: int | None
    pocket: rows.PocketRow  # as it is after the count


def apply_count(
    tx: FastTx,
    ctl: Controller,
    pocket: rows.PocketRow,
    counted: int,
    *,
    trigger: str = "count",
    session_id: str | None = None,
    **extra: Any,
) -> Counted:
    """On-hand follows a count, inside the caller's transaction.

    Missing units come off the earliest-expiring lots (what FEFO removal would have taken); surplus
    units go to the earliest-expiring lot the pocket has had, so they are pulled no later than
    they could expire. A surplus in a pocket with no lot on record is refused: load it by scan.
    A difference opens a discrepancy (`trigger` says what the count was for).
    """
    assert pocket.item_id is not None and tx.user is not None
    store = tx.store
    expected = pocket.on_hand
    delta = counted - expected
    fields = {
        "at": tx.now,
        "kind": TxnKind.COUNT.value,
        "cabinet_id": pocket.cabinet_id,
        "pocket_id": pocket.id,
        "item_id": pocket.item_id,
        "user_id": tx.user.id,
        "audit_seq": tx.upcoming_seq(),
        "expected": expected,
        "counted": counted,
        "session_id": session_id,
        **extra,
    }
    moved: list[tuple[int, int | None, int]] = []
    if delta < 0:
        for lot, take in fefo(rows.held_lots(store, pocket.id), -delta):
            rows.take_from_lot(store, lot.id, take)
            txn_id = rows.insert_txn(store, lot_id=lot.id, qty=-take, **fields)
            moved.append((txn_id, lot.id, -take))
    elif delta > 0:
        held = rows.held_lots(store, pocket.id)
        lot_id = held[0].id if held else rows.earliest_lot(store, pocket.id, pocket.item_id)
        if lot_id is None:
            raise Refused(
                f"count of {counted} in pocket {pocket.code}, which has no lot on record: "
                "stock it by scanning so lot and expiry are known"
            )
        rows.add_to_lot(store, lot_id, delta)
        moved.append((rows.insert_txn(store, lot_id=lot_id, qty=delta, **fields), lot_id, delta))
    else:
        moved.append((rows.insert_txn(store, lot_id=None, qty=0, **fields), None, 0))
    pocket = pocket._replace(on_hand=counted)
    if delta:
        rows.set_on_hand(store, pocket.id, counted)
    disc_id = None
    if delta:
        disc_id = open_discrepancy(tx, ctl, pocket, trigger, expected, counted, moved[0][0])
    return Counted(expected, moved, disc_id, pocket)


def open_discrepancy(
    tx: FastTx,
    ctl: Controller,
    pocket: rows.PocketRow,
    trigger: str,
    expected: int,
    counted: int,
    txn_id: int | None,
) -> int:
    """`_discrepancy` on the raw cursor: the same row, the same deadline rule."""
    assert tx.user is not None and pocket.item_id is not None
    item = rows.item(tx.store, pocket.item_id)
    deadline = None
    if item is not None and item.schedule is not None:  # the cabinet's policy says by when
        deadline = _cabinet_policy(tx, pocket.cabinet_id).deadline(tx.now, ctl.policy)
    return rows.insert_discrepancy(
        tx.store,
        cabinet_id=pocket.cabinet_id,
        pocket_id=pocket.id,
        item_id=pocket.item_id,
        transaction_id=txn_id,
        trigger=trigger,
        expected=expected,
        counted=counted,
        status=DiscrepancyStatus.OPEN.value,
        opened_by=tx.user.id,
        opened_at=tx.now,
        deadline=deadline,
    )


@study_rules.audit_refusals
def count(
    ctl: Controller,
    actor: Actor,
    cabinet: str,
    pocket_code: str,
    counted: int,
    *,
    session_id: str | None = None,
) -> Movement:
    """Record a count. On-hand follows the count; a difference opens a discrepancy (see
    `apply_count`). The count on access, with its recount, is `counts.count_pocket`."""
    if counted < 0:
        raise BadInput(f"a count cannot be negative, got {counted}")
    with ctl.write_fast(actor, Action.COUNT, cabinet=cabinet) as tx:
        pocket = rows.pocket(tx.store, cabinet, pocket_code)
        if pocket.item_id is None:
            raise Refused(f"pocket {pocket.code} has no item assigned: nothing to count")
        study_rules.guard(tx.store, pocket, tx.user, "count")
        done = apply_count(tx, ctl, pocket, counted, session_id=session_id)
        movement = finish_fast(
            tx,
            done.pocket,
            TxnKind.COUNT,
            done.moved,
            {
                "expected": done.expected,
                "counted": counted,
                "session": session_id,
                "discrepancy": done.discrepancy_id,
            },
        )
        movement.discrepancy_id = done.discrepancy_id
        return movement
