"""Connect/close cycles against `adc sim serve`: how a Modbus TCP emulator takes a connect storm.

Starts the real entry point (`adc sim serve PROFILE --modbus-tcp 127.0.0.1:0`) in a subprocess,
then:
1. N plain TCP connect/close cycles, one after the other: total wall time and the slowest connect
   (targets: 1,000 cycles < 5 s, no connect > 100 ms);
2. a burst: B sockets connected at once from B threads (a client storm) while one healthy client
   times its own connects: slowest connect of either (a 5-deep listen backlog stalled 16 of 100
   connects for 1 s, dropped SYNs being retransmitted after a second);
3. N cycles of a Modbus client connect + one read + close through our driver's client.

Phases are 1 s apart: connections a client opened and closed stay in the server's accept queue
until it accepts them (~0.3 ms each: a thread per connection), and each phase starts on an empty
queue.

Run: .venv/bin/python bench/connect_cycles.py [--cycles 1000] [--burst 100] [--profile tcp-6drawer].
Prints its figures; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUS_LINE = re.compile(r"bus (\S+) \(modbus-tcp\): (\S+):(\d+)")


def serve(profile: str) -> tuple[subprocess.Popen[str], str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "adc", "sim", "serve", profile, "--modbus-tcp", "127.0.0.1:0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if match := BUS_LINE.search(line):
            return proc, match.group(2), int(match.group(3))
    proc.kill()
    raise SystemExit(
        f"adc sim serve did not say where it serves: {proc.stderr.read() if proc.stderr else ''}"
    )


def connect_ms(host: str, port: int) -> float:
    start = time.perf_counter()
    sock = socket.create_connection((host, port), timeout=5)
    took = (time.perf_counter() - start) * 1000
    sock.close()
    return took


def cycles(host: str, port: int, n: int) -> tuple[float, list[float]]:
    start = time.perf_counter()
    times = [connect_ms(host, port) for _ in range(n)]
    return time.perf_counter() - start, times


def burst(host: str, port: int, n: int) -> tuple[list[float], list[float]]:
    stormed: list[float] = []
    healthy: list[float] = []
    held: list[socket.socket] = []
    lock = threading.Lock()
    go = threading.Event()

    def storm() -> None:
        go.wait()
        start = time.perf_counter()
        sock = socket.create_connection((host, port), timeout=10)
        with lock:
            stormed.append((time.perf_counter() - start) * 1000)
            held.append(sock)

    threads = [threading.Thread(target=storm) for _ in range(n)]
    for thread in threads:
        thread.start()
    go.set()
    for _ in range(20):
        healthy.append(connect_ms(host, port))
    for thread in threads:
        thread.join()
    for sock in held:
        sock.close()
    return stormed, healthy


def modbus_cycles(host: str, port: int, n: int) -> tuple[float, list[float]]:
    from adc.drivers.modbus_client import ModbusClient, TcpEndpoint
    from adc.drivers.modbus_plan import Table

    times = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        client = ModbusClient("main", TcpEndpoint(host, port), timeout_s=1.0, retries=0)
        client.read("dio1", 1, Table.DISCRETE_INPUTS, 0, 8)
        client.close()
        times.append((time.perf_counter() - t0) * 1000)
    return time.perf_counter() - start, times


def show(label: str, times: list[float], total_s: float | None = None) -> None:
    p99 = statistics.quantiles(times, n=100)[98] if len(times) >= 100 else max(times)
    line = (
        f"{label:<34} n={len(times):<5} median {statistics.median(times):6.2f} ms  "
        f"p99 {p99:6.2f} ms  max {max(times):7.2f} ms"
    )
    if total_s is not None:
        line += f"  total {total_s:6.2f} s"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--profile", default="tcp-6drawer")
    args = parser.parse_args()
    proc, host, port = serve(args.profile)
    try:
        total, times = cycles(host, port, args.cycles)
        show("connect/close cycles", times, total)
        time.sleep(1.0)  # let the server accept (and drop) the closed connections still queued
        stormed, healthy = burst(host, port, args.burst)
        show(f"burst of {args.burst} concurrent connects", stormed)
        show("healthy client during the burst", healthy)
        time.sleep(1.0)
        total, times = modbus_cycles(host, port, min(args.cycles, 300))
        show("Modbus connect + read + close", times, total)
        print("targets: 1,000 cycles < 5 s; no connect > 100 ms")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
