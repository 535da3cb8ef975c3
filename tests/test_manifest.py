"""Manifests as ERPs export them (issue 17): encodings, delimiters, column maps, every bad row
reported at once. Sent through aiosmtpd and read back as they arrived."""

from __future__ import annotations

import email
import io
import json
from email import policy
from pathlib import Path

import pytest
from helpers import billing_sender, count

from mailtix.errors import ExitCode

TEMPLATE = "subject: Rechnung {{ invoice_no }}\n---\nGuten Tag {{ name }},\n\nanbei Rechnung " \
           "{{ invoice_no }}.\n{{ note | default('') }}\n"
GERMAN_MAP = ["--map", "to=E-Mail", "--map", "doc_ref=Rechnungsnummer", "--map",
              "name=Kunde", "--map", "invoice_no=Rechnungsnummer", "--map", "attachments=Anhang"]


@pytest.fixture
def sender(cfgdir, smtp):
    billing_sender(cfgdir, smtp.port, TEMPLATE)
    return cfgdir


def german_export(tmp_path: Path, encoding: str, bom: bool = False) -> Path:
    (tmp_path / "pdf").mkdir(exist_ok=True)
    for n in (1, 2, 3):
        (tmp_path / "pdf" / f"RE-{n}.pdf").write_bytes(b"%PDF " + bytes([n]) * 100)
    text = ("E-Mail;Rechnungsnummer;Kunde;Betrag;Anhang\r\n"
            "juergen@example.org;RE-1;Jürgen Müller;1.234,50;pdf/RE-1.pdf\r\n"
            "\"\"\"Größe, Änne\"\" <aenne@example.org>\";RE-2;Änne Größe;99,00;pdf/RE-2.pdf\r\n"
            "strasse@example.org;RE-3;\"Straßenbau GmbH\r\nAbt. Buchhaltung\";5,00;"
            "pdf/RE-3.pdf\r\n")
    path = tmp_path / "export.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


def arrived(smtp) -> dict[str, email.message.EmailMessage]:
    out = {}
    for m in smtp.messages:
        msg = email.message_from_bytes(m["raw"], policy=policy.default)
        out[m["to"][0]] = msg
    return out


@pytest.mark.parametrize("encoding,bom", [("cp1252", False), ("utf-8", True),
                                          ("utf-8", False)])
def test_german_semicolon_export_with_column_map(sender, smtp, cli, tmp_path, encoding, bom):
    path = german_export(tmp_path, encoding, bom)
    result = cli("send-batch", str(path), "--template", "invoice", "--json", *GERMAN_MAP)
    assert result.exit_code == 0, result.stderr
    assert sorted(json.loads(result.stdout)["sent"]) == ["RE-1", "RE-2", "RE-3"]
    mails = arrived(smtp)
    assert set(mails) == {"juergen@example.org", "aenne@example.org", "strasse@example.org"}
    first = mails["juergen@example.org"]
    assert first["Subject"] == "Rechnung RE-1"
    assert "Guten Tag Jürgen Müller," in first.get_body(("plain",)).get_content()
    assert next(first.iter_attachments()).get_content() == b"%PDF " + b"\x01" * 100
    quoted = mails["aenne@example.org"]
    assert quoted["To"].addresses[0].display_name == "Größe, Änne"
    assert quoted["To"].addresses[0].addr_spec == "aenne@example.org"
    body = mails["strasse@example.org"].get_body(("plain",)).get_content()
    assert "Straßenbau GmbH\nAbt. Buchhaltung" in body.replace("\r\n", "\n")


def test_column_map_from_config_and_case_insensitive_names(sender, smtp, cli, tmp_path):
    cfg = sender / "config.toml"
    cfg.write_text(cfg.read_text() + '[documents.columns]\nto = "e-mail"\n'
                   'doc_ref = "RECHNUNGSNUMMER"\nname = "kunde"\ninvoice_no = "Rechnungsnummer"\n'
                   'attachments = "Anhang"\n')
    assert cli("config", "check").exit_code == 0
    path = german_export(tmp_path, "cp1252")
    result = cli("send-batch", str(path), "--template", "invoice", "--json")
    assert result.exit_code == 0, result.stderr
    assert len(smtp.messages) == 3
    plain = tmp_path / "plain.csv"
    plain.write_text("TO\tName\tInvoice_No\tDOC_REF\nx@example.org\tX\t9\tX-9\n")
    result = cli("send-batch", str(plain), "--template", "invoice", "--json")
    assert result.exit_code == 0, result.stderr
    assert arrived(smtp)["x@example.org"]["Subject"] == "Rechnung 9"


def test_config_rejects_a_column_map_that_is_not_text(sender, cli):
    cfg = sender / "config.toml"
    cfg.write_text(cfg.read_text() + "[documents.columns]\nto = 3\n")
    result = cli("config", "check")
    assert result.exit_code == ExitCode.CONFIG and "documents.columns.to" in result.stderr


def test_unknown_or_missing_column_lists_the_columns_found(sender, smtp, cli, tmp_path):
    path = german_export(tmp_path, "cp1252")
    result = cli("send-batch", str(path), "--template", "invoice", "--map", "to=Email")
    assert result.exit_code == ExitCode.USAGE
    assert "Email" in result.stderr
    assert "E-Mail, Rechnungsnummer, Kunde, Betrag, Anhang" in result.stderr
    missing = cli("send-batch", str(path), "--template", "invoice")
    assert missing.exit_code == ExitCode.USAGE and "'to'" in missing.stderr
    assert "E-Mail, Rechnungsnummer" in missing.stderr and "--map" in missing.stderr
    assert smtp.messages == [] and count("SELECT COUNT(*) FROM outbox") == 0


