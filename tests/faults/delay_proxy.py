"""A TCP proxy that adds latency, for the multi-host test (``tc netem`` is not available).

    python tests/faults/delay_proxy.py LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_S FLAG_FILE

Every chunk read from either side is written to the other ``DELAY_S`` seconds later, in
order, while ``FLAG_FILE`` exists; without the file it forwards at once. So a test turns the
delay on and off without restarting the proxy or the clients' connections.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, flag: str) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        writer.close()

    sender = asyncio.ensure_future(deliver())
    try:
        while chunk := await reader.read(65536):
            await queue.put((time.monotonic() + (delay if os.path.exists(flag) else 0.0), chunk))
    except (ConnectionError, OSError):
        pass
    await queue.put((0.0, b""))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


async def main(listen: str, target: str, delay: float, flag: str) -> None:
    target_host, target_port = target.rsplit(":", 1)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(target_host, int(target_port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, server_writer, delay, flag),
            _pipe(server_reader, client_writer, delay, flag),
        )

    host, port = listen.rsplit(":", 1)
    server = await asyncio.start_server(handle, host, int(port))
    print(f"delay proxy {listen} -> {target}, {delay} s while {flag} exists", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]))
