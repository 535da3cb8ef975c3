"""Ordered routing rules for new tickets: first match wins unless a rule says continue."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from mailtix.config.model import Rule
from mailtix.mail.parse import Parsed


@dataclass
class Routing:
    queue: str = ""
    priority: str = ""
    assignee: str = ""
    status: str = ""
    tags: list[str] = field(default_factory=list)
    matched: list[int] = field(default_factory=list)


def _values(p: Parsed, key: str) -> list[str]:
    if key == "from":
        return [p.from_addr, f"{p.from_name} <{p.from_addr}>"]
    if key == "to":
        return [a for _, a in p.to]
    if key == "cc":
        return [a for _, a in p.cc]
    return [p.subject]


def _match(pattern: str, values: list[str], regex: bool) -> bool:
    if regex:
        rx = re.compile(pattern, re.I)
        return any(rx.search(v) for v in values)
    return any(fnmatch.fnmatchcase(v.lower(), pattern.lower()) for v in values)


def route(rules: tuple[Rule, ...], p: Parsed) -> Routing:
    out = Routing()
    for i, rule in enumerate(rules):
        if all(_match(pat, _values(p, key), rule.regex) for key, pat in rule.patterns.items()):
            out.matched.append(i)
            out.queue = rule.queue or out.queue
            out.priority = rule.priority or out.priority
            out.assignee = rule.assignee or out.assignee
            out.status = rule.status or out.status
            out.tags.extend(rule.tags)
            if not rule.continue_:
                break
    return out
