"""WebSocket servers used as real peers by the end-to-end tests.

usage: ws_peer.py MODE   (listens on 127.0.0.1, an OS-chosen port; prints "PORT <n>")

modes:
  echo         python-websockets: echo every message
  say-close    python-websockets: send "last words", then close 1000 "done" at once
  silent       python-websockets: complete the handshake, then never send anything
  picows-echo  picows: echo every frame
  wss-echo CERT KEY   python-websockets over TLS: echo every message
  echo-log     python-websockets: echo, and print "CLOSED <code>" when a connection ends
  flood N      python-websockets: send N one-byte text messages as fast as it can, then close 1000;
               print "RCVD <code>" with the code of the client's Close
"""
import asyncio
import sys


async def websockets_server(handler, ssl=None):
    from websockets.asyncio.server import serve

    async with serve(handler, "127.0.0.1", 0, ping_interval=None, max_size=None, ssl=ssl) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.Future()


async def echo(ws):
    async for message in ws:
        await ws.send(message)


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
    elif mode == "wss-echo":
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        asyncio.run(websockets_server(echo, ssl=context))
    else:
        handler = {"echo": echo, "echo-log": echo_log, "flood": flood, "say-close": say_close, "silent": silent}[mode]
        asyncio.run(websockets_server(handler))


if __name__ == "__main__":
    main()
