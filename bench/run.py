"""mailtix benchmarks: every figure is a ratio against a baseline measured in the same run.

    python bench/run.py [--quick]
        [--only ingest,noop,send,validate,memory,store,parse,idle,startup,parallel,postgresql]

`postgresql` adds the ingest and store figures on a PostgreSQL started for the run (Debian's
binaries, as the tests start it), next to SQLite on the same data.

Starts Dovecot and aiosmtpd on loopback (as the tests do), so run it as root via `make bench`.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import platform
import shutil
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from servers import Dovecot, SMTPServer, TLSFiles  # noqa: E402

CORPUS = Path(os.environ.get("MAILTIX_TEST_CORPUS") or ROOT.parent / "shared" / "corpus")
PY = sys.executable


def corpus_messages() -> list[bytes]:
    files = sorted(CORPUS.glob("*/*.eml")) if CORPUS.is_dir() else []
    if not files:
        raise SystemExit(f"corpus not found at {CORPUS}; set MAILTIX_TEST_CORPUS")
    return [f.read_bytes() for f in files]


def run_child(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall time, peak RSS (KiB) and stdout of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 6):
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {err[-2000:]}")
    return wall, usage.ru_maxrss, out


def median_time(args: list[str], env: dict[str, str], n: int = 5) -> float:
    return statistics.median(run_child(args, env)[0] for _ in range(n))


class Lab:
    """A throwaway Dovecot, a config and a data dir."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mailtix-bench-"))
        self.tls = TLSFiles.create(self.root / "tls")
        self.dovecot = Dovecot(self.root / "dovecot", self.tls).start()

    def mailbox(self, name: str, messages: list[bytes], n: int) -> tuple[str, str]:
        user, password = self.dovecot.new_user(name)
        for i in range(n):
            self.dovecot.deliver(user, messages[i % len(messages)])
        return user, password

    def env(self, name: str, user: str, password: str, smtp_port: int | None = None
            ) -> dict[str, str]:
        folder = self.root / f"cfg-{name}"
        folder.mkdir(exist_ok=True)
        smtp = (f'[accounts.b.smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\ntls = "none"\n'
                if smtp_port else "")
        (folder / "config.toml").write_text(
            f'[accounts.b]\nemail = "{user}@example.com"\npost_fetch = "none"\n'
            f'[accounts.b.fetch]\nhost = "127.0.0.1"\nport = {self.dovecot.imap}\n'
            f'tls = "none"\nuser = "{user}"\n{smtp}')
        (folder / "templates").mkdir(exist_ok=True)
        (folder / "templates" / "doc.txt").write_text(
            "subject: Document {{ doc_ref }}\n---\nPlease find {{ doc_ref }} attached.\n")
        return dict(os.environ, MAILTIX_CONFIG=str(folder / "config.toml"),
                    MAILTIX_DATA=str(self.root / f"data-{name}"),
                    MAILTIX_LOG_DIR=str(self.root / "log"), MAILTIX_PASSWORD_B=password,
                    PYTHONPATH=str(ROOT))

    def close(self) -> None:
        self.dovecot.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def bare_imaplib(port: int, user: str, password: str) -> int:
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(user, password)
    client.select("INBOX", readonly=True)
    uids = client.uid("SEARCH", "ALL")[1][0].split()
    total = 0
    for i in range(0, len(uids), 200):
        data = client.uid("FETCH", b",".join(uids[i:i + 200]), "(BODY.PEEK[])")[1]
        total += sum(1 for item in data if isinstance(item, tuple))
    client.logout()
    return total


def bare_imap_tools(port: int, user: str, password: str) -> int:
    from imap_tools import MailBoxUnencrypted

    count = 0
    with MailBoxUnencrypted("127.0.0.1", port).login(user, password) as box:
        for msg in box.fetch(mark_seen=False, bulk=200):
            count += bool(msg.subject is not None and msg.text is not None)
    return count


