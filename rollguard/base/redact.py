"""Secrets out of everything printed: passwords in URLs, and known secret values in text.

One home for redaction: ``rollguard check``, errors
(:class:`~rollguard.base.errors.ServiceUnavailable`), ``--help``, the worker's logs
(:func:`install_log_redaction`), history and audit records all go through here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters of a URL whose values are secrets (redis-py takes these from a URL).
SECRET_PARAMS = frozenset({"password", "ssl_password", "pass", "secret", "token"})
# user:password@ of any scheme://, found inside free text (an exception message, a log line).
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@")


def redact(url: str) -> str:
    """``url`` with its password (user info or a secret query parameter) masked.

    >>> redact("redis://u:pw@h:6379/0")
    'redis://u:***@h:6379/0'
    >>> redact("rediss://:pw@h/0?ssl_ca_certs=/ca.pem&password=x")
    'rediss://:***@h/0?ssl_ca_certs=%2Fca.pem&password=%2A%2A%2A'
    >>> redact("redis://h:6379/0"), redact("127.0.0.1:9092")
    ('redis://h:6379/0', '127.0.0.1:9092')
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if not parts.scheme or not parts.netloc:
        return redact_text(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:{MASK}@{host}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key.lower() in SECRET_PARAMS for key, _ in pairs):
        query = urlencode([(k, MASK if k.lower() in SECRET_PARAMS else v) for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str | bytes | None] = ()) -> str:
    """``text`` with URL passwords and each of ``secrets`` (exact values) masked.

    >>> redact_text("lost redis://app:hunter2@db:6379/0 (key s3cr3t)", ["s3cr3t"])
    'lost redis://app:***@db:6379/0 (key ***)'
    """
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    for secret in secrets:
        value = secret.decode(errors="replace") if isinstance(secret, bytes) else secret
        if value and len(value) >= 4:  # a 1-3 character "secret" would mask ordinary words
            text = text.replace(value, MASK)
    return text


def redact_record(record: logging.LogRecord, secrets: list[str | bytes]) -> None:
    """Mask secrets in a log record's message and traceback, in place."""
    message = record.getMessage()
    cleaned = redact_text(message, secrets)
    if cleaned != message:
        record.msg, record.args = cleaned, ()
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info),
                                      secrets)
        record.exc_info = None  # the formatter prints exc_text, already masked


def install_log_redaction(secrets: Iterable[str | bytes | None]) -> None:
    """Mask URL passwords and ``secrets`` in every log record of this process, whichever
    handler (ours, Faust's, aiokafka's) writes it: records are masked as they are made."""
    known = [s for s in secrets if s]
    make = logging.getLogRecordFactory()

    def masked(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        redact_record(record, known)
        return record

    logging.setLogRecordFactory(masked)
