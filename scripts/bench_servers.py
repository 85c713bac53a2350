"""Servers for `scripts/bench dispatch`, each run in its own process: a webhook receiver
(uvicorn, bare ASGI) and an SMTP server (aiosmtpd). Each appends `<id> <arrival time>`
lines to a file, so the benchmark can measure lateness from the due instant."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any


def webhook_receiver(port: int, log: Path, delay_s: float) -> None:
    import uvicorn

    out = log.open("a", buffering=1)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        arrived = time.time()
        headers = dict(scope["headers"])
        if delay_s:
            await asyncio.sleep(delay_s)
        out.write(f"{headers.get(b'webhook-id', b'-').decode()} {arrived}\n")
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=4096
    )


def many_receivers(ports: list[int], dribble_port: int, log: Path) -> None:
    """Plain HTTP/1.1 receivers, one per port (each port a destination of its own),
    in one process; the one on `dribble_port` answers 200 and then sends its body a
    byte every 5 s."""
    out = log.open("a", buffering=1)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        dribble = writer.get_extra_info("sockname")[1] == dribble_port
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                length, ident = 0, b"-"
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        ident = value.strip()
                if length:
                    await reader.readexactly(length)
                if dribble:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                    while True:
                        await asyncio.sleep(5)
                        writer.write(b".")
                        await writer.drain()
                out.write(f"{ident.decode()} {arrived}\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        servers = [
            await asyncio.start_server(answer, "127.0.0.1", port, backlog=4096) for port in ports
        ]
        await asyncio.gather(*(server.serve_forever() for server in servers))

    asyncio.run(serve())


def smtp_server(port: int, log: Path) -> None:
    from aiosmtpd.controller import Controller

    out = log.open("a", buffering=1)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            arrived = time.time()
            text = envelope.content.decode(errors="replace")
            message_id = next(
                (line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.lower().startswith("message-id:")),
                "-",
            )  # fmt: skip
            out.write(f"{message_id} {arrived}\n")
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def bare_api(port: int, key: str) -> None:
    """The ceiling `scripts/bench api` compares with: a bare FastAPI app with a bearer
    check, on uvicorn's own socket, sharing none of the service's serving code."""
    import hmac

    import uvicorn
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    app = FastAPI()
    bearer = HTTPBearer()

    def caller(credentials: HTTPAuthorizationCredentials = Depends(bearer)) -> str:
        if not hmac.compare_digest(credentials.credentials, key):
            raise HTTPException(401, "a valid key is required")
        return "clinic"

    @app.get("/v1/clinic")
    async def clinic(who: str = Depends(caller)) -> dict[str, str]:
        return {"id": "0" * 32, "name": "Bench Clinic", "caller": who}

    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", access_log=False)


if __name__ == "__main__":
    kind, port_text, log_path = sys.argv[1:4]
    if kind == "bare-api":
        bare_api(int(port_text), key=sys.argv[3])
    elif kind == "webhook":
        webhook_receiver(int(port_text), Path(log_path), float(sys.argv[4]))
    elif kind == "many":
        ports = [int(p) for p in port_text.split(",")]
        many_receivers(ports, int(sys.argv[4]), Path(log_path))
    else:
        smtp_server(int(port_text), Path(log_path))
