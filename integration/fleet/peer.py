#!/usr/bin/env python3
"""A WebSocket server (the third-party `websockets` library) that records, per
object, which fleet host is connected: every open and close is one line of
`--log` ("<unix time> open|close <object> <host> <connection id>"). The object
is the URL's path, the host comes from the User-Agent wshostd sends in a fleet
("wshostd/0.2.0 (fleet host h1)"). Echoes what it receives, and records
each text message ("<time> msg <object> <host> <text without spaces>").

    peer.py --port N --log FILE
"""
import argparse
import asyncio
import itertools
import re
import time

from websockets.asyncio.server import serve

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--log", required=True)
args = parser.parse_args()

log = open(args.log, "a", buffering=1)
ids = itertools.count(1)
pattern = re.compile(r"\(fleet host ([^)]+)\)")


async def handler(connection):
    number = next(ids)
    agent = connection.request.headers.get("User-Agent", "")
    match = pattern.search(agent)
    host = match.group(1) if match else "-"
    obj = connection.request.path.strip("/") or "-"
    log.write(f"{time.time():.6f} open {obj} {host} {number}\n")
    try:
        async for message in connection:
            if isinstance(message, str):
                text = "".join(message.split())[:40] or "-"
                log.write(f"{time.time():.6f} msg {obj} {host} {text}\n")
            await connection.send(message)
    except Exception:
        pass
    finally:
        log.write(f"{time.time():.6f} close {obj} {host} {number}\n")


async def main():
    async with serve(handler, "127.0.0.1", args.port, ping_interval=None, max_queue=None):
        await asyncio.Future()


asyncio.run(main())
