"""Runs every fenced snippet of README.md and docs/*.md against real servers,
so the docs cannot drift from the code. Each block's language says how:

  redis-cli  a transcript: each `127.0.0.1:6379> CMD` is sent with redis-cli
             to a fresh server, HBLOCK_DOC_PAUSE seconds apart (default 5: a
             person typing), and the reply must match the lines below it
             (`# ...` comments are ignored; a `...` line skips the rest).
  sh         run with bash from the repository root, PORT and HBLOCK_REDIS_URL
             pointing at a test server, target/release on PATH; must exit 0.
             A line `make run` starts the server in the background (waits for
             it); `make test` is checked with `make -n` (this is that run).
  text       right after an `sh` block: lines that must appear, in order, in
             its output.
  rust       the first line names a file (`// client/examples/x.rs`): the
             block must be that file, which is run with cargo.
  python     the same (`# examples/python/x.py`); quickstart.py is run with
             Redis up, interrupted (release), and with Redis killed (it must
             stop before its lease can have ended).
  js         JavaScript (ES module) for the Node package (node/, built by
             `make node`): run with node from node/ (so `import "hblock"`
             and `import { Redis } from "ioredis"` resolve), HBLOCK_REDIS_URL
             pointing at a fresh server; must exit 0 within 30 s. A block
             whose first line names a file (`// examples/node/x.mjs`) must
             be that file, and is run as `python` examples are (Redis up,
             interrupted, Redis killed).
  ts         TypeScript for the Node package: compiled with node/'s tsc
             (strict, NodeNext; `await using` works) and run as a js block.
  conf       redis.conf lines: a server must start with them (the module path
             replaced by the built one) and serve HBLOCK.INFO.
  sentinel   sentinel.conf lines (`# path` first, that file's text): a Sentinel
             (SERVER_BIN --sentinel) started with them, the master port 6379
             replaced by a test server's, must name that server as the master.
  env        an environment file (`# /path/of/file` first): NAME=value lines
             of variables the CLI reads; a URL in it names no local host.
  ini        a systemd unit: `systemd-analyze verify` must accept it when that
             is installed (else a note is printed); it must want and follow
             network-online.target, count 143 (SIGTERM) as success, take the
             URL from an EnvironmentFile shown in an `env` block before it, not
             from ExecStart; and its ExecStart must run (`hblock run` with the
             command replaced by `true`, HBLOCK_REDIS_URL a test server's) and
             exit 0.
  syntax     a command's syntax diagram: the server must know the command.
  usage      `hblock ...` command lines: every subcommand and --flag they use
             must be in the CLI's --help.
  files      a layout: the path (or glob) starting each unindented line exists.
  layers     the module's layer diagram (docs/architecture.md): every file it
             names exists in src/, and every file of src/ is named (a
             `dir/*.rs`, `dir/<cmd>.rs` or `dir/` covers a directory).
  info       the INFO hblock fields: exactly the server's fields.

Any other block fails the run. Usage: python scripts/doc_snippets.py [FILE...]
"""

