"""The APNs listener: cleartext HTTP/2 with prior knowledge, built on `h2`.

Each response is one HEADERS frame (ending the stream) or HEADERS plus one DATA frame that ends it:
aioapns parses every DATA frame as JSON and matches responses by the echoed apns-id.
"""

import asyncio
import uuid

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, StreamReset
from h2.exceptions import H2Error
from h2.settings import SettingCodes, Settings

from simulator.exchange import Incoming, Reply
from simulator.simulation import Simulation

MAX_CONCURRENT_STREAMS = 1000


class ApnsConnection(asyncio.Protocol):
    def __init__(self, simulation: Simulation, connections: set):
        self.simulation = simulation
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.pending: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.tasks: set[asyncio.Task] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)
        self.conn.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
            SettingCodes.MAX_HEADER_LIST_SIZE: self.conn.DEFAULT_MAX_HEADER_LIST_SIZE,
        })
        self.conn.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        for task in self.tasks:
            task.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except H2Error:
            self._flush()
            self.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                self.pending[event.stream_id] = (dict(event.headers), bytearray())
            elif isinstance(event, DataReceived):
                if event.stream_id in self.pending:
                    self.pending[event.stream_id][1].extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                self._answer_later(event.stream_id)
            elif isinstance(event, StreamReset):
                self.pending.pop(event.stream_id, None)
            elif isinstance(event, ConnectionTerminated):
                self.close()
                return
        self._flush()

    def close(self) -> None:
        if self.transport is not None and not self.closing:
            try:
                self.conn.close_connection()
                self._flush()
            except H2Error:
                pass
            self.closing = True
            self.transport.close()

    def _answer_later(self, stream_id: int) -> None:
        headers, body = self.pending.pop(stream_id, ({}, bytearray()))
        incoming = Incoming(
            method=headers.get(":method", ""),
            path=headers.get(":path", ""),
            headers=headers,
            body=bytes(body),
            route={"apns_id": headers.get("apns-id") or str(uuid.uuid4())},
        )
        task = asyncio.get_running_loop().create_task(self._answer(stream_id, incoming))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, stream_id: int, incoming: Incoming) -> None:
        reply = await self.simulation.exchange("apns", incoming)
        if reply is None or self.transport is None or self.closing:
            return
        try:
            self._send(stream_id, reply)
        except H2Error:
            return  # the client reset the stream or the connection is going away
        self._flush()

    def _send(self, stream_id: int, reply: Reply) -> None:
        headers = [(":status", str(reply.status))] + [(name.lower(), value) for name, value in reply.headers.items()]
        if not reply.body:
            self.conn.send_headers(stream_id, headers, end_stream=True)
            return
        if self.conn.local_flow_control_window(stream_id) < len(reply.body):
            # aioapns never returns flow-control credit, so after many error bodies the window is spent;
            # all that is left is to end the connection, and the client reconnects.
            self.close()
            return
        self.conn.send_headers(stream_id, headers)
        self.conn.send_data(stream_id, reply.body, end_stream=True)

    def _flush(self) -> None:
        if self.transport is not None and not self.closing:
            data = self.conn.data_to_send()
            if data:
                self.transport.write(data)
