"""Serving under load: `medclass serve` on loopback with ResNet-18 at 224 px, 16 concurrent clients for 30 s,
beside one client alone on the same server in the same run.

Two server settings are measured, each in its own server process: one forward pass per request (`--max-batch 1`,
requests take turns at the network) and micro-batching (`--max-batch 16`: each forward takes every request
waiting). Every request is a real multipart upload of a 256 px PNG (8 different generated images), decoded,
predicted and written to the SQLite audit log. While the clients run, a probe asks /health every 0.2 s: its
latency shows whether the server stays responsive. A request fails on any answer but 200, or on any error.

    python benchmarks/serve_load.py [--clients 16] [--seconds 30] [--single-seconds 10] [--max-batch 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_speed import resnet18_run  # noqa: E402


def uploads(n: int = 8) -> list[bytes]:
    rng = np.random.default_rng(5)
    pictures = []
    for _ in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buffer, format="PNG")
        pictures.append(buffer.getvalue())
    return pictures


async def client_loop(client: httpx.AsyncClient, pictures: list[bytes], start: int, deadline: float,
                      latencies: list[float], failures: list[str]) -> None:
    k = start
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        try:
            response = await client.post("/predict", files={"file": ("scan.png", pictures[k % len(pictures)])})
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:200]}")
            else:
                latencies.append(time.perf_counter() - began)
        except httpx.HTTPError as exc:
            failures.append(f"{exc.__class__.__name__}: {exc}")
        k += 1


async def probe_health(client: httpx.AsyncClient, deadline: float, latencies: list[float]) -> None:
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        response = await client.get("/health")
        if response.status_code == 200:
            latencies.append(time.perf_counter() - began)
        await asyncio.sleep(0.2)


async def load(url: str, clients: int, seconds: float, pictures: list[bytes]) -> dict:
    latencies, failures, health = [], [], []
    limits = httpx.Limits(max_connections=clients + 1)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        before = (await client.get("/models")).json()["models"][0]["batching"]
        began = time.perf_counter()
        deadline = began + seconds
        await asyncio.gather(probe_health(client, deadline, health),
                             *(client_loop(client, pictures, i, deadline, latencies, failures)
                               for i in range(clients)))
        elapsed = time.perf_counter() - began
        after = (await client.get("/models")).json()["models"][0]["batching"]
    forwards = after["forwards"] - before["forwards"]
    ms = np.array(latencies) * 1000
    return {"clients": clients, "ok": len(latencies), "failed": len(failures), "first_failure": failures[:1],
            "per_s": len(latencies) / elapsed, "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
            "health_p99": float(np.percentile(np.array(health) * 1000, 99)) if health else float("nan"),
            "mean_batch": (after["images"] - before["images"]) / forwards if forwards else float("nan")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, max_batch: int, folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(folder / f"server-{max_batch}.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "medclass", "serve", str(model), "--port", str(port),
                               "--max-batch", str(max_batch), "--audit-db", str(folder / f"audit-{max_batch}.sqlite")],
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"medclass serve exited: {(folder / f'server-{max_batch}.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.terminate()
    raise RuntimeError("medclass serve was not healthy within 120 s")


def row(setting: str, result: dict) -> str:
    failed = f"**{result['failed']}** ({result['first_failure'][0]})" if result["failed"] else "0"
    return (f"| {setting} | {result['clients']} | {result['ok']} | {failed} | {result['per_s']:.1f} | "
            f"{result['p50']:.0f} | {result['p99']:.0f} | {result['health_p99']:.0f} | {result['mean_batch']:.1f} |")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--single-seconds", type=float, default=10)
    parser.add_argument("--max-batch", default="1,16", help="Server settings to compare, comma-separated.")
    args = parser.parse_args(argv)
    pictures = uploads()
    lines = [f"Serving under load on loopback: ResNet-18, 224 px, 256 px PNG uploads, {args.clients} clients for "
             f"{args.seconds:g} s vs 1 client for {args.single_seconds:g} s, same server process; /health probed "
             "every 0.2 s during each load", "",
             "| server | clients | requests | failed | requests/s | p50 ms | p99 ms | /health p99 ms | images per "
             "forward |", "|---|---|---|---|---|---|---|---|---|"]
    throughput = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = resnet18_run(folder / "resnet18") / "model.safetensors"
        for max_batch in map(int, args.max_batch.split(",")):
            server, url = start_server(model, max_batch, folder)
            setting = "one forward per request" if max_batch == 1 else f"micro-batching (max {max_batch})"
            try:
                asyncio.run(load(url, 1, 2, pictures))  # warm-up: first-call allocations and kernel choices
                for clients, seconds in ((1, args.single_seconds), (args.clients, args.seconds)):
                    result = asyncio.run(load(url, clients, seconds, pictures))
                    lines.append(row(setting, result))
                    print(lines[-1], flush=True)
                    throughput[setting, clients] = result["per_s"]
            finally:
                server.terminate()
                server.wait(timeout=30)
    settings = list(dict.fromkeys(setting for setting, _ in throughput))
    lines.append("")
    for setting in settings:
        lines.append(f"{setting}: {args.clients} clients reach {throughput[setting, args.clients]:.1f} requests/s, "
                     f"{throughput[setting, args.clients] / throughput[setting, 1]:.2f}x one client alone")
    if len(settings) > 1:
        first, last = settings[0], settings[-1]
        lines.append(f"{last} vs {first} under load: "
                     f"{throughput[last, args.clients] / throughput[first, args.clients]:.2f}x requests/s")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
