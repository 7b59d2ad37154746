"""WebSocket servers used as real peers by the end-to-end tests.

usage: ws_peer.py MODE   (listens on 127.0.0.1, an OS-chosen port; prints "PORT <n>")

modes:
  echo         python-websockets: echo every message
  say-close    python-websockets: send "last words", then close 1000 "done" at once
  silent       python-websockets: complete the handshake, then never send anything
  picows-echo  picows: echo every frame
  wss-echo CERT KEY   python-websockets over TLS: echo every message
  wss-echo-tls12 CERT KEY   the same, TLS 1.2 at most
  echo-log     python-websockets: echo, and print "CLOSED <code>" when a connection ends
  flood N      python-websockets: send N one-byte text messages as fast as it can, then close 1000;
               print "RCVD <code>" with the code of the client's Close
  deflate-echo python-websockets with permessage-deflate as configured for a server by default
               (12-bit windows, context takeover): echo, and print "EXT <header>" per connection
  deflate-nct  the same, with no context takeover either way
  deflate-small the same, with 9-bit windows both ways

hostile modes (raw asyncio streams, byte by byte; each prints "EOF" when the client closes TCP):
  deflate-bomb N   accept permessage-deflate, then send one compressed binary message that
                   inflates to N MiB of zeros (a few hundred bytes per MiB on the wire)
  ignore-close     send a text frame every millisecond, read and ignore everything (our Close too)
  ping-flood N     send N pings as fast as the socket takes them and never read; print "SENT"
  empty-continuations  start a text message, then send empty continuation frames forever
  partial N        announce an N-byte binary frame, send all of it but the last byte, then wait
  stuck-then-bad N send N pings without reading (our pongs back up), then a frame with a
                   reserved opcode, then a byte every 100 ms forever
"""
import asyncio
import sys


async def websockets_server(handler, ssl=None, extensions=None):
    from websockets.asyncio.server import serve

    options = {"compression": None, "extensions": extensions} if extensions is not None else {}
    async with serve(handler, "127.0.0.1", 0, ping_interval=None, max_size=None, ssl=ssl, **options) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.Future()


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def deflate_echo(ws):
    header = ", ".join(f"{name}" for name in map(repr, ws.protocol.extensions))
    print(f"EXT {header or 'none'}", flush=True)
    async for message in ws:
        await ws.send(message)


def deflate_factory(mode):
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    if mode == "deflate-echo":
        return [ServerPerMessageDeflateFactory(
            server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5})]
    if mode == "deflate-nct":
        return [ServerPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True)]
    return [ServerPerMessageDeflateFactory(server_max_window_bits=9, client_max_window_bits=9)]


async def echo_log(ws):
    try:
        async for message in ws:
            await ws.send(message)
    finally:
        print(f"CLOSED {ws.close_code}", flush=True)


async def flood(ws):
    count = int(sys.argv[2])
    try:
        for _ in range(count):
            await ws.send("x")
        await ws.close(1000, "flood over")
    except Exception:
        pass
    finally:
        await ws.wait_closed()
        received = ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None
        print(f"RCVD {received}", flush=True)


async def say_close(ws):
    await ws.send("last words")
    await ws.close(1000, "done")


async def silent(ws):
    await asyncio.sleep(3600)


async def raw_server(handler, extensions=b""):
    """A WebSocket server written by hand: accepts any handshake (answering
    with `extensions` as Sec-WebSocket-Extensions, if given), then runs
    `handler(reader, writer)`, which may break every rule after it."""
    import base64
    import hashlib

    async def accept(reader, writer):
        header = await reader.readuntil(b"\r\n\r\n")
        key = b""
        for line in header.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n"
            + (b"Sec-WebSocket-Extensions: " + extensions + b"\r\n" if extensions else b"") + b"\r\n")
        await writer.drain()
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        print("EOF", flush=True)
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


