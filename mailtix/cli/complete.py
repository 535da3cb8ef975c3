"""Shell completion for names: accounts, tickets, templates, queues, agents, folders.

Each callback reads the config and the store as they are, offline (folders come from what the
store has met on the servers, not from a login at every TAB), and never fails: a broken
config or a missing store completes nothing instead of printing an error into the shell."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import typer

from mailtix.cli.common import state

Item = tuple[str, str]


def _safe(fn: Callable[[typer.Context], Iterable[Item]]):
    def complete(ctx: typer.Context, incomplete: str) -> list[Item]:
        try:
            items = list(fn(ctx))
        except Exception:  # noqa: BLE001 - a completion must never break the shell
            return []
        # By prefix, as typer and the shells filter (a ticket's short form, its suffix, is
        # accepted as an argument but cannot be offered here).
        return [i for i in items if i[0].startswith(incomplete)]

    return complete


def _store(ctx: typer.Context):
    from mailtix.store import Store
    from mailtix.store.db import STORE_FILE

    st = state(ctx)
    cfg = st.config()
    if cfg.store.url or os.environ.get("MAILTIX_STORE_URL"):
        return Store.open(st.data_dir(), cfg.store.url, cfg.store.password_cmd)
    if not (st.data_dir() / STORE_FILE).exists():
        raise FileNotFoundError  # completing must not create a store
    return Store.open(st.data_dir())


@_safe
def accounts(ctx: typer.Context) -> Iterable[Item]:
    return [(n, a.email) for n, a in sorted(state(ctx).config().accounts.items())]


@_safe
def queues(ctx: typer.Context) -> Iterable[Item]:
    return [(n, q.description) for n, q in sorted(state(ctx).config().queues.items())]


@_safe
def agents(ctx: typer.Context) -> Iterable[Item]:
    return [(n, a.display_name) for n, a in sorted(state(ctx).config().agents.items())]


@_safe
def templates(ctx: typer.Context) -> Iterable[Item]:
    from mailtix import templates as tpl

    return [(name, origin) for name, origin in tpl.names(state(ctx).config().path)]


@_safe
def tickets(ctx: typer.Context) -> Iterable[Item]:
    from mailtix.store import actions

    return [(r["number"], r["subject"][:60]) for r in actions.ticket_numbers(_store(ctx).conn)]


@_safe
def folders(ctx: typer.Context) -> Iterable[Item]:
    from mailtix.store import actions

    cfg = state(ctx).config()
    names = {f for a in cfg.accounts.values() if a.fetch and a.fetch.protocol == "imap"
             for f in a.fetch.folders}
    try:
        names |= set(actions.known_folders(_store(ctx).conn))
    except FileNotFoundError:
        pass
    return [(n, "") for n in sorted(names)]


@_safe
def ticket_types(ctx: typer.Context) -> Iterable[Item]:
    return [(t, "") for t in state(ctx).config().general.ticket_types]