def bench_ingest(lab: Lab, msgs: list[bytes], n: int, rows: list) -> None:
    user, password = lab.mailbox("ingest", msgs, n)
    t0 = time.perf_counter()
    got_a = bare_imaplib(lab.dovecot.imap, user, password)
    a = time.perf_counter() - t0
    t0 = time.perf_counter()
    got_b = bare_imap_tools(lab.dovecot.imap, user, password)
    b = time.perf_counter() - t0
    env = lab.env("ingest", user, password)
    wall, rss, _ = run_child([PY, "-m", "mailtix", "run", "--quiet"], env)
    stored = sqlite3.connect(Path(env["MAILTIX_DATA"]) / "mailtix.sqlite3").execute(
        "SELECT COUNT(*) FROM message_sources").fetchone()[0]
    assert got_a == got_b == stored == n, (got_a, got_b, stored, n)
    rows.append(("ingest", f"{n} msgs", f"{n / wall:,.0f} msg/s", f"{wall:.2f} s",
                 f"imaplib {a:.2f} s / imap-tools {b:.2f} s",
                 f"{wall / a:.1f}x raw, {wall / b:.2f}x imap-tools", "<= 1.0x imap-tools"))
    noop = median_time([PY, "-m", "mailtix", "run", "--quiet"], env)
    version = median_time([PY, "-m", "mailtix", "--version"], env)
    rows.append(("no-op run", f"{n} msgs", "", f"{noop * 1000:.0f} ms",
                 f"--version {version * 1000:.0f} ms", f"{noop / version:.2f}x", "<= 1.5x"))
    rows.append(("ingest RSS", f"{n} msgs", "", f"{rss / 1024:.0f} MiB", "", "", ""))


def bench_memory(lab: Lab, msgs: list[bytes], small: int, large: int, rows: list) -> None:
    peaks = {}
    for n in (small, large):
        user, password = lab.mailbox(f"mem{n}", msgs, n)
        _wall, rss, _ = run_child([PY, "-m", "mailtix", "run", "--quiet"],
                                  lab.env(f"mem{n}", user, password))
        peaks[n] = rss
    rows.append(("memory", f"{small} vs {large}", "",
                 f"{peaks[small] / 1024:.0f} / {peaks[large] / 1024:.0f} MiB", "",
                 f"{peaks[large] / peaks[small]:.2f}x", "<= 1.2x"))


def bench_send(lab: Lab, n: int, rows: list) -> None:
    smtp = SMTPServer().start()
    try:
        user, password = lab.dovecot.new_user("send")
        env = lab.env("send", user, password, smtp.port)
        folder = lab.root / "docs"
        folder.mkdir(exist_ok=True)
        pdf = folder / "doc.pdf"
        pdf.write_bytes(b"%PDF-1.4\n" + os.urandom(100 * 1024))
        manifest = folder / "batch.csv"
        with open(manifest, "w") as fh:
            fh.write("to,doc_ref,attachments\n")
            for i in range(n):
                fh.write(f"c{i}@example.org,DOC-{i},doc.pdf\n")
        wall, rss, _ = run_child([PY, "-m", "mailtix", "send-batch", str(manifest), "--template",
                                  "doc", "--json"], env)
        sent = list(smtp.messages)
        assert len(sent) == n, len(sent)
        smtp.handler.messages.clear()
        t0 = time.perf_counter()
        client = smtplib.SMTP("127.0.0.1", smtp.port)
        for m in sent:
            client.sendmail(m["from"], m["to"], m["raw"])
        client.quit()
        base = time.perf_counter() - t0
        rows.append(("batch send", f"{n} x 100 KB", f"{n / wall:,.0f} mail/s", f"{wall:.2f} s",
                     f"smtplib loop {base:.2f} s", f"{wall / base:.2f}x", "<= 1.3x"))
        rows.append(("batch RSS", f"{n} mails", "", f"{rss / 1024:.0f} MiB", "", "", ""))
    finally:
        smtp.stop()


def bench_validate(lab: Lab, small: int, large: int, rows: list) -> None:
    """Peak RSS of `send-batch` checking every row of a manifest with a 15 KB HTML template
    (--limit 1: one mail sent, so the figure is the validation pass): must not grow with the
    row count (it kept up to 10,000 rendered rows: 37 vs 95 MiB for 500 vs 5,000)."""
    smtp = SMTPServer().start()
    peaks = {}
    try:
        for n in (small, large):
            user, password = lab.dovecot.new_user(f"val{n}")
            env = lab.env(f"val{n}", user, password, smtp.port)
            templates = Path(env["MAILTIX_CONFIG"]).parent / "templates"
            (templates / "doc.html").write_text(
                "<html><body><p>Dear {{ name }},</p>" + "<p>Terms and conditions. </p>" * 550
                + "<p>{{ doc_ref }}</p></body></html>\n")
            manifest = lab.root / f"validate-{n}.csv"
            with open(manifest, "w") as fh:
                fh.write("to,doc_ref,name\n")
                for i in range(n):
                    fh.write(f"c{i}@example.org,V{n}-{i},Customer {i}\n")
            _wall, rss, _ = run_child([PY, "-m", "mailtix", "send-batch", str(manifest),
                                       "--template", "doc", "--limit", "1", "--json"], env)
            peaks[n] = rss
    finally:
        smtp.stop()
    rows.append(("batch validation RSS", f"{small} vs {large} rows", "",
                 f"{peaks[small] / 1024:.0f} / {peaks[large] / 1024:.0f} MiB", "",
                 f"{peaks[large] / peaks[small]:.2f}x", "<= 1.1x"))