BOMB = []  # the compressed bomb, made once: deflating a gigabyte takes seconds


def bomb_payload():
    import zlib

    if not BOMB:
        mib = int(sys.argv[2])
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        zeros = bytes(1 << 20)
        payload = b"".join(compressor.compress(zeros) for _ in range(mib)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert payload.endswith(b"\x00\x00\xff\xff")
        BOMB.append(payload[:-4])
    return BOMB[0]


async def deflate_bomb(reader, writer):
    payload = bomb_payload()
    # One binary frame, RSV1 set (compressed), 64-bit length.
    writer.write(bytes([0xC2, 127]) + len(payload).to_bytes(8, "big") + payload)
    await writer.drain()
    print(f"SENT {len(payload)}", flush=True)
    await drain_until_eof(reader)


async def drain_until_eof(reader):
    while await reader.read(65536):
        pass


async def ignore_close(reader, writer):
    reading = asyncio.ensure_future(drain_until_eof(reader))
    while not reading.done():
        writer.write(b"\x81\x01x")
        await writer.drain()
        await asyncio.sleep(0.001)


async def ping_flood(reader, writer):
    for _ in range(int(sys.argv[2])):
        writer.write(b"\x89\x00")
        if writer.transport.get_write_buffer_size() > 1 << 20:
            await writer.drain()
    await writer.drain()
    print("SENT", flush=True)
    await asyncio.sleep(3600)


async def empty_continuations(reader, writer):
    reading = asyncio.ensure_future(drain_until_eof(reader))
    writer.write(b"\x01\x01x")
    chunk = b"\x00\x00" * 32768
    while not reading.done():
        writer.write(chunk)
        await writer.drain()


async def partial(reader, writer):
    size = int(sys.argv[2])
    writer.write(b"\x82\x7f" + size.to_bytes(8, "big") + b"a" * (size - 1))
    await writer.drain()
    await drain_until_eof(reader)


async def stuck_then_bad(reader, writer):
    for _ in range(int(sys.argv[2])):
        writer.write(b"\x89\x00")
        if writer.transport.get_write_buffer_size() > 1 << 20:
            await writer.drain()
    writer.write(b"\x83\x00")  # opcode 3 is reserved: the client fails the connection
    while True:
        writer.write(b"\x89\x00")
        await writer.drain()
        await asyncio.sleep(0.1)


async def picows_echo():
    from picows import WSListener, WSMsgType, ws_create_server

    class Echo(WSListener):
        def on_ws_frame(self, transport, frame):
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
                transport.send(frame.msg_type, frame.get_payload_as_bytes(), frame.fin)

    server = await ws_create_server(lambda _: Echo(), "127.0.0.1", 0)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main():
    mode = sys.argv[1]
    if mode == "picows-echo":
        asyncio.run(picows_echo())
    elif mode in ("wss-echo", "wss-echo-tls12"):
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        if mode == "wss-echo-tls12":
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        asyncio.run(websockets_server(echo, ssl=context))
    elif mode in ("deflate-echo", "deflate-nct", "deflate-small"):
        asyncio.run(websockets_server(deflate_echo, extensions=deflate_factory(mode)))
    elif mode == "deflate-bomb":
        bomb_payload()
        asyncio.run(raw_server(deflate_bomb, b"permessage-deflate; server_no_context_takeover"))
    elif mode in ("ignore-close", "ping-flood", "empty-continuations", "partial", "stuck-then-bad"):
        handler = {
            "ignore-close": ignore_close, "ping-flood": ping_flood, "empty-continuations": empty_continuations,
            "partial": partial, "stuck-then-bad": stuck_then_bad,
        }
        asyncio.run(raw_server(handler[mode]))
    else:
        handler = {"echo": echo, "echo-log": echo_log, "flood": flood, "say-close": say_close, "silent": silent}[mode]
        asyncio.run(websockets_server(handler))


if __name__ == "__main__":
    main()
