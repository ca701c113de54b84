"""``python -m benchmarks.serve_load <checkpoint>``: requests per second and latency of ``python -m src.serve`` under
load, for ``max_batch_size`` 1 and 32.

Method: for each batch size, one server (``python -m src.serve``, on the CPU unless ``--accelerator``) on loopback;
``--clients`` threads of this process each post PNGs of real MNIST test digits (cycling through 64 of them) over one
kept-alive connection, one request at a time, for ``--seconds`` after a 2-second warm-up. Every answer's status is
counted (an error is anything but 200 or a wrong-length answer); latency is each request's round trip as the client
sees it; p50 and p99 over all requests of the timed window. The clients share the machine with the server: on a
2-core CPU they take part of it, so the figures are what one machine serving itself does.
"""

import argparse
import http.client
import io
import json
import os
import platform
import threading
import time

import numpy as np
from PIL import Image
from torchvision.datasets import MNIST

from tests.serving import REPO, Server


def digits_as_png(count: int = 64) -> list[bytes]:
    images = MNIST(str(REPO / "data"), train=False).data[:count].numpy()
    pngs = []
    for pixels in images:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    return pngs


def load(port: int, bodies: list[bytes], clients: int, seconds: float, warmup: float = 2.0) -> dict:
    """``clients`` threads posting for ``warmup + seconds``; the timed window's latencies and errors."""
    started = time.perf_counter()
    window = (started + warmup, started + warmup + seconds)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        index = number
        while (now := time.perf_counter()) < window[1]:
            connection.request("POST", "/predict", bodies[index % len(bodies)], {"Content-Type": "image/png"})
            answer = connection.getresponse()
            body = answer.read()
            took = time.perf_counter() - now
            ok = answer.status == 200 and len(json.loads(body)["probabilities"]) == 10
            if now >= window[0]:
                with lock:
                    latencies.append(took)
                    errors[0] += not ok
            index += clients
        connection.close()

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    milliseconds = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50": float(np.percentile(milliseconds, 50)),
        "p99": float(np.percentile(milliseconds, 99)),
        "errors": errors[0],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--batch-timeout", type=float, default=0.005)
    parser.add_argument("--accelerator", default="cpu")
    arguments = parser.parse_args(argv)
    bodies = digits_as_png()
    rows = []
    for size in arguments.batch_sizes:
        settings = [f"max_batch_size={size}", f"batch_timeout={arguments.batch_timeout}", f"accelerator={arguments.accelerator}"]
        server = Server(REPO, f"ckpt_path={arguments.checkpoint}", *settings)
        try:
            rows.append({"max_batch_size": size} | load(server.port, bodies, arguments.clients, arguments.seconds))
        finally:
            server.stop()
    names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    machine = f"{names[0] if names else platform.machine()}, {os.cpu_count()} cores"
    window = f"{arguments.seconds:g} s timed after 2 s warm-up"
    print(f"machine: {machine}; {arguments.clients} clients, {window}, batch_timeout={arguments.batch_timeout:g}, ", end="")
    print(f"accelerator={arguments.accelerator}")
    print("| max_batch_size | requests | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
    for row in rows:
        cells = [row["max_batch_size"], row["requests"], f"{row['rps']:.0f}", f"{row['p50']:.1f}", f"{row['p99']:.1f}"]
        print("| " + " | ".join(map(str, [*cells, row["errors"]])) + " |")
    return rows


if __name__ == "__main__":
    main()