def pg_env(pg) -> dict[str, str]:
    """The environment that points mailtix at a fresh database of the bench's PostgreSQL."""
    return {"MAILTIX_STORE_URL": pg.url(pg.new_database()), "MAILTIX_STORE_PASSWORD": pg.password}


def bench_ingest_pg(lab: Lab, pg, msgs: list[bytes], n: int, rows: list) -> None:
    """The same ingest into PostgreSQL, against SQLite in the same run."""
    from mailtix.store import pg as pgconn

    user, password = lab.mailbox("ingestpg", msgs, n)
    times = {}
    for backend in ("sqlite", "postgresql"):
        env = lab.env(f"ingest-{backend}", user, password)
        if backend == "postgresql":
            env.update(pg_env(pg))
        times[backend] = run_child([PY, "-m", "mailtix", "run", "--quiet"], env)[0]
    with pgconn.connect(env["MAILTIX_STORE_URL"], pg.password) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM message_sources").fetchone()[0]
    assert stored == n, (stored, n)
    wall, base = times["postgresql"], times["sqlite"]
    rows.append(("ingest (postgresql)", f"{n} msgs", f"{n / wall:,.0f} msg/s", f"{wall:.2f} s",
                 f"sqlite {base:.2f} s", f"{wall / base:.2f}x", ""))


def bench_store(lab: Lab, n: int, rows: list, pg=None) -> None:
    """A synthetic store of n tickets (one message each), then list, search and show; with
    pg, the same in PostgreSQL, next to SQLite."""
    sys.path.insert(0, str(ROOT))
    from mailtix.store import Store

    data = lab.root / ("data-store" if pg is None else "data-store-pg")
    extra = pg_env(pg) if pg is not None else {}
    os.environ.update(extra)
    try:
        store = Store.open(data, extra.get("MAILTIX_STORE_URL"))
    finally:
        for key in extra:
            os.environ.pop(key, None)
    words = ("printer invoice delivery password refund order contract laptop screen network "  # noqa: SIM905
             "mailbox license upgrade backup calendar meeting").split()
    with store.tx() as conn:
        conn.execute("INSERT INTO contacts(email, name, created_at) VALUES "
                     "('c@example.org', 'C', '2026-01-01')")
        for i in range(n):
            number = f"2026{(i // 9999) % 12 + 1:02d}{(i // 9999) // 12 + 1:02d}{i % 9999 + 1:04d}"
            subject = f"{words[i % len(words)]} {words[(i * 7) % len(words)]} issue {i}"
            cur = conn.execute(
                "INSERT INTO tickets(number, subject, status, queue, account, contact_id, "
                "created_at, updated_at, last_activity_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (number, subject, ("new", "open", "closed")[i % 3], "support", "b", 1,
                 "2026-01-01", "2026-01-01", f"2026-01-01T00:{i % 60:02d}:00"))
            body = f"Hello, my {subject} needs attention. Ticket body text {i} " * 4
            mid = conn.execute(
                "INSERT INTO messages(ticket_id, account, direction, message_id, from_addr, "
                "subject, body_text, created_at) VALUES (?,?,?,?,?,?,?,?)",
                (cur.lastrowid, "b", "in", f"<{i}@bench>", "c@example.org", subject, body,
                 "2026-01-01")).lastrowid
            conn.execute("INSERT INTO messages_fts(rowid, subject, body_text, addrs) "
                         "VALUES (?,?,?,?)", (mid, subject, body, "c@example.org"))
    store.close()
    (lab.root / "cfg-store").mkdir(exist_ok=True)
    env = dict(os.environ, MAILTIX_CONFIG=str(lab.root / "cfg-store" / "config.toml"),
               MAILTIX_DATA=str(data), MAILTIX_LOG_DIR=str(lab.root / "log"),
               PYTHONPATH=str(ROOT), **extra)
    base = median_time([PY, "-m", "mailtix", "--version"], env)
    suffix = "" if pg is None else " (postgresql)"
    for label, args in ((f"ticket list{suffix}", ["ticket", "list"]),
                        (f"ticket search{suffix}", ["ticket", "search", "refund laptop"]),
                        (f"ticket show{suffix}", ["ticket", "show", "202601010500"])):
        t = median_time([PY, "-m", "mailtix", *args], env)
        rows.append((label, f"{n:,} tickets", "", f"{t * 1000:.0f} ms",
                     f"--version {base * 1000:.0f} ms", f"+{(t - base) * 1000:.0f} ms",
                     "<= +200 ms"))


