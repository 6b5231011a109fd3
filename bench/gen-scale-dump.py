#!/usr/bin/env python3
"""gen-scale-dump.py — a `mossaicfs load` dump of the tree bench/scale.sh creates, in minutes
instead of an hour of creates (issue 21's diagnostics at 10⁶ files).

    bench/gen-scale-dump.py UUID N OUT.jsonl

writes flat/f<i> and tree/m<i//10000>/l<i//100>/f<i> for i < N, file i holding i mod 1,025
bytes (its number, then the same random bytes as scale.sh's), all inline; inode numbers in
scale.sh's creation order. UUID is the target filesystem's (`mossaicfs format` it, read
"uuid" from its mossaicfs.json), then:

    mossaicfs load OUT.jsonl --into STORE -o cache_dir=DIR

Dump format: Sources/MossaicMeta/MetadataDump.swift (version 1, SQLite schema 6 rows).
"""
import base64, hashlib, json, random, sys, time
uuid, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
payload = random.Random(21).randbytes(1024)
now = time.time_ns()
def data(i): return (i.to_bytes(8, "little") + payload)[:i % 1025]
# inode numbers in creation order: root 1, flat 2, flat files, tree, then per 100 files (m dir when new, l dir), files
inodes = []   # (ino, kind, parent_ino_for_dirs, size)
dentries = [] # (parent, name, ino)
nxt = 2
def alloc():
    global nxt; v = nxt; nxt += 1; return v
flat = alloc(); inodes.append((flat, 'd', 1, 0)); dentries.append((1, b"flat", flat))
flat_files = []
for i in range(n):
    ino = alloc(); flat_files.append(ino); inodes.append((ino, 'f', None, i % 1025)); dentries.append((flat, b"f%d" % i, ino))
tree = alloc(); inodes.append((tree, 'd', 1, 0)); dentries.append((1, b"tree", tree))
mdirs = {}; ldir = None; tree_files = []
for i in range(n):
    if i % 100 == 0:
        m = i // 10000
        if m not in mdirs:
            mdirs[m] = alloc(); inodes.append((mdirs[m], 'd', tree, 0)); dentries.append((tree, b"m%d" % m, mdirs[m]))
        ldir = alloc(); inodes.append((ldir, 'd', mdirs[m], 0)); dentries.append((mdirs[m], b"l%d" % (i // 100), ldir))
    ino = alloc(); tree_files.append(ino); inodes.append((ino, 'f', None, i % 1025)); dentries.append((ldir, b"f%d" % i, ino))
subdirs = {}
for ino, k, p, _ in inodes:
    if k == 'd': subdirs[p] = subdirs.get(p, 0) + 1
rnd = random.Random(5)
counts = {"setting": 0, "inode": 0, "dentry": 0, "symlink": 0, "xattr": 0, "allocation": 0, "orphan": 0, "chunk": 0, "file_chunk": 0, "patch": 0}
with open(out, "w") as f:
    w = f.write
    w(json.dumps({"mossaicfs_dump": 1, "fs_uuid": uuid, "engine": "sqlite", "schema": 6, "created": "2026-12-06T23:30:00Z", "next_ino": nxt}) + "\n")
    def inode(ino, kind, mode, size, nlink, gen, parent):
        counts["inode"] += 1
        w('{"t":"inode","ino":%d,"kind":%d,"mode":%d,"uid":0,"gid":0,"size":%d,"nlink":%d,"rdev":0,"atime_ns":%d,"mtime_ns":%d,"ctime_ns":%d,"generation":%d,"allocated":%d,"reserved":0,"parent":%s}\n'
          % (ino, kind, mode, size, nlink, now, now, now, gen, (size + 4095) // 4096 * 4096 if kind == 32768 else 0, "null" if parent is None else parent))
    inode(1, 16384, 493, 0, 2 + subdirs.get(1, 0), 0, 1)
    for ino, k, p, size in inodes:
        if k == 'd': inode(ino, 16384, 493, 0, 2 + subdirs.get(ino, 0), rnd.getrandbits(32), p)
        else: inode(ino, 32768, 420, size, 1, rnd.getrandbits(32), None)
    for p, name, ino in dentries:
        counts["dentry"] += 1
        w('{"t":"dentry","parent":%d,"name":"%s","ino":%d}\n' % (p, base64.b64encode(name).decode(), ino))
    hashes = {}; seen = set()
    for i in range(n):
        d = data(i)
        if not d: continue
        h = hashlib.sha256(d).hexdigest(); hashes[i] = (h, len(d))
        if h in seen: continue
        seen.add(h)
        counts["chunk"] += 1
        w('{"t":"chunk","hash":"%s","length":%d,"state":1,"data":"%s","pack":null,"pack_offset":null,"codec":0,"stored_length":%d}\n' % (h, len(d), base64.b64encode(d).decode(), len(d)))
    for files in (flat_files, tree_files):
        for i, ino in enumerate(files):
            if i in hashes:
                counts["file_chunk"] += 1
                w('{"t":"file_chunk","ino":%d,"idx":0,"hash":"%s","length":%d}\n' % (ino, hashes[i][0], hashes[i][1]))
    trailer = {"end": "mossaicfs_dump", "records": sum(counts.values())}; trailer.update(counts)
    w(json.dumps(trailer) + "\n")
print(nxt, counts)