import fnmatch
import glob
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.environ.get("HBLOCK_MODULE", os.path.join(ROOT, "target/release/libhblock.so"))
SERVER = os.environ.get("SERVER_BIN", "redis-server")
PAUSE = float(os.environ.get("HBLOCK_DOC_PAUSE", "5"))
PYTHON = sys.executable


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port, timeout=10.0, proc=None):
    """True once a server answers on `port`; with `proc`, once that server is
    `proc` (INFO's process_id), not another that took the port first (ours
    then exits, and we stop looking)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if proc is None:
                out = subprocess.run(["redis-cli", "-p", str(port), "PING"],
                                     capture_output=True, text=True, timeout=2).stdout.strip()
                if out == "PONG":
                    return True
            else:
                out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "server"],
                                     capture_output=True, text=True, timeout=2).stdout
                if f"process_id:{proc.pid}\r" in out or f"process_id:{proc.pid}\n" in out:
                    return True
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.05)
    return False


class Server:
    """redis-server with the module on a free loopback port, in a temp dir."""

    def __init__(self, extra_conf=""):
        self.dir = tempfile.mkdtemp(prefix="hblock-doc-")
        # Another free port when ours was taken between free_port() and the
        # server's bind (it then exits).
        for _ in range(5):
            self.port = free_port()
            conf = os.path.join(self.dir, "redis.conf")
            with open(conf, "w") as f:
                f.write(extra_conf.replace("/path/to/libhblock.so", MODULE) + "\n")
                if "loadmodule" not in extra_conf:
                    f.write(f"loadmodule {MODULE}\n")
                f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nsave \"\"\n"
                        "logfile redis.log\nenable-debug-command yes\n")
            self.proc = subprocess.Popen([SERVER, conf], cwd=self.dir,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if ping(self.port, proc=self.proc):
                return
            self.stop()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def log(self):
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def blocks(path):
    """(language, first line number, text) of each fenced block."""
    out, lang, start, lines = [], None, 0, []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            fence = re.match(r"^```(\S*)\s*$", line)
            if fence and lang is None:
                lang, start, lines = fence.group(1), n, []
            elif line.rstrip() == "```" and lang is not None:
                out.append((lang, start, "".join(lines)))
                lang = None
            elif lang is not None:
                lines.append(line)
    return out


def strip_comment(line):
    return re.sub(r"\s+#.*$", "", line).rstrip()


def check_transcript(text):
    """Replays a redis-cli transcript against a fresh server."""
    steps, current = [], None
    for line in text.splitlines():
        m = re.match(r"^127\.0\.0\.1:6379> (.*)$", line)
        if m:
            current = (strip_comment(m.group(1)), [])
            steps.append(current)
        elif current is not None and line.strip():
            current[1].append(strip_comment(line))
    assert steps, "no commands in the transcript"
    with Server() as server:
        for i, (command, expected) in enumerate(steps):
            if i:
                time.sleep(PAUSE)
            got = subprocess.run(["redis-cli", "--no-raw", "-p", str(server.port)]
                                 + shlex.split(command), capture_output=True, text=True,
                                 timeout=30).stdout.rstrip("\n").split("\n")
            if "..." in expected:
                cut = expected.index("...")
                expected, got = expected[:cut], got[:cut]
            if [g.rstrip() for g in got] != expected:
                raise AssertionError(f"{command}: expected {expected}, got {got}")


def run_sh(text, expect=None):
    server = Server()
    env = dict(os.environ, PORT=str(server.port), HBLOCK_REDIS_URL=server.url,
               PATH=os.path.join(ROOT, "target/release") + ":" + os.environ["PATH"])
    background = []
    script = []
    try:
        for line in text.splitlines():
            cmd = strip_comment(line).strip()
            if cmd == "make run":
                # Another server, as a user's terminal would start it.
                port = free_port()
                background.append(subprocess.Popen(["make", "run", f"PORT={port}"], cwd=ROOT,
                                                   stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL,
                                                   start_new_session=True))
                assert ping(port, timeout=600), "make run did not start a server"
                out = subprocess.run(["redis-cli", "-p", str(port), "HBLOCK.INFO", "x"],
                                     capture_output=True, text=True).stdout
                assert "ERR" not in out, f"make run: no module: {out}"
            elif cmd == "make test":
                subprocess.run(["make", "-n", "test"], cwd=ROOT, check=True,
                               stdout=subprocess.DEVNULL)
            else:
                script.append(line)
        if script:
            proc = subprocess.run(["bash", "-e", "-c", "\n".join(script)], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=120)
            output = proc.stdout + proc.stderr
            assert proc.returncode == 0, f"exit {proc.returncode}:\n{output}"
            if expect:
                at = 0
                for want in expect:
                    found = output.find(want, at)
                    assert found >= 0, f"output lacks {want!r} (in order):\n{output}"
                    at = found + len(want)
    finally:
        for proc in background:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
        server.close()


def included_file(text, comment):
    first = text.splitlines()[0]
    m = re.match(rf"^{re.escape(comment)} ([^\s:]+)", first)
    assert m, f"the first line must name the file it shows ({comment} path)"
    path = os.path.join(ROOT, m.group(1))
    with open(path) as f:
        assert f.read() == text, f"the block differs from {m.group(1)}"
    return path


def check_rust(text):
    path = included_file(text, "//")
    name = os.path.splitext(os.path.basename(path))[0]
    with Server() as server:
        env = dict(os.environ, HBLOCK_REDIS_URL=server.url)
        proc = subprocess.run(["cargo", "run", "-q", "--release", "-p", "hblock-client",
                               "--example", name], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "leads with fencing token 1" in proc.stdout, proc.stdout
        info = subprocess.run(["redis-cli", "-p", str(server.port), "HBLOCK.INFO", "jobs:leader"],
                              capture_output=True, text=True).stdout
        assert "free" in info, f"not released: {info}"


def read_until(proc, needle, timeout):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"no {needle!r} within {timeout} s: {lines[-5:]}")


def check_python(text):
    check_example([PYTHON, included_file(text, "#")])


def check_example(argv, cwd=None):
    """An example program: with Redis up it leads ("working"), Ctrl-C
    releases ("released"); with Redis killed it stops ("stopped") before its
    lease (3 s) can have ended."""
    # Redis up: leads, works, and Ctrl-C releases.
    with Server() as server:
        env = dict(os.environ, HBLOCK_REDIS_URL=server.url, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True, cwd=cwd)
        read_until(proc, "working", 10)
        proc.send_signal(signal.SIGINT)
        read_until(proc, "released", 10)
        assert proc.wait(10) == 0
        info = subprocess.run(["redis-cli", "-p", str(server.port), "HBLOCK.INFO", "jobs:leader"],
                              capture_output=True, text=True).stdout
        assert "free" in info, f"not released: {info}"
        # Redis killed while it works: it stops before its lease can end.
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True, cwd=cwd)
        read_until(proc, "working", 10)
        killed = time.monotonic()
        server.stop()
        read_until(proc, "stopped", 10)
        took = time.monotonic() - killed
        assert took <= 3.0, f"worked {took:.2f} s after Redis died (lease 3 s)"
        proc.wait(10)


def check_python_script(text):
    """A self-contained script: runs against a fresh server
    (HBLOCK_REDIS_URL) and must exit 0 within 30 s."""
    with Server() as server:
        env = dict(os.environ, HBLOCK_REDIS_URL=server.url, PYTHONUNBUFFERED="1")
        proc = subprocess.run([PYTHON, "-c", text], env=env, capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 0, proc.stdout + proc.stderr


NODE_DIR = os.path.join(ROOT, "node")


def node_built():
    assert os.path.exists(os.path.join(NODE_DIR, "dist", "esm", "index.js")), \
        "node/ is not built: run make node"


def run_node_module(path):
    with Server() as server:
        env = dict(os.environ, HBLOCK_REDIS_URL=server.url)
        proc = subprocess.run(["node", path], env=env, capture_output=True, text=True, timeout=30,
                              cwd=NODE_DIR)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def check_js(text):
    node_built()
    if text.startswith("// examples/"):
        check_example(["node", included_file(text, "//")], cwd=NODE_DIR)
        return
    # A file inside node/, so that `import "hblock"` finds the package itself.
    where = tempfile.mkdtemp(prefix=".doc-", dir=NODE_DIR)
    try:
        path = os.path.join(where, "snippet.mjs")
        with open(path, "w") as f:
            f.write(text)
        run_node_module(path)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def check_ts(text):
    node_built()
    where = tempfile.mkdtemp(prefix=".doc-", dir=NODE_DIR)
    try:
        with open(os.path.join(where, "snippet.mts"), "w") as f:
            f.write(text)
        tsc = os.path.join(NODE_DIR, "node_modules", "typescript", "lib", "tsc.js")
        proc = subprocess.run(["node", tsc, "--strict", "--target", "es2022", "--module", "nodenext",
                               "--moduleResolution", "nodenext", "--lib", "es2022,esnext.disposable",
                               "--types", "node", "--skipLibCheck", "--rootDir", where, "--outDir", where,
                               os.path.join(where, "snippet.mts")],
                              capture_output=True, text=True, timeout=120, cwd=NODE_DIR)
        assert proc.returncode == 0, "tsc: " + proc.stdout + proc.stderr
        run_node_module(os.path.join(where, "snippet.mjs"))
    finally:
        shutil.rmtree(where, ignore_errors=True)


def check_conf(text):
    with Server(text):
        pass


def check_sentinel(text):
    included_file(text, "#")
    with Server() as master:
        where = tempfile.mkdtemp(prefix="hblock-doc-sentinel-")
        port = free_port()
        conf = os.path.join(where, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(text.replace("127.0.0.1 6379 ", f"127.0.0.1 {master.port} "))
            f.write(f"\nport {port}\nbind 127.0.0.1\ndir {where}\nlogfile sentinel.log\n")
        proc = subprocess.Popen([SERVER, conf, "--sentinel"], cwd=where,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert ping(port, proc=proc), "the Sentinel did not start"
            name = re.search(r"^sentinel monitor (\S+)", text, re.M)
            assert name, "no 'sentinel monitor' line"
            out = subprocess.run(["redis-cli", "-p", str(port), "SENTINEL",
                                  "GET-MASTER-ADDR-BY-NAME", name.group(1)],
                                 capture_output=True, text=True).stdout.split()
            assert out == ["127.0.0.1", str(master.port)], f"the Sentinel names {out}"
        finally:
            proc.kill()
            proc.wait()
            shutil.rmtree(where, ignore_errors=True)


# The files `env` blocks show, by path (a unit's EnvironmentFile must be one).
ENV_FILES = {}


def check_env(text):
    lines = text.splitlines()
    m = re.match(r"^# (/\S+)", lines[0] if lines else "")
    assert m, "the first line must be `# /path/of/the/file`"
    values = {}
    for line in lines[1:]:
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"not NAME=value: {line}"
        assert name in ("HBLOCK_REDIS_URL", "HBLOCK_OWNER"), f"the CLI does not read {name}"
        values[name] = value
    url = values.get("HBLOCK_REDIS_URL", "")
    assert not re.search(r"@?(127\.0\.0\.1|localhost|\[::1\])[:/]?", url), \
        f"a local Redis in the shared environment file: {url}"
    ENV_FILES[m.group(1)] = values


def verify_unit(text, argv):
    """systemd-analyze verify, the ExecStart program replaced by the built one
    (verify wants it executable); any complaint about the unit fails."""
    tool = shutil.which("systemd-analyze")
    if not tool:
        print("note: systemd-analyze not installed; the unit's syntax is not verified",
              flush=True)
        return
    hblock = os.path.join(ROOT, "target/release/hblock")
    where = tempfile.mkdtemp(prefix="hblock-unit-")
    try:
        path = os.path.join(where, "hblock-doc-unit.service")
        with open(path, "w") as f:
            f.write(text.replace(f"ExecStart={argv[0]}", f"ExecStart={hblock}", 1))
        proc = subprocess.run([tool, "verify", "--man=no", path], capture_output=True,
                              text=True, timeout=60)
        said = [l for l in (proc.stdout + proc.stderr).splitlines()
                if "hblock-doc-unit" in l]
        assert proc.returncode == 0 and not said, \
            f"systemd-analyze verify: {proc.stdout}{proc.stderr}"
    finally:
        shutil.rmtree(where, ignore_errors=True)


def check_unit(text):
    def values(name):
        return re.findall(rf"^{name}=(.*)$", text, re.M)

    m = re.search(r"^ExecStart=(.*)$", text, re.M)
    assert m, "no ExecStart"
    argv = shlex.split(m.group(1))
    assert os.path.basename(argv[0]) == "hblock" and argv[1] == "run", argv
    assert "network-online.target" in " ".join(values("Wants")), "no Wants=network-online.target"
    assert "network-online.target" in " ".join(values("After")), "no After=network-online.target"
    assert "143" in " ".join(values("SuccessExitStatus")).split(), "no SuccessExitStatus=143"
    cut = argv.index("--")
    assert not any("://" in a or a.startswith("--redis") for a in argv[:cut]), \
        "a URL in ExecStart: ps shows it (and its password); use the EnvironmentFile"
    files = [f.lstrip("-") for f in values("EnvironmentFile")]
    assert files and all(f in ENV_FILES for f in files), \
        f"EnvironmentFile {files} is not shown in an `env` block before the unit"
    assert all("HBLOCK_REDIS_URL" in ENV_FILES[f] for f in files[:1]), "no HBLOCK_REDIS_URL"
    verify_unit(text, argv)
    with Server() as server:
        argv = [os.path.join(ROOT, "target/release/hblock")] + argv[1:cut] + ["--", "true"]
        env = dict(os.environ, HBLOCK_REDIS_URL=server.url)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
        assert proc.returncode == 0, proc.stderr


def check_syntax(text):
    command = text.split()[0]
    with Server() as server:
        out = subprocess.run(["redis-cli", "-p", str(server.port), "COMMAND", "INFO", command],
                             capture_output=True, text=True).stdout
        assert command.lower() in out.lower(), f"unknown command {command}"


def check_usage(text):
    hblock = os.path.join(ROOT, "target/release/hblock")
    helps = {None: subprocess.run([hblock, "--help"], capture_output=True, text=True).stdout}
    # The subcommands `hblock --help` lists (its "Commands:" lines).
    listed = helps[None].split("Commands:")[-1].split("Options:")[0]
    subcommands = set(re.findall(r"^  ([a-z][a-z-]*) ", listed, re.M)) - {"help"}
    for line in text.splitlines():
        words = shlex.split(strip_comment(line))
        if not words:
            continue
        assert words[0] == "hblock", f"not an hblock command line: {line}"
        sub = next((w for w in words[1:] if not w.startswith("-") and w in subcommands), None)
        if sub not in helps:
            proc = subprocess.run([hblock, sub, "--help"], capture_output=True, text=True)
            assert proc.returncode == 0, f"hblock {sub} --help failed"
            helps[sub] = proc.stdout
        words = words[:words.index("--")] if "--" in words else words
        for flag in re.findall(r"(--[a-z][a-z-]*)", " ".join(words)):
            assert flag in helps[sub] or flag in helps[None], f"{flag} is not an option of {sub}"


def check_files(text):
    for line in text.splitlines():
        if not line.strip() or line[0].isspace():
            continue
        for path in re.split(r",\s*", line.split("  ")[0].strip()):
            assert glob.glob(os.path.join(ROOT, path)), f"{path} does not exist"


def check_layers(text):
    src = os.path.join(ROOT, "src")
    named = []
    for token in re.findall(r"[A-Za-z_<>*][A-Za-z0-9_<>*/]*(?:\.rs|/)(?=\s|$)", text):
        pattern = token.replace("<cmd>", "*")
        if pattern.endswith("/"):
            pattern += "*"
        assert glob.glob(os.path.join(src, pattern)), f"src/{token} does not exist"
        named.append(pattern)
    for path in glob.glob(os.path.join(src, "**", "*.rs"), recursive=True):
        rel = os.path.relpath(path, src)
        assert any(fnmatch.fnmatch(rel, p) for p in named), f"src/{rel} is not in the diagram"


def check_info(text):
    documented = set(re.findall(r"^(hblock_\w+):", text, re.M))
    with Server() as server:
        out = subprocess.run(["redis-cli", "-p", str(server.port), "INFO", "hblock"],
                             capture_output=True, text=True).stdout
        real = set(re.findall(r"^(hblock_\w+):", out, re.M))
        assert documented == real, f"documented {sorted(documented)}, server {sorted(real)}"


# The checkers that need only the block itself (sh and text go together).
CHECKERS = {
    "redis-cli": check_transcript,
    "rust": check_rust,
    "python": check_python,
    "python-script": check_python_script,
    "js": check_js,
    "ts": check_ts,
    "conf": check_conf,
    "sentinel": check_sentinel,
    "env": check_env,
    "ini": check_unit,
    "syntax": check_syntax,
    "info": check_info,
    "usage": check_usage,
    "files": check_files,
    "layers": check_layers,
}


def main(paths):
    paths = paths or [os.path.join(ROOT, "README.md")] + sorted(
        glob.glob(os.path.join(ROOT, "docs", "*.md")))
    passed, failed = 0, 0
    for path in paths:
        found = blocks(path)
        for i, (lang, line, text) in enumerate(found):
            where = f"{os.path.relpath(path, ROOT)}:{line} ({lang or 'no language'})"
            nxt = found[i + 1] if i + 1 < len(found) else None
            try:
                if lang in CHECKERS:
                    CHECKERS[lang](text)
                elif lang == "sh":
                    expect = None
                    if nxt and nxt[0] == "text":
                        expect = [strip_comment(l).strip() for l in nxt[2].splitlines()
                                  if strip_comment(l).strip()]
                    run_sh(text, expect)
                elif lang == "text":
                    prev = found[i - 1] if i else None
                    assert prev and prev[0] == "sh", "a text block must follow an sh block"
                else:
                    raise AssertionError("no checker for this language")
                passed += 1
                print(f"ok   {where}", flush=True)
            except Exception as err:  # report every failing block, not only the first
                failed += 1
                print(f"FAIL {where}: {err}", flush=True)
    print(f"docs: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
