# Started by ferry-local as `python -c <this> <port> <detached|attached>`.
# Binds 127.0.0.1:<port> (0 = any free port), prints "ferry-moto ready <port>", then serves until
# SIGTERM (detached) or until its standard input closes (attached: the parent died or let go).
import os
import sys
import threading

from moto.moto_server.threaded_moto_server import ThreadedMotoServer

port, mode = int(sys.argv[1]), sys.argv[2]
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print(f"ferry-moto ready {server.get_host_and_port()[1]}", flush=True)
# Nothing else goes to stdout: the reader may be gone.
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)
if mode == "attached":
    sys.stdin.read()
    server.stop()
else:
    threading.Event().wait()
