"""Events as short lines of text (rich markup): a scripted session without `--json`, and the demo.

One line per event a person cares about; the JSON-lines output carries everything.
"""

from __future__ import annotations

from rich.markup import escape

from adc.session.events import Event


def describe(event: Event) -> str | None:
    """The line shown for an event (None: not worth a line of its own)."""
    d = event.data
    pocket = escape(str(d.get("pocket") or ""))
    reason = escape(str(d.get("reason") or ""))
    where = f" [dim](script line {d['script_line']})[/]" if d.get("script_line") else ""
    kind = event.kind
    if kind == "session":
        return (
            f"[bold]restock[/] cabinet {escape(d['cabinet'])} ({escape(d['profile'])}) · "
            f"{escape(d['user'])} · {escape(d['backend'])} · {len(d['lines'])} refill line(s)"
        )
    if kind == "line":
        need = f"load {d['need']}" if d.get("need") is not None else ""
        if d.get("on_hand") is None:  # a blind count is due: no number is shown
            known = "count it on access, blind"
        else:
            due = f", {d['count']} count on access" if d.get("count") not in (None, "none") else ""
            known = f"on hand {d['on_hand']}{due}"
        return (
            f"[bold cyan]▶ {pocket}[/] (drawer {escape(d['drawer'])}): "
            f"{escape(str(d['item']))}{f' — {need}' if need else ''} [dim]({known})[/]"
        )
    if kind == "count":
        again = "recount" if d.get("recount") else "count"
        if d["outcome"] == "match":
            return (
                f"  [green]✓ {again} {d['counted']} matches the record[/] (audit #{d['audit_seq']})"
            )
        if d["outcome"] == "recount":
            return (
                f"  [yellow]⚠ count {d['counted']} differs from the record: count again "
                "(one recount allowed)[/]"
            )
        return (
            f"  [red]✗ {again} {d['counted']} differs: discrepancy {d['discrepancy']} opened[/] "
            f"(on hand is now {d['counted']}; resolve it with a witness: adc discrepancy resolve)"
        )
    if kind == "scan":
        return (
            f"  [green]✓ scan[/] lot {escape(d['lot'])}, expires {d['expiry']} "
            f"({d['days_left']} days)"
        )
    if kind == "warning":
        return f"  [yellow]⚠ {reason}[/]"
    if kind == "refused":
        return f"  [red]✗ refused:[/] {reason}{where}"
    if kind == "unlocked":
        return f"  unlocked drawer {escape(d['drawer'])}: open it within {d['timeout_s']} s"
    if kind == "hands":
        return f"  [dim]hands: {escape(d['message'])}[/]"
    if kind == "opened":
        return f"  opened after {d['after_s']} s"
    if kind == "closed":
        return f"  closed: {escape(d['verdict'])}"
    if kind == "timeout":
        return f"  [yellow]⏱ {reason}[/]"
    if kind == "not-opened":
        return (
            f"[red]⚑ {pocket} did not open[/]: drawer {escape(d['drawer'])} is out of service "
            f"({escape(d['kind'])}, maintenance event {d['maintenance_event']}); "
            f"adc diag recover --drawer {escape(d['drawer'])}"
        )
    if kind == "note":
        return f"  [yellow]note:[/] {escape(str(d.get('text') or d.get('reason') or ''))}{where}"
    if kind == "recorded":
        extra = f", discrepancy {d['discrepancy']} opened" if d.get("discrepancy") else ""
        return (
            f"  [green]● {pocket} recorded[/] +{d['qty']} → on hand {d['on_hand']} "
            f"(lot {escape(str(d['lot']))}, audit #{d['audit_seq']}){extra}"
        )
    if kind == "skipped":
        return f"[yellow]⤼ {pocket} skipped:[/] {reason} — pharmacists notified (shortage)"
    if kind == "unfinished":
        return f"  [yellow]left {pocket}:[/] {reason}"
    if kind == "abandoned" or (kind == "interrupted" and d.get("action") == "flagged-for-recount"):
        lock = {True: "locked", False: "NOT locked: close it", None: "lock state unknown"}
        what = f"abandoned ({reason}), " if kind == "abandoned" else ""
        return (
            f"[red]⚑ {pocket} {what}flagged for recount[/] ({lock[d.get('locked')]}): drawer "
            f"{escape(d['drawer'])} is out of service until `adc diag recover` recounts it "
            f"(maintenance event {d['maintenance_event']})"
        )
    if kind == "database":
        return f"  [red]✗ {reason}[/]{where} — {_database_next(d)}"
    if kind == "interrupted" and d.get("action") == "flag-at-next-start":
        return (
            f"[red]⚑ {pocket} not recorded[/] ({escape(str(d.get('reason') or ''))}): the "
            f"access stays open on record; once the database is back, the next start at this "
            f"cabinet flags drawer {escape(str(d['drawer']))} for a blind recount"
        )
    if kind == "interrupted":
        return None  # left or recorded: the `unfinished` / `recorded` event says it
    if kind == "error" and d.get("partial_unlock"):
        mark = "[red]⚑" if d.get("out_of_service") else "[yellow]⚠"
        return f"{mark} {pocket}: not unlocked as asked[/] — {reason}{where}"
    if kind == "error":
        return f"[red]error:[/] {pocket + ': ' if pocket else ''}{reason}{where}"
    if kind == "summary":
        parts = [f"{d['lines_done']} of {d['lines_total']} lines done"]
        parts.append(f"{len(d['recorded'])} recorded")
        if d["skipped"]:
            parts.append(f"{len(d['skipped'])} out of stock")
        if d["left"]:
            parts.append(f"{len(d['left'])} left")
        if d["flagged"]:
            parts.append(f"[red]{len(d['flagged'])} flagged for recount[/]")
        if d.get("pending"):
            parts.append(f"[red]{len(d['pending'])} to be flagged at the next start[/]")
        if d.get("not_served"):
            parts.append(f"[yellow]{len(d['not_served'])} not served[/]")
        return "[bold]session ended:[/] " + ", ".join(parts)
    return None


_DATABASE_NEXT = {
    "select": "try again",
    "scan": "scan again",
    "unlock": "the line is kept",
    "record": "the line is kept",
    "count": "the count was not recorded: enter it again",
    "skip": "the line is kept",
    "abandon": "the line is kept",
    "not-opened": "the line is kept",
    "flag": "the flag for recount is tried again, or left to the next start",
    "alarm": "what the cabinet noticed is recorded once the database answers; close the drawer",
}


def _database_next(d: dict) -> str:
    """What happens after a step the database did not take (see Runner)."""
    return _DATABASE_NEXT.get(str(d.get("step")), "try again")
