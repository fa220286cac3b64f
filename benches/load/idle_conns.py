#!/usr/bin/env python3
"""Open N idle TLS connections to a server and hold them (used by benches/load.sh).

usage: idle_conns.py HOST PORT N CAFILE [CERT KEY]

Each connection completes the TLS handshake (ALPN http/1.1, with the client certificate
when given) and then sends nothing. Prints "ready <opened>" on stdout when all are open,
then holds them until stdin closes or a line arrives, and exits.
"""
import socket
import ssl
import sys

host, port, n, cafile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
ctx.set_alpn_protocols(["http/1.1"])
if len(sys.argv) > 6:
    ctx.load_cert_chain(sys.argv[5], sys.argv[6])
conns = []
failed = 0
for _ in range(n):
    try:
        raw = socket.create_connection((host, port), timeout=5)
        conns.append(ctx.wrap_socket(raw, server_hostname="localhost"))
    except OSError:
        failed += 1
print(f"ready {len(conns)} failed {failed}", flush=True)
sys.stdin.readline()
for c in conns:
    c.close()
