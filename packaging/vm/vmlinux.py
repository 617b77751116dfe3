#!/usr/bin/env python3
"""Extracts the uncompressed kernel (an ELF vmlinux) from a bzImage.

    vmlinux.py VMLINUZ OUT

Tries each compressed stream the kernel may carry (zstd, xz, gzip), from
every offset where its magic appears, and keeps the first that
decompresses to an ELF file, as the kernel's scripts/extract-vmlinux does.
"""
import lzma
import subprocess
import sys
import zlib


def candidates(data):
    for magic, kind in ((b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08", "gzip")):
        at = data.find(magic)
        while at >= 0:
            yield kind, at
            at = data.find(magic, at + 1)


def decompress(kind, blob):
    if kind == "xz":
        return lzma.LZMADecompressor().decompress(blob)
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob)
    # zstd: the Python standard library has no decoder before 3.14.
    run = subprocess.run(["zstd", "-dcq"], input=blob, capture_output=True)
    return run.stdout


def main():
    src, out = sys.argv[1], sys.argv[2]
    data = open(src, "rb").read()
    for kind, at in candidates(data):
        try:
            kernel = decompress(kind, data[at:])
        except (OSError, EOFError, lzma.LZMAError, zlib.error):
            continue
        if kernel[:4] == b"\x7fELF":
            open(out, "wb").write(kernel)
            return 0
    print(f"vmlinux.py: no compressed ELF kernel found in {src}", file=sys.stderr)
    return 1


sys.exit(main())
