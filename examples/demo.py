"""`make demo`: see mailtix work on a fresh machine, with no credentials and no network.

Starts a throwaway Dovecot and SMTP server on loopback, writes a demo config in a temporary
folder, delivers a handful of realistic customer mails through SMTP, runs `mailtix run`, and
shows the tickets it made.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from servers import Dovecot, SMTPServer, TLSFiles  # noqa: E402

MAILTIX = [sys.executable, "-m", "mailtix"]


def mail(subject: str, sender: str, body: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "Example Support <support@example.com>"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip(">"))
    for key, value in headers.items():
        msg[key.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def bounce(original: EmailMessage) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.net>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Undelivered Mail Returned to Sender"
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("This is the mail system at host mx.example.net.\n\n"
                    "I'm sorry to have to inform you that your message could not be delivered.\n"
                    "<nobody@example.net>: host mx.example.net said: 550 5.1.1 User unknown\n")
    status = EmailMessage()
    status.set_content("Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; "
                       "nobody@example.net\nAction: failed\nStatus: 5.1.1\n")
    msg.add_attachment(status.get_payload(), subtype="delivery-status")
    msg.add_attachment(original)
    msg.replace_header("Content-Type", 'multipart/report; report-type="delivery-status"; '
                       f'boundary="{msg.get_boundary()}"')
    return msg


def run(env: dict[str, str], *args: str) -> None:
    print(f"\n$ mailtix {' '.join(args)}", flush=True)
    subprocess.run([*MAILTIX, *args], env=env, check=False)


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="mailtix-demo-"))
    tls = TLSFiles.create(root / "tls")
    dovecot = Dovecot(root / "dovecot", tls).start()
    smtp = SMTPServer().start()
    try:
        dovecot.add_user("support", "demo-password")
        smtp.handler.deliver_to = dovecot
        smtp.handler.mailbox_users["support@example.com"] = "support"
        cfg = root / "config"
        cfg.mkdir()
        (cfg / "config.toml").write_text(f"""\
[general]
subject_tag = "[Ticket#{{number}}]"

[queues.support]
description = "first-level support"

[accounts.support]
email = "support@example.com"
name = "Example Support"

[accounts.support.fetch]
host = "127.0.0.1"
port = {dovecot.imap}
tls = "none"          # loopback only; real servers use ssl or starttls
user = "support"

[accounts.support.smtp]
host = "127.0.0.1"
port = {smtp.port}
tls = "none"

[accounts.support.tickets]
queue = "support"
""")
        env = dict(os.environ, MAILTIX_CONFIG=str(cfg / "config.toml"),
                   MAILTIX_DATA=str(root / "data"), MAILTIX_LOG_DIR=str(root / "log"),
                   MAILTIX_PASSWORD_SUPPORT="demo-password", PYTHONPATH=str(HERE.parent))
        print(f"demo folder: {root}\nDovecot IMAP on 127.0.0.1:{dovecot.imap}, "
              f"SMTP on 127.0.0.1:{smtp.port}")
        request = mail("Printer on 2nd floor jams", "Jane Customer <jane@customer.example>",
                       "Hello,\n\nthe printer on the 2nd floor jams on every second page.\n"
                       "Can someone have a look?\n\nJane")
        other = mail("Invoice 2026-0042: wrong VAT?", "Tom Buyer <tom@buyer.example>",
                     "Hi, invoice 2026-0042 shows 19% VAT; we are VAT-exempt. Please fix.\n")
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            client.send_message(request)
            client.send_message(other)
        run(env, "account", "test", "support")
        run(env, "run")
        reply = mail("Re: Printer on 2nd floor jams", "Jane Customer <jane@customer.example>",
                     "It happens with A4 paper only.\n\n> the printer on the 2nd floor jams",
                     In_Reply_To=request["Message-ID"], References=request["Message-ID"])
        ooo = mail("Out of office: Invoice 2026-0042", "Tom Buyer <tom@buyer.example>",
                   "I am out of the office until Monday.", Auto_Submitted="auto-replied")
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            for msg in (reply, ooo, bounce(request)):
                client.send_message(msg)
        run(env, "run")
        run(env, "run")
        run(env, "ticket", "list", "--all")
        data = subprocess.run([*MAILTIX, "ticket", "list", "--all", "--json"], env=env,
                              capture_output=True, text=True, check=True).stdout
        import json

        first = [t for t in json.loads(data) if "Printer" in t["subject"]][0]["number"]
        run(env, "ticket", "show", first)
    finally:
        smtp.stop()
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
