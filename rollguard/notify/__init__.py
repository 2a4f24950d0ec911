"""``rollguard notify``: the alerts and audit topics, told to people where they are.

Pure parts (no I/O, time passed in): :mod:`.notices` (a topic record → a notice),
:mod:`.episodes` (notices grouped into one thread per episode, identical alerts held back,
batched into messages), :mod:`.outbox` (a bounded queue per destination with backoff and a
digest of the backlog), :mod:`.formats` (Slack, signed webhook and PagerDuty bodies). The
edges: :mod:`.settings` (environment), :mod:`.deliver` (HTTP), :mod:`.service` (Kafka).
"""
