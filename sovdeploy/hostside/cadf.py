"""OpenStack's API audit events (CADF), consumed from RabbitMQ into the log host's ledger.

keystonemiddleware's audit filter in Nova, Glance, Neutron and Cinder, and Keystone's own
CADF notifications, are sent with oslo.messaging's ``messagingv2`` driver, topic
``audit``, to a RabbitMQ vhost of their own (``audit``). The publishers declare their
exchanges durable and the queue ``audit.info`` as a quorum queue, so events wait there,
on disk, until the ledger service takes them; the consumer declares the same.

Each event becomes one record, source ``cadf``, numbered by the consumer: the
notification's ``event_type``, ``publisher_id``, ``message_id``, ``priority`` and its
payload, the CADF event itself. The request context that oslo.messaging sends beside it
(``_context_*``, which holds the caller's token) is not kept. A message is acknowledged
only once its record is durable; one redelivered after a crash (its record was written,
the acknowledgement was not) is recognised by its ``message_id`` and not written twice.

Run by the ledger service (``--amqp-url-file``), as a thread like the journal follower.
A broker that is away is retried every few seconds; the service keeps serving.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from sovdeploy.hostside.journal import catch_up
from sovdeploy.ledger import records
from sovdeploy.ledger.log import Writer
from sovdeploy.ledger.worker import Worker, read_state, write_state

SOURCE = "cadf"
QUEUE = "audit.info"
STATE_FILE = "cadf-consumer.json"
#: The control exchanges of the services that publish audit events.
EXCHANGES = ("nova", "glance", "neutron", "openstack", "keystone")
#: How many message ids are remembered to recognise a redelivery.
REMEMBERED = 4096
KEPT = ("event_type", "publisher_id", "message_id", "priority")


class MessageError(ValueError):
    """A message on the audit queue that is not an oslo.messaging notification."""


def _iso(timestamp: Any) -> str:
    """oslo.messaging's ``2026-11-21 10:00:00.123456`` (UTC) as the ledger writes times."""
    if isinstance(timestamp, str):
        try:
            when = dt.datetime.fromisoformat(timestamp)
        except ValueError:
            pass
        else:
            when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when
            return when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return records.timestamp()


def notification(body: bytes | str) -> dict[str, Any]:
    """The notification inside an AMQP message body (messagingv2's envelope, or none)."""
    try:
        outer = json.loads(body)
        inner = json.loads(outer["oslo.message"]) if "oslo.message" in outer else outer
    except (ValueError, TypeError, KeyError) as exc:
        raise MessageError(f"not a notification: {exc}") from None
    if not isinstance(inner, dict) or "event_type" not in inner or "payload" not in inner:
        raise MessageError("not a notification: no event_type and payload")
    return inner


def record_for(message: Mapping[str, Any], seq: int) -> dict[str, Any]:
    """The ledger record of one notification; its request context is left out."""
    kept = {k: message[k] for k in KEPT if k in message}
    return {
        "kind": "cadf",
        "source": SOURCE,
        "seq": seq,
        "time": _iso(message.get("timestamp")),
        **kept,
        "payload": message["payload"],
    }


@dataclass
class ConsumerState:
    """The consumer's next seq, the log size it has seen, and recent message ids."""

    size: int = 0
    seq: int = 0
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=REMEMBERED))

    def see(self, record: Mapping[str, Any]) -> None:
        if record.get("source") != SOURCE:
            return
        seq = record.get("seq")
        if isinstance(seq, int):
            self.seq = max(self.seq, seq + 1)
        message_id = record.get("message_id")
        if isinstance(message_id, str) and message_id not in self.recent:
            self.recent.append(message_id)

    @classmethod
    def load(cls, path: Path) -> Self:
        raw = read_state(path)
        if raw is None:
            return cls()
        return cls(int(raw["size"]), int(raw["seq"]), deque(raw["recent"], maxlen=REMEMBERED))

    def save(self, path: Path) -> None:
        write_state(path, {"size": self.size, "seq": self.seq, "recent": list(self.recent)})


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    user: str
    password: str
    vhost: str

    @classmethod
    def parse(cls, url: str) -> Broker:
        """``amqp://user:password@host:port/vhost`` (oslo's ``rabbit://`` too)."""
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("amqp", "rabbit") or not parts.hostname or not parts.username:
            raise ValueError("the broker URL is amqp://user:password@host:port/vhost")
        return cls(
            parts.hostname,
            parts.port or 5672,
            urllib.parse.unquote(parts.username),
            urllib.parse.unquote(parts.password or ""),
            urllib.parse.unquote(parts.path.lstrip("/")) or "/",
        )


