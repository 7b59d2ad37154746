"""Python clients for the benchmarks (bench/README.md). One process, one
asyncio loop (uvloop is not used: the libraries as people install them).

  echo_client.py picows|websockets PORT CONNS
      CONNS connections to ws://127.0.0.1:PORT/ that send back every message
      they receive, until the server goes away. With WSBENCH_PING_S set, each
      connection sends heartbeat pings that often (the idle scenario). With
      WSBENCH_COMPRESSION set (websockets only), each offers permessage-deflate:
      "nct" without context takeover either way (as wshostd's "on"),
      "takeover" with the library's default offer (context takeover).
  echo_client.py picows|websockets PORT CONNS connect [tls]
      The setup scenario: CONNS tasks, each connecting (wss when asked),
      waiting for the server's Close, and connecting again 100 ms later,
      until the server is gone.
"""
import asyncio
import os
import ssl
import sys

PING = float(os.environ.get("WSBENCH_PING_S", "0")) or None
COMPRESSION = os.environ.get("WSBENCH_COMPRESSION", "")


def websockets_compression():
    if not COMPRESSION:
        return {"compression": None}
    if COMPRESSION == "takeover":
        return {"compression": "deflate"}
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    factory = ClientPerMessageDeflateFactory(
        client_no_context_takeover=True, server_no_context_takeover=True, client_max_window_bits=True
    )
    return {"extensions": [factory], "compression": None}


def tls_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # loopback, the bench's own certificate
    return context


async def websockets_client(url, conns):
    from websockets.asyncio.client import connect

    async def one():
        # No open timeout: 15k handshakes at once take python-websockets longer
        # than its default 10 s, and a connection given up ends the idle run.
        options = websockets_compression()
        async with connect(url, max_size=None, ping_interval=PING, open_timeout=None, **options) as ws:
            async for message in ws:
                await ws.send(message)

    await asyncio.gather(*(one() for _ in range(conns)), return_exceptions=True)


async def websockets_connect(url, conns, context):
    from websockets.asyncio.client import connect

    async def one():
        while True:
            try:
                async with connect(url, compression=None, ping_interval=None, ssl=context) as ws:
                    async for _ in ws:
                        pass
            except ConnectionRefusedError:
                return
            except Exception:
                pass
            await asyncio.sleep(0.1)

    await asyncio.gather(*(one() for _ in range(conns)), return_exceptions=True)


async def picows_client(url, conns):
    from picows import WSListener, WSMsgType, ws_connect

    class Echo(WSListener):
        def on_ws_frame(self, transport, frame):
            if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
                transport.send(frame.msg_type, frame.get_payload_as_memoryview())
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()

    ping = {"enable_auto_ping": True, "auto_ping_idle_timeout": PING, "auto_ping_reply_timeout": PING} if PING else {}
    clients = [await ws_connect(Echo, url, max_frame_size=1 << 30, **ping) for _ in range(conns)]
    await asyncio.gather(*(transport.wait_disconnected() for transport, _ in clients), return_exceptions=True)


async def picows_connect(url, conns, context):
    from picows import WSListener, WSMsgType, ws_connect

    class Closer(WSListener):
        def on_ws_frame(self, transport, frame):
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    async def one():
        while True:
            try:
                transport, _ = await ws_connect(Closer, url, ssl_context=context)
                await transport.wait_disconnected()
            except ConnectionRefusedError:
                return
            except Exception:
                pass
            await asyncio.sleep(0.1)

    await asyncio.gather(*(one() for _ in range(conns)), return_exceptions=True)


def main():
    kind, port, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    connect_mode = len(sys.argv) > 4 and sys.argv[4] == "connect"
    secure = len(sys.argv) > 5 and sys.argv[5] == "tls"
    url = f"{'wss' if secure else 'ws'}://127.0.0.1:{port}/"
    if connect_mode:
        client = {"picows": picows_connect, "websockets": websockets_connect}[kind]
        run = client(url, conns, tls_context() if secure else None)
    else:
        run = {"picows": picows_client, "websockets": websockets_client}[kind](url, conns)
    try:
        asyncio.run(run)
    except (ConnectionError, OSError):
        pass


if __name__ == "__main__":
    main()
