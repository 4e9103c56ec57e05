"""docker-py's common calls against `berth serve` (run by api_docker.rs with Debian's python3-docker).

Usage: docker_py_calls.py SOCKET_PATH WORKDIR. Exits non-zero on the first failed check.
"""
import io
import sys
import tarfile
import time

import docker

sock, work = sys.argv[1], sys.argv[2]
t_start = int(time.time())
client = docker.DockerClient(base_url="unix://" + sock, version="auto", timeout=60)
api = client.api

assert client.ping() is True
assert api.version()["ApiVersion"] == "1.47"
assert client.info()["OSType"] == "linux"
assert any("busybox:latest" in t for i in client.images.list() for t in i.tags)
img = client.images.get("busybox")
assert img.id.startswith("sha256:")

# Attached run with --rm: output comes back, the container goes.
out = client.containers.run("busybox", ["sh", "-c", "echo hello; echo err >&2"], remove=True, stderr=True)
assert b"hello" in out, out
try:
    client.containers.run("busybox", ["sh", "-c", "exit 4"], remove=True)
    raise SystemExit("a failing container did not raise ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 4, e.exit_status

c = client.containers.run("busybox", ["sh", "-c", "echo up; exec sleep 1000"], detach=True, name="pyc", labels={"k": "v"})
for _ in range(200):
    c.reload()
    if c.status == "running" and b"up" in c.logs():
        break
    time.sleep(0.02)
assert c.status == "running", c.status
assert c.labels == {"k": "v"}
assert [x.name for x in client.containers.list(filters={"label": "k=v"})] == ["pyc"]

code, output = c.exec_run(["sh", "-c", "echo from-exec"])
assert code == 0 and output == b"from-exec\n", (code, output)
code, output = c.exec_run(["sh", "-c", "exit 5"])
assert code == 5, code
top = c.top()
assert "PID" in top["Titles"] and top["Processes"], top
stats = c.stats(stream=False)
assert stats["memory_stats"]["usage"] > 0, stats

# Files in and out.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"py data\n"
    info = tarfile.TarInfo("pyfile")
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))
assert c.put_archive("/tmp", buf.getvalue())
bits, stat = c.get_archive("/tmp/pyfile")
assert stat["name"] == "pyfile" and stat["size"] == 8, stat
with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as t:
    assert t.extractfile("pyfile").read() == b"py data\n"
assert {"Path": "/tmp/pyfile", "Kind": 1} in c.diff(), c.diff()

committed = c.commit("pyimg", "v1")
assert "pyimg:v1" in committed.tags
c.stop(timeout=1)
assert c.wait()["StatusCode"] in (137, 143)
c.remove()
assert not client.containers.list(all=True, filters={"name": "pyc"})

v = client.volumes.create("pyvol", labels={"a": "b"})
assert v.name == "pyvol" and any(x.name == "pyvol" for x in client.volumes.list())
out = client.containers.run("busybox", ["sh", "-c", "echo vol > /v/f; cat /v/f"], volumes={"pyvol": {"bind": "/v", "mode": "rw"}}, remove=True)
assert out == b"vol\n", out
v.remove()

client.images.remove("pyimg:v1")
assert not [i for i in client.images.list() if "pyimg:v1" in i.tags]
df = api.df()
assert "Images" in df and "LayersSize" in df
client.containers.create("busybox", "true", name="stopped")
pruned = client.containers.prune()
assert len(pruned["ContainersDeleted"]) == 1, pruned

events = list(api.events(since=t_start, until=int(time.time()) + 1, decode=True, filters={"type": "volume"}))
assert [e["Action"] for e in events] == ["create", "destroy"], events

try:
    client.containers.get("no-such-container")
    raise SystemExit("no NotFound")
except docker.errors.NotFound:
    pass
print("docker-py ok")