def bench_idle(lab: Lab, n: int, rows: list) -> None:
    """`run --loop`: time from an IMAP APPEND until the message is in the store, woken by
    IDLE (the interval is 10 min, so only IDLE can explain a short figure)."""
    user, password = lab.dovecot.new_user("idle")
    env = lab.env("idle", user, password)
    store = Path(env["MAILTIX_DATA"]) / "mailtix.sqlite3"
    proc = subprocess.Popen([PY, "-m", "mailtix", "run", "--loop", "--interval", "600",
                             "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    client = imaplib.IMAP4("127.0.0.1", lab.dovecot.imap)
    client.login(user, password)
    latencies, appends = [], []
    try:
        deadline = time.monotonic() + 30
        while not store.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # the first full run and the IDLE connect settle
        for i in range(n):
            subject = f"idle probe {i}"
            raw = (f"From: c@example.org\r\nTo: {user}@example.com\r\nSubject: {subject}\r\n"
                   f"Message-ID: <idle-{i}-{time.time()}@bench>\r\n\r\nhello\r\n").encode()
            t0 = time.perf_counter()
            client.append("INBOX", None, None, raw)
            appends.append(time.perf_counter() - t0)
            while time.perf_counter() - t0 < 30:
                conn = sqlite3.connect(store)
                try:
                    found = conn.execute("SELECT 1 FROM messages WHERE subject = ?",
                                         (subject,)).fetchone()
                finally:
                    conn.close()
                if found:
                    break
                time.sleep(0.01)
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.5)
    finally:
        client.logout()
        proc.terminate()
        proc.wait(30)
    rows.append(("IDLE: APPEND to stored", f"{n} mails", "",
                 f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s",
                 f"APPEND {statistics.median(appends) * 1000:.0f} ms", "", "< 2 s"))


def hostile_mails(msgs: list[bytes]) -> list[tuple[str, bytes, str, bytes, str]]:
    """(label, hostile mail, baseline label, normal mail of about the same size, target)."""
    import base64

    from mailtix.mail.parse import _leaves, _message, _part_text

    head = (b"From: Sender <sender@example.org>\r\nTo: support@example.com\r\n"
            b"Subject: bench\r\nMessage-ID: <bench@example.org>\r\n")
    html_parts = []
    for raw in msgs:
        try:
            msg = _message(raw.decode("ascii", "surrogateescape"))
        except Exception:
            continue
        html_parts += [_part_text(p) for p in _leaves(msg) if p.get_content_type() == "text/html"]
    html = "".join(html_parts).encode()
    size = 10 * 1024 * 1024
    normal_html = (head + b"Content-Type: text/html; charset=utf-8\r\n\r\n"
                   + (html * (size // len(html) + 1))[:size])
    hostile_html = head + b"Content-Type: text/html\r\n\r\n" + b"<a" * (size // 2)
    third = 700 * 1024
    block = (b"Content-Type: text/plain; charset=utf-8" + b"; a=b" * (third // 5) + b"\r\n"
             + b"X-Subject: " + b"=?x-bogus?q?a?= " * (third // 16) + b"\r\n"
             + b"".join(b"X-H%d: v\r\n" % i for i in range(third // 10)))
    hostile_head = head + block + b"\r\nbody\r\n"
    attachment = base64.encodebytes(os.urandom(len(hostile_head) * 3 // 4))
    normal_big = (head + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                  b"Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
                  b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
                  b"Content-Disposition: attachment; filename=a.pdf\r\n\r\n"
                  + attachment + b"--b--\r\n")
    # Targets: linear work, so a fixed ratio at any size. A hostile header block costs more
    # per byte than base64 (70,000 lines read, cut and hashed), hence the wider bound.
    return [("parse hostile HTML", hostile_html, "HTML newsletter", normal_html, "<= 2x"),
            ("parse 2 MB header block", hostile_head, "PDF attachment", normal_big, "<= 10x")]


def bench_parse(msgs: list[bytes], rows: list) -> None:
    """In-process parse of hostile mail against normal mail of the same size (issue 16)."""
    from mailtix.mail.parse import parse

    def timed(raw: bytes) -> float:
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            parse(raw)
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs)

    for label, hostile, base_label, normal, target in hostile_mails(msgs):
        t, base = timed(hostile), timed(normal)
        rows.append((label, f"{len(hostile) / 1e6:.1f} MB", "", f"{t * 1000:.0f} ms",
                     f"{base_label} {len(normal) / 1e6:.1f} MB {base * 1000:.0f} ms",
                     f"{t / base:.2f}x", target))


def bench_startup(rows: list) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    base = median_time([PY, "-c", "pass"], env)
    for args in (["--version"], ["--help"]):
        t = median_time([PY, "-m", "mailtix", *args], env)
        rows.append((f"mailtix {args[0]}", "", "", f"{t * 1000:.0f} ms",
                     f"python -c pass {base * 1000:.0f} ms", f"{t / base:.1f}x", ""))


def bench_parallel(lab: Lab, msgs: list[bytes], n: int, rows: list) -> None:
    """n accounts behind 100 ms of latency (a delaying proxy in front of Dovecot): one run
    with [general] parallel_accounts = n against the sequential run, fresh data dirs each."""
    from latency import DelayProxy

    proxy = DelayProxy(lab.dovecot.imap, delay=0.1).start()
    try:
        accounts, env_pw = [], {}
        for i in range(n):
            user, password = lab.mailbox(f"par{i}", msgs, 2)
            accounts.append(f'[accounts.p{i}]\nemail = "{user}@example.com"\n'
                            f'post_fetch = "none"\n[accounts.p{i}.fetch]\nhost = "127.0.0.1"\n'
                            f'port = {proxy.port}\ntls = "none"\nuser = "{user}"\n')
            env_pw[f"MAILTIX_PASSWORD_P{i}"] = password
        times = {}
        for workers in (1, n):
            folder = lab.root / f"cfg-par{workers}"
            folder.mkdir(exist_ok=True)
            (folder / "config.toml").write_text(
                f"[general]\nparallel_accounts = {min(workers, 64)}\n" + "".join(accounts))
            env = dict(os.environ, **env_pw, MAILTIX_CONFIG=str(folder / "config.toml"),
                       MAILTIX_DATA=str(lab.root / f"data-par{workers}"),
                       MAILTIX_LOG_DIR=str(lab.root / "log"), PYTHONPATH=str(ROOT))
            times[workers] = run_child([PY, "-m", "mailtix", "run", "--quiet"], env)[0]
    finally:
        proxy.stop()
    seq, par = times[1], times[n]
    rows.append((f"run, {n} accounts, 100 ms latency, parallel_accounts={n}", f"{n}", "",
                 f"{par:.1f} s", f"sequential {seq:.1f} s", f"{par / seq:.2f}x",
                 "about the slowest account"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--only",
                        default="ingest,memory,send,validate,store,parse,idle,startup,"
                                "parallel,postgresql")
    args = parser.parse_args()
    only = set(args.only.split(","))
    n_ingest, mem, n_send, n_store = ((500, (200, 1000), 100, 10_000) if args.quick else
                                      (5000, (1000, 10_000), 1000, 100_000))
    msgs = corpus_messages()
    rows: list[tuple] = []
    lab = Lab()
    pg = None
    if "postgresql" in only:
        from pgserver import PostgreSQL, pg_bindir

        if pg_bindir() is None:
            raise SystemExit("PostgreSQL is missing: apt-get install postgresql")
        pg = PostgreSQL(pg_bindir()).start()
    try:
        if "ingest" in only:
            bench_ingest(lab, msgs, n_ingest, rows)
        if "memory" in only:
            bench_memory(lab, msgs, *mem, rows)
        if "send" in only:
            bench_send(lab, n_send, rows)
        if "validate" in only:
            bench_validate(lab, *((200, 2000) if args.quick else (500, 5000)), rows)
        if "store" in only:
            bench_store(lab, n_store, rows)
            if pg is not None:
                bench_store(lab, n_store, rows, pg)
        if "ingest" in only and pg is not None:
            bench_ingest_pg(lab, pg, msgs, n_ingest, rows)
        if "parse" in only:
            bench_parse(msgs, rows)
        if "idle" in only:
            bench_idle(lab, 5 if args.quick else 20, rows)
        if "startup" in only:
            bench_startup(rows)
        if "parallel" in only:
            bench_parallel(lab, msgs, 10 if args.quick else 50, rows)
    finally:
        lab.close()
        if pg is not None:
            pg.stop()
    header = ("figure", "size", "rate", "mailtix", "baseline (same run)", "ratio", "target")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, mode {'quick' if args.quick else 'full'}")
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
