"""`Simulator`: both listeners on one event loop in a background thread of the current process."""

import asyncio
import concurrent.futures
import socket
import threading

from aiohttp import web

from simulator.apns_server import ApnsConnection
from simulator.http_api import build_app
from simulator.recording import DEFAULT_RECORD_LIMIT
from simulator.simulation import Simulation

BACKLOG = 1024
START_TIMEOUT = 10
STOP_TIMEOUT = 10


class Simulator:
    """SendGrid, Twilio, FCM (with its OAuth token endpoint) and a control API on `http_url`; APNs over
    cleartext HTTP/2 on `apns_port`.

        with Simulator() as simulator:
            client = simulator.client()
    """

    def __init__(self, http_port: int = 0, apns_port: int = 0, host: str = "127.0.0.1",
                 record_limit: int = DEFAULT_RECORD_LIMIT):
        self.host = host
        self.http_port = http_port
        self.apns_port = apns_port
        self.record_limit = record_limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._shutdown: asyncio.Event | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self._connect_host}:{self.http_port}"

    @property
    def apns_host(self) -> str:
        return self._connect_host

    def client(self):
        from simulator.client import SimulatorClient
        return SimulatorClient(self.http_url)

    def start(self) -> "Simulator":
        """Listen on both ports and serve in a background thread; returns once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        http_socket = _listen(self.host, self.http_port)
        try:
            apns_socket = _listen(self.host, self.apns_port)
        except OSError:
            http_socket.close()
            raise
        self.http_port = http_socket.getsockname()[1]
        self.apns_port = apns_socket.getsockname()[1]
        started: concurrent.futures.Future = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(http_socket, apns_socket, started),
                                        name=f"simulator-{self.http_port}", daemon=True)
        self._thread.start()
        try:
            started.result(START_TIMEOUT)
        except BaseException:
            self._thread.join(STOP_TIMEOUT)
            self._thread = None
            raise
        return self

    def stop(self) -> None:
        """Close every connection and listener and end the thread; safe to call twice."""
        if self._thread is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._shutdown.set)
            self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError("the simulator did not stop in time")
        self._thread = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def _connect_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    def _run(self, http_socket: socket.socket, apns_socket: socket.socket,
             started: concurrent.futures.Future) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(http_socket, apns_socket, started))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, http_socket, apns_socket, started: concurrent.futures.Future) -> None:
        self._shutdown = asyncio.Event()
        simulation = Simulation(self.record_limit)
        connections: set[ApnsConnection] = set()
        runner = web.AppRunner(build_app(simulation), handle_signals=False, access_log=None, shutdown_timeout=1)
        apns_server = None
        try:
            await runner.setup()
            await web.SockSite(runner, http_socket, backlog=BACKLOG, shutdown_timeout=1).start()
            apns_server = await asyncio.get_running_loop().create_server(
                lambda: ApnsConnection(simulation, connections), sock=apns_socket, backlog=BACKLOG)
        except BaseException as error:
            http_socket.close()
            apns_socket.close()
            await runner.cleanup()
            started.set_exception(error)
            return
        started.set_result(None)
        await self._shutdown.wait()
        simulation.stopping.set()  # wakes requests held by `timeout` faults
        apns_server.close()
        for connection in list(connections):
            connection.close()
        await apns_server.wait_closed()
        await simulation.receipts.close()
        await runner.cleanup()
        await _cancel_remaining_tasks()


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def _cancel_remaining_tasks() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
