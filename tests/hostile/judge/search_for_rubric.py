"""Runs inside a sandbox (and once on the host, as a control): every file under ROOT whose name says
"rubric", and every file holding the rubric's canary text. Usage: NEEDLE_B64 OUT_JSON ROOT.

The canary comes base64-encoded so that this script, reproduce.sh and the command line never hold it
in clear. Before searching, a file named rubric.json and a file holding the canary are planted in
/tmp: a search that cannot find them proves nothing, so the test requires exactly those two."""
import base64
import json
import os
import sys

needle, out, root = base64.b64decode(sys.argv[1]), sys.argv[2], sys.argv[3]
SKIP = {"/proc", "/sys", "/dev"}  # kernel views, not files a rubric could be copied into
CHUNK = 1 << 20

if root == "/":
    os.makedirs("/tmp/j05-control", exist_ok=True)
    with open("/tmp/j05-control/rubric.json", "w") as f:
        f.write("{}")
    with open("/tmp/j05-control/planted.txt", "wb") as f:
        f.write(b"before " + needle + b" after")


def holds(path: str) -> bool:
    tail = b""
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            if needle in tail + chunk:
                return True
            tail = chunk[-len(needle):]
    return False


names, hits, read = [], [], 0
for top, dirs, files in os.walk(root):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in SKIP]
    read += len(files)
    for name in dirs + files:
        if "rubric" in name.lower():
            names.append(os.path.join(top, name))
    for name in files:
        path = os.path.join(top, name)
        try:
            if not os.path.islink(path) and os.path.isfile(path) and holds(path):
                hits.append(path)
        except OSError:
            pass  # unreadable to the sandbox user: nothing it could read there either
with open(out, "w") as f:
    # how much it read, so the test knows the walk covered the filesystem and did not stop early
    json.dump({"names": sorted(names), "hits": sorted(hits), "files": read}, f)
