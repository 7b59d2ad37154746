"""Echo clients for the benchmarks (bench/README.md): CONNS connections to
ws://127.0.0.1:PORT/ that send back every message they receive, until the
server goes away. One process, one asyncio loop (uvloop is not used: the
libraries as people install them).

usage: echo_client.py picows|websockets PORT CONNS
"""
import asyncio
import sys


async def websockets_client(url, conns):
    from websockets.asyncio.client import connect

    async def one():
        async with connect(url, max_size=None, compression=None, ping_interval=None) as ws:
            async for message in ws:
                await ws.send(message)

    await asyncio.gather(*(one() for _ in range(conns)), return_exceptions=True)


async def picows_client(url, conns):
    from picows import WSListener, WSMsgType, ws_connect

    class Echo(WSListener):
        def on_ws_frame(self, transport, frame):
            if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
                transport.send(frame.msg_type, frame.get_payload_as_memoryview())
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()

    clients = [await ws_connect(Echo, url, max_frame_size=1 << 30) for _ in range(conns)]
    await asyncio.gather(*(transport.wait_disconnected() for transport, _ in clients), return_exceptions=True)


def main():
    mode, port, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    url = f"ws://127.0.0.1:{port}/"
    client = {"picows": picows_client, "websockets": websockets_client}[mode]
    try:
        asyncio.run(client(url, conns))
    except (ConnectionError, OSError):
        pass


if __name__ == "__main__":
    main()
