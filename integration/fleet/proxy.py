#!/usr/bin/env python3
"""A TCP proxy between one fleet host and PostgreSQL that can cut the network
between them only: SIGUSR1 cuts (nothing is forwarded any more, in either
direction, and nothing is closed: packets vanish as on a cut cable; new
connections hang too), SIGUSR2 heals (the held connections are closed, new
ones are forwarded again).

    proxy.py --listen PORT --to PORT
"""
import argparse
import asyncio
import signal

parser = argparse.ArgumentParser()
parser.add_argument("--listen", type=int, required=True)
parser.add_argument("--to", type=int, required=True)
args = parser.parse_args()

cut = False
held = set()


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            while cut:
                await asyncio.sleep(0.05)  # a cut cable: the bytes go nowhere
            if (reader, writer) not in live:
                return
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


live = set()


async def handle(client_reader, client_writer):
    while cut:
        await asyncio.sleep(0.05)
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", args.to)
    except Exception:
        client_writer.close()
        return
    pair = [(client_reader, server_writer), (server_reader, client_writer)]
    for p in pair:
        live.add(p)
    held.add((client_writer, server_writer))
    await asyncio.gather(pipe(*pair[0]), pipe(*pair[1]))
    held.discard((client_writer, server_writer))


def on_cut():
    global cut
    cut = True


def on_heal():
    global cut
    # The connections that lived through the cut are closed (as a host
    # would find them once packets flow again: reset).
    for client_writer, server_writer in list(held):
        for w in (client_writer, server_writer):
            try:
                w.transport.abort()
            except Exception:
                pass
    held.clear()
    live.clear()
    cut = False


async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, on_cut)
    loop.add_signal_handler(signal.SIGUSR2, on_heal)
    server = await asyncio.start_server(handle, "127.0.0.1", args.listen)
    async with server:
        await server.serve_forever()


asyncio.run(main())
