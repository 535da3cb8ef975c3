"""The source contract, run against every local source (STYLE 12), and the house rule that a
source never imports the layers above it (DESIGN.md)."""

from __future__ import annotations

import ast
import io
import mailbox
from pathlib import Path

import pytest
from servers import simple_message

from mailtix.sources import Action

MESSAGES = [simple_message(f"contract {i}") for i in range(3)]


def make(kind: str, tmp_path: Path):
    if kind == "maildir":
        from mailtix.sources.maildir import MaildirSource, deliver

        for raw in MESSAGES:
            deliver(tmp_path / "box", raw)
        return MaildirSource(tmp_path / "box"), MESSAGES
    if kind == "mbox":
        from mailtix.sources.mbox import MboxSource

        box = mailbox.mbox(tmp_path / "t.mbox")
        for raw in MESSAGES:
            box.add(raw)
        box.close()
        return MboxSource(tmp_path / "t.mbox"), MESSAGES
    from mailtix.sources.stdin import StdinSource

    return StdinSource(io.BytesIO(MESSAGES[0])), MESSAGES[:1]


@pytest.fixture(params=["maildir", "mbox", "stdin"])
def source(request, tmp_path):
    src, raws = make(request.param, tmp_path)
    yield src, raws
    src.close()


class TestContract:
    def test_reads_every_message_byte_exact(self, source):
        src, raws = source
        assert sorted(item.read() for item in src.items()) == sorted(raws)

    def test_keys_are_unique_and_stable(self, source):
        src, _ = source
        first = [item.key for item in src.items()]
        assert len(set(first)) == len(first)
        assert all(k.uidl for k in first)
        assert [item.key for item in src.items()] == first

    def test_act_is_idempotent_and_keeps_keys(self, source):
        src, raws = source
        keys = [item.key for item in src.items()]
        actions = [Action(k, "seen") for k in keys]
        assert src.act(actions) == actions
        assert src.act(actions) == actions  # a replay after a crash is harmless
        assert sorted(item.key.uidl for item in src.items()) == sorted(k.uidl for k in keys)
        assert sorted(item.read() for item in src.items()) == sorted(raws)


def test_maildir_seen_and_a_rename_by_another_client(tmp_path):
    from mailtix.sources.maildir import MaildirSource, deliver

    path = deliver(tmp_path, MESSAGES[0])
    src = MaildirSource(tmp_path)
    item = next(src.items())
    # Another client reads it first: new/X becomes cur/X:2,S (then flags it answered).
    path.rename(tmp_path / "cur" / f"{path.name}:2,RS")
    assert item.read() == MESSAGES[0]
    src.act([Action(item.key, "seen")])
    assert [p.name for p in (tmp_path / "cur").iterdir()] == [f"{path.name}:2,RS"]
    assert [i.key for i in src.items()] == [item.key]


def test_sources_never_import_the_layers_above():
    forbidden = ("mailtix.ingest", "mailtix.intake", "mailtix.store", "mailtix.cli",
                 "mailtix.runner", "mailtix.watch")
    folder = Path(__file__).resolve().parents[1] / "mailtix" / "sources"
    for file in folder.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(forbidden), f"{file.name} imports {name}"