class Consumer(Worker):
    """Takes the audit queue into the ledger (a thread of the service)."""

    thread_name = "cadf-consumer"

    def __init__(
        self,
        broker: Broker,
        writer: Writer,
        state_path: Path,
        *,
        exchanges: Sequence[str] = EXCHANGES,
        retry: float = 5.0,
        connect: Callable[[Broker], Any] | None = None,
    ) -> None:
        super().__init__()
        self.broker = broker
        self.writer = writer
        self.exchanges = tuple(exchanges)
        self.retry = retry
        self._connect = connect or _amqp_connection
        # The broker's own errors are py-amqp's; a test's stand-in raises OSError.
        self._broker_errors: tuple[type[BaseException], ...] = (OSError,)
        if connect is None:
            self._broker_errors += (_amqp_errors(),)
        self._state_path = state_path
        self.state = ConsumerState.load(state_path)
        log = writer.log
        start = min(self.state.size, log.size)
        catch_up(self.state, (log.entry(i) for i in range(start, log.size)), log.size)
        self.broker_error: str | None = None  # the broker is away: retried
        self.consumed = 0

    def take(self, bodies: Sequence[bytes]) -> int:
        """Append the records of these message bodies; return once they are durable.

        A body that is not a notification is still kept, as a ``cadf_unreadable``
        record, so that nothing the queue held disappears without a trace.
        """
        futures = []
        for body in bodies:
            try:
                message = notification(body)
            except MessageError as exc:
                message = {"event_type": "cadf_unreadable", "payload": {"error": str(exc)}}
            message_id = message.get("message_id")
            if isinstance(message_id, str) and message_id in self.state.recent:
                continue  # a redelivery of what the ledger holds
            rec = record_for(message, self.state.seq)
            futures.append(self.writer.append(records.entry_for(rec, self.writer.log.root)))
            self.state.seq += 1
            if isinstance(message_id, str):
                self.state.recent.append(message_id)
        if futures:
            last = max(f.result() for f in futures)
            self.state.size = max(self.state.size, last + 1)
            self.state.save(self._state_path)
        self.consumed += len(futures)
        return len(futures)

    def _session(self) -> None:
        connection = self._connect(self.broker)
        try:
            channel = connection.channel()
            channel.queue_declare(
                QUEUE, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"}
            )
            for exchange in self.exchanges:
                channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
                channel.queue_bind(QUEUE, exchange, routing_key=QUEUE)
            channel.basic_qos(0, 256, False)
            pending: list[Any] = []
            channel.basic_consume(QUEUE, callback=pending.append)
            self.broker_error = None
            while not self._stop.is_set():
                _drain(connection, pending, limit=256)
                if pending:
                    self.take([m.body for m in pending])
                    channel.basic_ack(pending[-1].delivery_tag, multiple=True)
                    pending.clear()
                connection.heartbeat_tick()
        finally:
            with contextlib.suppress(OSError):
                connection.close()

    def work(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._session()
            except self._broker_errors as exc:
                self.broker_error = f"{type(exc).__name__}: {exc}"
                failures += 1
                # In the service's journal: the broker refusing us must not go unseen.
                if failures in {1, 10} or failures % 100 == 0:
                    print(f"cadf: the broker failed ({failures}x), will retry: {self.broker_error}")
                self._stop.wait(self.retry)


def _drain(connection: Any, pending: list[Any], limit: int) -> None:
    """Wait up to 0.25 s for a message, then take what else is there, up to ``limit``."""
    timeout = 0.25
    while len(pending) < limit:
        try:
            connection.drain_events(timeout=timeout)
        except TimeoutError:  # socket.timeout, as py-amqp raises it
            return
        timeout = 0.0


def _amqp_errors() -> type[Exception]:
    # python3-amqp, installed on the log host only; the deployer never imports it.
    from amqp.exceptions import AMQPError  # type: ignore[import-not-found]

    return AMQPError  # type: ignore[no-any-return]


def _amqp_connection(broker: Broker) -> Any:
    import amqp  # type: ignore[import-not-found]

    connection = amqp.Connection(
        host=f"{broker.host}:{broker.port}",
        userid=broker.user,
        password=broker.password,
        virtual_host=broker.vhost,
        connect_timeout=10,
        heartbeat=30,
    )
    connection.connect()
    return connection
