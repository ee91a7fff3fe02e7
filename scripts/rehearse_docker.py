#!/usr/bin/env python3
"""Rehearse the Dockerfile where no container engine runs: its steps, on this machine, as literally as possible.

    python3 scripts/rehearse_docker.py [--work DIR] [--port N] [--postgres] [--keep]

1. Structural checks of Dockerfile and .dockerignore (base image, non-root user, port, health check, no secrets).
2. The build stage, step by step: its ARG/ENV/WORKDIR/COPY/RUN lines are executed in a fresh venv under --work,
   with the image's paths (/opt/venv, /src, ...) mapped into it. The one deliberate change: when the PyTorch CPU
   index cannot be reached, the torch step's `--index-url` is dropped and pip takes the same versions from its
   configured index (then the torch build may not be the +cpu one; the summary prints which it got).
3. The runtime stage: its ENV, as its USER's uid (when run as root), a read-only models folder holding a freshly
   trained demo run, the exact ENTRYPOINT + CMD (paths and port mapped), MEDCLASS_API_KEY from the environment.
   Then: /health polled until 200, the HEALTHCHECK command, POST /predict without and with the key, `medclass log`
   on the audit file, SIGTERM (as `docker stop`); with --postgres, the same against a throwaway PostgreSQL whose
   password comes from PGPASSWORD (needs initdb/pg_ctl on PATH).
4. Shared libraries the installed wheels load from the OS, with their Debian packages: what the slim base must have.

Standard library only; run it with any python3 >= 3.10. Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS: list[tuple[str, bool, str]] = []
TIMES: dict[str, float] = {}


def check(name: str, ok: bool, detail: str = "") -> bool:
    RESULTS.append((name, bool(ok), detail))
    print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""), flush=True)
    return ok


def timed(label: str, fn, *args, **kwargs):
    start = time.monotonic()
    try:
        return fn(*args, **kwargs)
    finally:
        TIMES[label] = time.monotonic() - start
        print(f"  ({label}: {TIMES[label]:.1f} s)", flush=True)


# ---- the Dockerfile as (instruction, argument) pairs per stage

def parse_dockerfile(path: Path) -> list[list[tuple[str, str]]]:
    """Stages, each a list of (INSTRUCTION, rest); continuation lines joined, comments dropped."""
    stages: list[list[tuple[str, str]]] = [[]]  # stage 0: ARGs before the first FROM
    logical = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        logical += line.rstrip()
        if logical.endswith("\\"):
            logical = logical[:-1] + " "
            continue
        if logical.strip():
            word, _, rest = logical.strip().partition(" ")
            if word.upper() == "FROM":
                stages.append([])
            stages[-1].append((word.upper(), rest.strip()))
        logical = ""
    return stages


def expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), text)


def assignments(rest: str) -> dict[str, str]:
    """ENV/ARG `a=1 b="2"` (or the old `ENV a 1`)."""
    words = shlex.split(rest)
    if len(words) >= 2 and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) if "=" in w else (w, "") for w in words)


def structural_checks(stages) -> None:
    header, *build, final = stages
    args = {k: v for kind, rest in header if kind == "ARG" for k, v in assignments(rest).items()}
    base = expand(final[0][1].split()[0], args)
    check("base image python:3.11-slim", base == "python:3.11-slim", base)
    check("multi-stage: the runtime copies only the venv", any(k == "COPY" and "--from=" in r for k, r in final))
    users = [r for k, r in final if k == "USER"]
    check("runs as a non-root user", bool(users) and users[-1] not in ("root", "0"), ", ".join(users))
    check("EXPOSE 8000", any(k == "EXPOSE" and "8000" in r.split() for k, r in final))
    check("VOLUME /data", any(k == "VOLUME" and "/data" in r for k, r in final))
    health = [r for k, r in final if k == "HEALTHCHECK"]
    check("HEALTHCHECK asks /health with python", bool(health) and "python" in health[0] and "/health" in health[0])
    command = exec_form(final, "ENTRYPOINT") + exec_form(final, "CMD")
    wanted = "medclass serve --models-dir /models --host 0.0.0.0 --port 8000"
    check("ENTRYPOINT + CMD", " ".join(command) == wanted, " ".join(command))
    audit = {k: v for kind, rest in final if kind == "ENV" for k, v in assignments(rest).items()}
    check("audit log on the data volume (MEDCLASS_AUDIT_DB)", audit.get("MEDCLASS_AUDIT_DB") == "/data/audit.sqlite",
          audit.get("MEDCLASS_AUDIT_DB", "unset"))
    names = [k for stage in stages for kind, rest in stage if kind in ("ENV", "ARG") for k in assignments(rest)]
    secret = [n for n in names if re.search(r"KEY|SECRET|PASSWORD|TOKEN", n, re.I)]
    check("no secret baked in (ENV/ARG names)", not secret, ", ".join(secret))
    build_args = {k for stage in build for kind, rest in stage if kind == "ARG" for k in assignments(rest)}
    check("build args for the torch version", {"TORCH_VERSION", "TORCHVISION_VERSION"} <= build_args)
    threads = {k for kind, rest in final if kind == "ENV" for k in assignments(rest)}
    check("thread env set", "OMP_NUM_THREADS" in threads)
    ignore = (REPO / ".dockerignore").read_text().split()
    check(".dockerignore allow-list (starts with *)", ignore[:1] == ["*"] or "*" in ignore)


def exec_form(stage, instruction: str) -> list[str]:
    found = [r for k, r in stage if k == instruction]
    return json.loads(found[-1]) if found else []


# ---- build stage

def run_build(stage, header_args, work: Path, mapping: dict[str, str], index_reachable: bool,
              overrides: dict[str, str], python: str) -> dict[str, str]:
    # `python` of the base image: a given interpreter (its files must be readable by the image's uid later)
    (work / "bin").mkdir(exist_ok=True)
    (work / "bin" / "python").symlink_to(python)
    env = dict(os.environ, PATH=f"{work / 'bin'}:{os.environ['PATH']}")
    env.update(header_args)
    cwd = work
    for kind, rest in stage[1:]:
        rest = mapped(rest, mapping)
        if kind == "ARG":
            env.update({k: overrides.get(k, v) for k, v in assignments(rest).items()})
        elif kind == "ENV":
            env.update({k: expand(v, env) for k, v in assignments(rest).items()})
        elif kind == "WORKDIR":
            cwd = Path(expand(rest, env))
            cwd.mkdir(parents=True, exist_ok=True)
        elif kind == "COPY":
            *sources, target = shlex.split(rest)
            for source in sources:
                destination = (cwd / target / Path(source).name) if target.endswith("/") else cwd / target
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, destination, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
                else:
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / source, destination)
        elif kind == "RUN":
            if "--index-url" in rest and not index_reachable:
                rest = re.sub(r'--index-url\s+"?\$\{?TORCH_INDEX_URL\}?"?\s*', "", rest)
                print("  the CPU index is unreachable here: --index-url dropped, pip's configured index used")
            print(f"  RUN {rest}", flush=True)
            label = ("pip install torch" if "torch==" in rest else "pip install .[serve]") if "pip install" in rest \
                else f"RUN {rest[:40]}"
            done = timed(label, subprocess.run, ["sh", "-c", rest], cwd=cwd, env=env)
            if not check(f"build RUN {rest[:70]}", done.returncode == 0, f"exit {done.returncode}"):
                raise SystemExit(summary(work))
    return env


def mapped(text: str, mapping: dict[str, str]) -> str:
    for image_path, here in mapping.items():
        text = re.sub(rf"(?<![\w./]){re.escape(image_path)}(?![\w-])", here, text)
    return text


# ---- runtime stage

def runtime_env(stage, build_env: dict[str, str], mapping: dict[str, str]) -> dict[str, str]:
    # The image's environment: the base image's (approximated by this shell's PATH, LANG) plus the stage's ENV.
    env = {k: build_env[k] for k in ("LANG", "TZ") if k in build_env}
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the base image's
    for kind, rest in stage:
        if kind == "ENV":
            env.update({k: expand(v, env) for k, v in assignments(mapped(rest, mapping)).items()})
    return env


def as_user(stage) -> list[str]:
    """setpriv prefix running a command with the image's uid/gid, when this script runs as root."""
    uid = next((m.group(1) for k, r in stage if k == "RUN" for m in [re.search(r"--uid (\d+)", r)] if m), None)
    if os.geteuid() != 0 or uid is None or not shutil.which("setpriv"):
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout=30):
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, b""


