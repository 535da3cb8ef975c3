"""Numbered migrations; each runs in its own transaction and is recorded in schema_version."""

MIGRATIONS: list[str] = [
    # 1: tickets, messages, attachments, contacts, fetch state, events, full-text index
    """
    CREATE TABLE raw_messages (
        sha256 TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE TABLE contacts (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        name TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE TABLE ticket_counter (day TEXT PRIMARY KEY, last INTEGER NOT NULL);
    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY,
        number TEXT NOT NULL UNIQUE,
        subject TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'new',
        priority TEXT NOT NULL DEFAULT 'normal',
        queue TEXT NOT NULL DEFAULT '',
        project TEXT NOT NULL DEFAULT '',
        assignee TEXT NOT NULL DEFAULT '',
        account TEXT NOT NULL DEFAULT '',
        contact_id INTEGER REFERENCES contacts(id),
        doc_ref TEXT NOT NULL DEFAULT '',
        merged_into INTEGER REFERENCES tickets(id),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_activity_at TEXT NOT NULL
    );
    CREATE INDEX tickets_status ON tickets(status, last_activity_at);
    CREATE INDEX tickets_queue ON tickets(queue);
    CREATE INDEX tickets_assignee ON tickets(assignee);
    CREATE INDEX tickets_contact ON tickets(contact_id);
    CREATE TABLE ticket_contacts (
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        contact_id INTEGER NOT NULL REFERENCES contacts(id),
        role TEXT NOT NULL,
        PRIMARY KEY (ticket_id, contact_id, role)
    );
    CREATE INDEX ticket_contacts_contact ON ticket_contacts(contact_id);
    CREATE TABLE watchers (
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        agent TEXT NOT NULL,
        PRIMARY KEY (ticket_id, agent)
    );
    CREATE TABLE tags (
        ticket_id INTEGER NOT NULL REFERENCES tickets(id),
        tag TEXT NOT NULL,
        PRIMARY KEY (ticket_id, tag)
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        ticket_id INTEGER REFERENCES tickets(id),
        account TEXT NOT NULL DEFAULT '',
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out', 'note')),
        message_id TEXT NOT NULL DEFAULT '',
        in_reply_to TEXT NOT NULL DEFAULT '',
        refs TEXT NOT NULL DEFAULT '',
        from_addr TEXT NOT NULL DEFAULT '',
        from_name TEXT NOT NULL DEFAULT '',
        to_addrs TEXT NOT NULL DEFAULT '',
        cc_addrs TEXT NOT NULL DEFAULT '',
        date TEXT,
        subject TEXT NOT NULL DEFAULT '',
        body_text TEXT NOT NULL DEFAULT '',
        body_html TEXT NOT NULL DEFAULT '',
        raw_sha256 TEXT,
        content_sha256 TEXT NOT NULL DEFAULT '',
        size INTEGER NOT NULL DEFAULT 0,
        auto_submitted INTEGER NOT NULL DEFAULT 0,
        bounce INTEGER NOT NULL DEFAULT 0,
        list INTEGER NOT NULL DEFAULT 0,
        spam INTEGER NOT NULL DEFAULT 0,
        malformed INTEGER NOT NULL DEFAULT 0,
        parse_error TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE INDEX messages_ticket ON messages(ticket_id, id);
    CREATE INDEX messages_message_id ON messages(message_id);
    CREATE INDEX messages_raw ON messages(raw_sha256);
    CREATE INDEX messages_malformed ON messages(malformed) WHERE malformed = 1;
    CREATE TABLE message_sources (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),
        account TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL DEFAULT 0,
        uid INTEGER NOT NULL DEFAULT 0,
        uidl TEXT NOT NULL DEFAULT '',
        fetched_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX message_sources_imap
        ON message_sources(account, folder, uidvalidity, uid) WHERE uidl = '';
    CREATE UNIQUE INDEX message_sources_pop3
        ON message_sources(account, uidl) WHERE uidl != '';
    CREATE TABLE attachments (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),
        filename TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        content_id TEXT NOT NULL DEFAULT '',
        inline INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX attachments_message ON attachments(message_id);
    CREATE TABLE folder_state (
        account TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (account, folder)
    );
    CREATE TABLE pop3_seen (
        account TEXT NOT NULL,
        uidl TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (account, uidl)
    );
    CREATE TABLE pending_actions (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL DEFAULT 0,
        uid INTEGER NOT NULL DEFAULT 0,
        uidl TEXT NOT NULL DEFAULT '',
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE TABLE account_state (
        account TEXT PRIMARY KEY,
        first_run_at TEXT,
        last_run_at TEXT,
        last_success_at TEXT,
        last_error TEXT NOT NULL DEFAULT '',
        last_error_at TEXT,
        failing_since TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        backoff_until TEXT,
        fetched_total INTEGER NOT NULL DEFAULT 0,
        last_fetched INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        account TEXT NOT NULL DEFAULT '',
        ticket_id INTEGER,
        agent TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_ticket ON events(ticket_id, id);
    CREATE INDEX events_at ON events(at);
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        subject, body_text, addrs, tokenize='unicode61'
    );
    """,
    # 2: the outbox (every outgoing mail) and the autoresponder's memory
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL UNIQUE,
        account TEXT NOT NULL,
        kind TEXT NOT NULL,
        mail_from TEXT NOT NULL,
        rcpts TEXT NOT NULL,
        raw_sha256 TEXT NOT NULL REFERENCES raw_messages(sha256),
        state TEXT NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'sending', 'retry', 'sent', 'failed', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        smtp_reply TEXT NOT NULL DEFAULT '',
        sent_at TEXT,
        sent_copy TEXT NOT NULL DEFAULT 'none',
        sent_copy_error TEXT NOT NULL DEFAULT '',
        ticket_id INTEGER REFERENCES tickets(id),
        message_row INTEGER REFERENCES messages(id),
        doc_ref TEXT NOT NULL DEFAULT '',
        batch_id TEXT NOT NULL DEFAULT '',
        batch_key TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
    CREATE INDEX outbox_doc_ref ON outbox(doc_ref) WHERE doc_ref != '';
    CREATE UNIQUE INDEX outbox_batch ON outbox(batch_id, batch_key) WHERE batch_id != '';
    CREATE TABLE autoresponses (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        sender TEXT NOT NULL COLLATE NOCASE,
        at TEXT NOT NULL,
        outbox_id INTEGER REFERENCES outbox(id)
    );
    CREATE INDEX autoresponses_sender ON autoresponses(sender, at);
    """,
    # 3: the mailbox archive, separate from tickets
    """
    CREATE TABLE archive_folders (
        account TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (account, folder)
    );
    CREATE TABLE archive_messages (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        sha256 TEXT NOT NULL REFERENCES raw_messages(sha256),
        size INTEGER NOT NULL,
        flags TEXT NOT NULL DEFAULT '',
        internal_date TEXT,
        date TEXT,
        from_addr TEXT NOT NULL DEFAULT '',
        to_addrs TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        message_id TEXT NOT NULL DEFAULT '',
        archived_at TEXT NOT NULL,
        deleted_at TEXT,
        UNIQUE (account, folder, uidvalidity, uid)
    );
    CREATE INDEX archive_messages_date ON archive_messages(account, folder, internal_date);
    CREATE VIRTUAL TABLE archive_fts USING fts5(subject, body_text, addrs, tokenize='unicode61');
    """,
    # 4: senders marked as spam by an agent
    """
    CREATE TABLE sender_rules (
        email TEXT PRIMARY KEY COLLATE NOCASE,
        action TEXT NOT NULL CHECK (action IN ('spam')),
        agent TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    """,
    # 5: per-recipient SMTP state of each outbox row, and what came back for it (bounces,
    # delay reports, replies), so a refused or bounced recipient is never hidden by the others
    """
    CREATE TABLE outbox_rcpts (
        outbox_id INTEGER NOT NULL REFERENCES outbox(id),
        rcpt TEXT NOT NULL COLLATE NOCASE,
        state TEXT NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'sent', 'retry', 'refused', 'failed', 'bounced')),
        code TEXT NOT NULL DEFAULT '',
        reply TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL,
        PRIMARY KEY (outbox_id, rcpt)
    );
    CREATE INDEX outbox_rcpts_rcpt ON outbox_rcpts(rcpt, outbox_id);
    CREATE TABLE outbox_events (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL REFERENCES outbox(id),
        at TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('bounce', 'delay', 'reply', 'auto-reply')),
        rcpt TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT '',
        diagnostic TEXT NOT NULL DEFAULT '',
        message_row INTEGER REFERENCES messages(id)
    );
    CREATE INDEX outbox_events_outbox ON outbox_events(outbox_id, id);
    CREATE INDEX outbox_sent_at ON outbox(sent_at);
    """,
    # 6: the manifest row each batch mail was made from, to notice a row changed on resume
    """
    ALTER TABLE outbox ADD COLUMN row_sha TEXT NOT NULL DEFAULT '';
    """,
    # 7: agent actions: ticket type, an unread marker, trash (with what restore needs),
    # a contact's company, and the folder a trashed server copy came from
    """
    ALTER TABLE tickets ADD COLUMN type TEXT NOT NULL DEFAULT '';
    ALTER TABLE tickets ADD COLUMN unread INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tickets ADD COLUMN deleted_at TEXT;
    ALTER TABLE tickets ADD COLUMN status_before_delete TEXT NOT NULL DEFAULT '';
    ALTER TABLE contacts ADD COLUMN company TEXT NOT NULL DEFAULT '';
    ALTER TABLE message_sources ADD COLUMN trashed_from TEXT NOT NULL DEFAULT '';
    """,
    # 8: server actions that keep failing are parked, not retried forever; content-hash
    # lookups for mail without a Message-ID
    """
    ALTER TABLE pending_actions ADD COLUMN state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'waiting', 'parked'));
    ALTER TABLE pending_actions ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE pending_actions ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
    CREATE INDEX pending_actions_account ON pending_actions(account, state, folder);
    CREATE INDEX messages_content ON messages(content_sha256) WHERE message_id = '';
    """,
    # 9: outbox rows are claimed by the host sending them, until a time: on a store shared by
    # several hosts a row is sent by one, and a dead host's row is retried after the claim ends
    """
    ALTER TABLE outbox ADD COLUMN claimed_until TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
    """,
]
