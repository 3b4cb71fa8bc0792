"""The latency benchmark's load generator finishes on time against a server that never answers."""

from __future__ import annotations

import asyncio
import time

from factories import load_benchmark


def _load_generator():
    return load_benchmark("serving_latency")


def test_a_rate_beyond_capacity_ends_with_timeouts_and_drops():
    bench = _load_generator()

    async def scenario() -> tuple[dict, dict, float]:
        async def silent(reader, writer):  # reads the request, never answers
            await reader.read(1 << 16)
            await asyncio.sleep(60)

        async def answering(reader, writer):
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

        stuck = await asyncio.start_server(silent, "127.0.0.1", 0)
        fine = await asyncio.start_server(answering, "127.0.0.1", 0)
        users, items = ["u1", "u 2"], ["i1"]
        t0 = time.monotonic()
        conns = bench.Connections("127.0.0.1", stuck.sockets[0].getsockname()[1])
        hung = await bench.load(conns, users, items, 200, 1.0, 20, 0.0, 0, timeout=0.5, max_outstanding=30)
        took = time.monotonic() - t0
        conns.close()
        conns = bench.Connections("127.0.0.1", fine.sockets[0].getsockname()[1])
        ok = await bench.load(conns, users, items, 100, 0.5, 20, 0.5, 0, timeout=0.5)
        conns.close()
        stuck.close()
        fine.close()
        return hung, ok, took

    hung, ok, took = asyncio.run(scenario())
    assert took < 1.0 + 0.2 + 0.5 + 1.0 + 0.5  # duration + start + timeout + guard, with slack
    assert hung["requests"] == 200 and hung["ok"] == 0
    assert hung["timed_out"] + hung["dropped"] + hung["errors"] == 200 and hung["dropped"] > 0
    assert hung["p50_ms"] == ">500"
    assert ok["ok"] == ok["requests"] == 50 and ok["errors"] == ok["timed_out"] == ok["dropped"] == 0
    assert isinstance(ok["p99_ms"], float)