def multipart(path: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def serve_and_probe(label: str, command: list[str], env: dict, cwd: Path, port: int, health_cmd: list[str],
                    image: Path, key: str, user: list[str], log_cmd: list[str]) -> None:
    base = f"http://127.0.0.1:{port}"
    print(f"  $ {' '.join(user + command)}", flush=True)
    log_file = open(cwd.parent / f"serve-{label}.log", "w")
    started = time.monotonic()
    server = subprocess.Popen(user + command, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        codes = []
        while time.monotonic() - started < 180 and server.poll() is None:
            status, body = http("GET", f"{base}/health", timeout=5)
            if not codes or codes[-1] != status:
                codes.append(status)
            if status == 200:
                break
            time.sleep(0.25)
        ready = time.monotonic() - started
        TIMES[f"{label}: start to /health 200"] = ready
        check(f"{label}: /health 200", status == 200,
              f"after {ready:.1f} s; statuses seen {codes}; {body.decode(errors='replace')[:200]}")
        health = subprocess.run(user + health_cmd, env=env, cwd=cwd, capture_output=True, text=True)
        check(f"{label}: HEALTHCHECK command exits 0", health.returncode == 0, health.stderr.strip()[-200:])
        pages = [http("GET", f"{base}{path}") for path in ("/", "/page/page.js", "/page/page.css")]
        check(f"{label}: the web page and its assets are in the installed package",
              all(status == 200 for status, _ in pages), f"statuses {[status for status, _ in pages]}")
        body, content_type = multipart(image)
        status, _ = http("POST", f"{base}/predict", body, {"Content-Type": content_type})
        check(f"{label}: POST /predict without X-API-Key refused", status == 401, f"status {status}")
        start = time.monotonic()
        status, answer = http("POST", f"{base}/predict", body, {"Content-Type": content_type, "X-API-Key": key})
        TIMES[f"{label}: one /predict"] = time.monotonic() - start
        ok = status == 200 and "tasks" in json.loads(answer or b"{}")
        check(f"{label}: POST /predict with the key", ok, f"status {status}: {answer.decode(errors='replace')[:300]}")
        logged = subprocess.run(user + log_cmd, env=env, cwd=cwd, capture_output=True, text=True)
        check(f"{label}: `medclass log` shows the prediction", "1 prediction(s)" in logged.stdout,
              " | ".join((logged.stdout + logged.stderr).strip().splitlines()[-2:]))
    finally:
        server.send_signal(signal.SIGTERM)  # what `docker stop` sends first
        try:
            code = server.wait(timeout=10)
            log_file.flush()
            # uvicorn shuts down gracefully, then re-raises the signal: exit -15 is the normal end
            graceful = "Finished server process" in (cwd.parent / f"serve-{label}.log").read_text()
            check(f"{label}: SIGTERM stops the server gracefully", code in (0, -signal.SIGTERM) and graceful,
                  f"exit {code}, log {'says' if graceful else 'lacks'} 'Finished server process'")
        except subprocess.TimeoutExpired:
            server.kill()
            check(f"{label}: SIGTERM stops the server", False, "still running after 10 s: killed")
        log_file.close()


def postgres_url(work: Path, port: int) -> tuple[str, str]:
    """A throwaway PostgreSQL cluster with password login; returns its URL (no password in it) and the password.
    As root, it runs as `nobody`: PostgreSQL refuses root and needs a uid with a passwd entry."""
    password = secrets.token_hex(8)
    folder = work / "pg"
    folder.mkdir()
    (folder / "pass").write_text(password + "\n")
    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    if user:
        subprocess.run(["chown", "-R", "65534:65534", str(folder)], check=True)
    subprocess.run(user + ["initdb", "-D", str(folder / "db"), "-U", "medclass", "--auth=scram-sha-256",
                           f"--pwfile={folder / 'pass'}"], check=True, capture_output=True)
    subprocess.run(user + ["pg_ctl", "-D", str(folder / "db"), "-l", str(folder / "log"), "-w", "start", "-o",
                           f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"], check=True, capture_output=True)
    return f"postgresql+psycopg://medclass@127.0.0.1:{port}/postgres", password


def stop_postgres(work: Path) -> None:
    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    subprocess.run(user + ["pg_ctl", "-D", str(work / "pg" / "db"), "-m", "fast", "stop"], capture_output=True)


# Every native module medclass serve can reach (torch backend, ONNX backend, Grad-CAM overlays, DICOM, audit DB).
PROBE = ("import torch, torchvision, onnxruntime, cv2, scipy.ndimage, sklearn, PIL.Image, pydicom, psycopg, "
         "matplotlib.pyplot, sqlalchemy, uvicorn, medclass.serve; torch.nn.Conv2d(1, 1, 3)(torch.zeros(1, 1, 8, 8)); "
         "print(open('/proc/self/maps').read())")


def shared_libraries(python: Path, env: dict) -> dict[str, str]:
    """{library from outside the venv: its Debian package} that a process importing PROBE has mapped."""
    maps = subprocess.run([str(python), "-c", PROBE], env=env, capture_output=True, text=True)
    if not check("native modules import (probe)", maps.returncode == 0, maps.stderr.strip()[-300:]):
        return {}
    venv = str(python.parent.parent)
    found: dict[str, str] = {}
    mapped_files = {fields[5] for fields in map(str.split, maps.stdout.splitlines()) if len(fields) == 6}
    for library in sorted(f for f in mapped_files if ".so" in f):
        # the venv's own, and the stand-in interpreter's stdlib (the image has its own under /usr/local)
        if library.startswith(venv) or library in found or re.match(r"/usr/lib/python3", library):
            continue
        owner = ""
        for candidate in {library, os.path.realpath(library)}:  # usrmerge: dpkg may know /lib/... or /usr/lib/...
            for path in (candidate, candidate.replace("/usr/lib/", "/lib/", 1),
                         candidate.replace("/lib/", "/usr/lib/", 1)):
                owner = owner or subprocess.run(["dpkg", "-S", path], capture_output=True, text=True).stdout
        found[library] = owner.split(":")[0] if owner else "?"
    return found


# In every python:3.11-slim (Debian): the C/C++ runtimes and what CPython itself links.
SLIM_HAS = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libbz2-1.0", "liblzma5", "libffi8", "libssl3",
            "libssl3t64", "libsqlite3-0", "libexpat1", "libuuid1", "libtinfo6", "libncursesw6", "libreadline8",
            "libreadline8t64", "libzstd1", "libcrypt1", "libdb5.3", "libgdbm6", "libgdbm6t64", "libnsl2",
            "libtirpc3", "libtirpc3t64",
            "libfribidi0"}  # not in slim, but optional: Pillow dlopens it for complex text layout when present


def summary(work: Path) -> int:
    failed = [name for name, ok, _ in RESULTS if not ok]
    lines = [f"rehearsal in {work}: {len(RESULTS) - len(failed)}/{len(RESULTS)} checks passed"]
    lines += [f"  {label}: {seconds:.1f} s" for label, seconds in TIMES.items()]
    lines += [f"  FAILED: {name}" for name in failed]
    text = "\n".join(lines)
    print("\n" + text)
    (work / "summary.txt").write_text(text + "\n" + "\n".join(f"{'PASS' if ok else 'FAIL'} {n}: {d}"
                                                              for n, ok, d in RESULTS) + "\n")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="Folder for the venv, runs and logs (default: a new /tmp one).")
    parser.add_argument("--port", type=int, default=18000, help="Port instead of the image's 8000 (default 18000).")
    parser.add_argument("--postgres", action="store_true", help="Also serve with a throwaway PostgreSQL audit DB.")
    parser.add_argument("--keep", action="store_true", help="Keep --work (default: delete the venv at the end).")
    parser.add_argument("--structure-only", action="store_true", help="Only step 1 (seconds, no install).")
    parser.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE",
                        help="As docker build's, e.g. TORCH_VERSION=2.13.0 (with TORCHVISION_VERSION).")
    parser.add_argument("--python", default="/usr/bin/python3" if Path("/usr/bin/python3").exists() else
                        sys.executable, help="Stands in for the base image's python (default /usr/bin/python3).")
    options = parser.parse_args()
    work = (options.work or Path(tempfile.mkdtemp(prefix="medclass-rehearsal-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)  # the server runs as the image's uid and must reach the venv
    print(f"rehearsal in {work}; Dockerfile of {REPO}", flush=True)

    print("\n== 1. structure", flush=True)
    stages = parse_dockerfile(REPO / "Dockerfile")
    structural_checks(stages)
    header, build, final = stages[0], stages[1], stages[-1]
    header_args = {k: v for kind, rest in header if kind == "ARG" for k, v in assignments(rest).items()}
    if options.structure_only:
        return summary(work)

    print("\n== 2. build stage, in a fresh venv", flush=True)
    build_args = {k: v for kind, rest in build if kind == "ARG" for k, v in assignments(rest).items()}
    index = build_args.get("TORCH_INDEX_URL", "")
    reachable = bool(index) and http("GET", index, timeout=10)[0] == 200
    check("PyTorch CPU index reachable", True, f"{index}: {'yes' if reachable else 'no (noted, not a failure)'}")
    mapping = {"/opt/venv": str(work / "venv"), "/opt/torch-pins.txt": str(work / "torch-pins.txt"),
               "/src": str(work / "src"), "/models": str(work / "models"), "/data": str(work / "data"),
               "/tmp/matplotlib": str(work / "matplotlib"), "/home/medclass": str(work / "home")}
    overrides = dict(a.split("=", 1) for a in options.build_arg)
    build_env = run_build(build, header_args, work, mapping, reachable, overrides, options.python)
    venv_python = work / "venv" / "bin" / "python"
    versions = subprocess.run([str(venv_python), "-c", "import torch, torchvision, onnxruntime, fastapi, psycopg; "
                               "print(torch.__version__, torchvision.__version__, onnxruntime.__version__, "
                               "fastapi.__version__, psycopg.__version__)"], capture_output=True, text=True)
    check("installed: torch torchvision onnxruntime fastapi psycopg", versions.returncode == 0,
          (versions.stdout or versions.stderr).strip()[-200:])
    editable = list((work / "venv").rglob("__editable__*medclass*"))
    check("medclass installed non-editable", not editable)

    print("\n== 3. runtime stage", flush=True)
    env = runtime_env(final, build_env, mapping)
    user = as_user(final)
    uid = user[1].split("=")[1] if user else str(os.getuid())
    for folder in ("data", "home", "matplotlib"):
        (work / folder).mkdir(exist_ok=True)
        if user:
            os.chown(work / folder, int(uid), int(uid))
    env["HOME"] = str(work / "home")
    demo = work / "demo"
    demo_env = dict(env, HOME=str(work / "demo-home"), MPLCONFIGDIR=str(work / "demo-home"))
    done = timed("train a demo run (2 epochs)", subprocess.run, [str(work / "venv/bin/medclass"), "demo", "--out",
                 str(demo), "--epochs", "2", "--n-per-class", "40"], env=demo_env, capture_output=True, text=True)
    check("demo run trained with the installed CLI", done.returncode == 0, done.stderr.strip()[-300:])
    models = work / "models"
    shutil.copytree(demo / "run", models / "demo")
    subprocess.run(["chmod", "-R", "a-w", str(models)], check=True)  # as a :ro mount, for the non-root server
    image = sorted((demo / "data").rglob("*.png"))[0]
    key = secrets.token_hex(16)
    env["MEDCLASS_API_KEY"] = key
    port = options.port

    def image_command(words: list[str]) -> list[str]:
        return [mapped(w, mapping).replace("8000", str(port)) for w in words]

    command = image_command(exec_form(final, "ENTRYPOINT") + exec_form(final, "CMD"))
    health_cmd = image_command(json.loads(
        re.search(r"CMD\s+(\[.*\])", next(r for k, r in final if k == "HEALTHCHECK")).group(1)))
    log_cmd = image_command(exec_form(final, "ENTRYPOINT") + ["log", "/data/audit.sqlite"])
    cwd = Path(mapped(next(r for k, r in reversed(final) if k == "WORKDIR"), mapping))
    print(f"  as uid {uid}; threads {env.get('OMP_NUM_THREADS')}; models read-only in {models}", flush=True)
    serve_and_probe("sqlite", command, env, cwd, port, health_cmd, image, key, user, log_cmd)
    check("audit file on the data volume", (work / "data" / "audit.sqlite").is_file())

    if options.postgres:
        print("\n== 3b. the same with a PostgreSQL audit DB (password from PGPASSWORD, not the URL)", flush=True)
        pg_port = port + 1
        try:
            url, password = postgres_url(work, pg_port)
            check("throwaway PostgreSQL started", True, url)
            pg_env = dict(env, PGPASSWORD=password, MEDCLASS_AUDIT_DB=url)  # as `docker run -e` would set it
            serve_and_probe("postgresql", command, pg_env, cwd, port, health_cmd, image, key, user,
                            log_cmd[:-1] + [url])
        except (subprocess.CalledProcessError, FileNotFoundError) as error:
            check("throwaway PostgreSQL started", False, str(error))
        finally:
            if (work / "pg" / "db").is_dir():
                stop_postgres(work)

    print("\n== 4. OS libraries loaded from outside the venv (the base image must provide them)", flush=True)
    libraries = timed("library probe", shared_libraries, work / "venv" / "bin" / "python", env)
    packages = sorted(set(libraries.values()))
    print("  packages:", " ".join(packages))
    extra = [p for p in packages if p not in SLIM_HAS]
    check("every such library comes from a package python:3.11-slim has", not extra,
          "beyond the slim set: " + " ".join(f"{p} ({', '.join(l for l, q in libraries.items() if q == p)})"
                                             for p in extra))
    status = summary(work)
    if not options.keep:
        subprocess.run(["chmod", "-R", "u+w", str(models)])
        shutil.rmtree(work / "venv", ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