def test_explicit_encoding_and_delimiter(sender, smtp, cli, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("to|name|invoice_no|doc_ref\nx@example.org|Zoë|1|Z-1\n".encode("latin-1"))
    result = cli("send-batch", str(path), "--template", "invoice", "--json",
                 "--delimiter", "|", "--encoding", "latin-1")
    assert result.exit_code == 0, result.stderr
    assert "Guten Tag Zoë," in arrived(smtp)["x@example.org"].get_body(
        ("plain",)).get_content()
    wrong = cli("send-batch", str(path), "--template", "invoice", "--encoding", "utf-8",
                "--delimiter", "|")
    assert wrong.exit_code == ExitCode.USAGE and "utf-8" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_every_kind_of_bad_row_reported_at_once(sender, smtp, cli, tmp_path):
    (sender / "templates" / "invoice.txt").write_text(
        "subject: Invoice {{ invoice_no }} {{ name }}\n---\nDear {{ name }}\n{{ note }}\n")
    path = tmp_path / "bad.csv"
    path.write_text(
        "to,name,invoice_no,doc_ref,note\n"
        "good1@example.org,One,1,D-1,fine\n"
        "good2@example.org,Two,2,D-2\n"                                   # row 2: short
        "\"good3@example.org\nBcc: evil@example.org\",Three,3,D-3,x\n"    # row 3: CR/LF in to
        "good4@example.org,\"Four\nBcc: evil@example.org\",4,D-4,x\n"     # row 4: CR/LF subject
        "not-an-address,Five,5,D-5,x\n"                                   # row 5: bad address
        "\"\"\"Müller, Jürgen\"\" <j@example.org>\",Six,6,D-6,\"two\nlines\"\n"   # row 6: good
        "good7@example.org,Seven,7,D-1,x\n"                               # row 7: duplicate
        "good8@example.org,Eight,8,D-8,x,surplus\n")                      # row 8: long
    result = cli("send-batch", str(path), "--template", "invoice")
    assert result.exit_code != 0
    err = result.stderr
    assert "row 2: has 4 fields, the header has 5" in err
    assert "row 3: to: line break" in err
    assert "row 4: 'name' has a line break and is used in the subject" in err
    assert "row 5: to: not an e-mail address" in err
    assert "row 7: duplicate of row 1" in err
    assert "row 8: has 6 fields, the header has 5" in err
    assert "row 1:" not in err and "row 6:" not in err
    assert smtp.messages == [] and count("SELECT COUNT(*) FROM outbox") == 0


def test_quoted_name_with_comma_is_one_recipient(tmp_path):
    from mailtix.manifest import split_addresses

    assert split_addresses('"Müller, Jürgen" <j@example.org>; b@example.org, '
                           '"x \\" y, z" <c@example.org>') == [
        '"Müller, Jürgen" <j@example.org>', "b@example.org", '"x \\" y, z" <c@example.org>']
    assert split_addresses("a@example.org (Büro, Nord), b@example.org") == [
        "a@example.org (Büro, Nord)", "b@example.org"]


def test_validation_memory_does_not_grow_with_rows(sender, tmp_path):
    """The validation pass streams: it keeps no rendered rows (it kept up to 10,000)."""
    import tracemalloc

    from mailtix.config.load import load
    from mailtix.manifest import Layout, validate

    (sender / "templates" / "big.txt").write_text(
        "subject: Invoice {{ invoice_no }}\n---\n{{ name }}\n" + "x" * 15000 + "\n")
    config = load()

    def peak(rows: int) -> int:
        path = tmp_path / f"m{rows}.csv"
        with open(path, "w") as fh:
            fh.write("to,name,invoice_no\n")
            for i in range(rows):
                fh.write(f"c{i}@example.org,Customer {i},{i}\n")
        tracemalloc.start()
        summary = validate(config, path, "big", None, Layout())
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert summary.rows == rows
        return size

    peak(20)  # compiles and caches the template
    small, large = peak(1000), peak(5000)  # both above the sniffed sample
    assert large < small * 1.5, (small, large)


def test_progress_bar_shows_done_total_rate_and_eta():
    from rich.console import Console

    from mailtix.cli.send_cmd import progress_bar

    out = io.StringIO()
    bar = progress_bar(Console(file=out, force_terminal=True, width=120))
    task = bar.add_task("sending", total=40)
    bar.advance(task, 10)
    bar.console.print(bar.make_tasks_table(bar.tasks))
    text = out.getvalue()
    assert "10/40" in text and "mails/s" in text and "bytes" not in text


def test_jsonl_rows_name_their_own_fields(sender, smtp, cli, tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (
        {"to": "a@example.org", "name": "A", "invoice_no": "1", "doc_ref": "J-1"},
        {"TO": "b@example.org", "cc": "c@example.org", "name": "B", "invoice_no": "2",
         "doc_ref": "J-2"})) + "\n")
    result = cli("send-batch", str(path), "--template", "invoice", "--json")
    assert result.exit_code == 0, result.stderr
    envelopes = sorted(sorted(m["to"]) for m in smtp.messages)
    assert envelopes == [["a@example.org"], ["b@example.org", "c@example.org"]]


def test_excel_unicode_text_is_utf16_with_tabs(tmp_path):
    from mailtix.manifest import Layout, read_manifest

    path = tmp_path / "excel.txt"
    path.write_bytes("E-Mail\tKunde\r\nö@example.org\tÖzdemir\r\n".encode("utf-16"))
    rows = list(read_manifest(path, Layout(columns={"to": "e-mail"})))
    assert rows[0].to == ["ö@example.org"] and rows[0].vars["kunde"] == "Özdemir"
