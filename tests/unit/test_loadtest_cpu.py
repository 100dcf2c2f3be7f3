"""loadtest/cpu.py: CPU time per request of the benchmark's processes, found by their ports."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from loadtest.cpu import CpuMeter, groups, listener

BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


def test_a_listener_is_found_by_its_port_and_a_free_port_is_not():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        found = listener(port)
        assert found is not None and found.pid == __import__("os").getpid()
        assert groups({"me": port, "nobody": 1}) == {"me": found.pid}
    assert listener(port) is None


CHILD = BURN.format(s=0.4) + "time.sleep(5)\n"
TREE = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {CHILD!r}])\n"


def test_the_meter_charges_a_process_tree_and_the_load_generator_per_request():
    parent = subprocess.Popen([sys.executable, "-c", TREE])  # its child burns, then sleeps
    try:
        meter = CpuMeter({"tree": parent.pid})
        meter.start()
        time.sleep(1.5)
        subprocess.run([sys.executable, "-c", BURN.format(s=0.3)], check=True)  # "wrk"
        used = meter.stop(requests=1000)
    finally:
        parent.kill()
        parent.wait()
    assert used["tree"] >= 250  # the child's 0.4 s (less its start) over 1000 requests
    assert used["load generator"] >= 250  # 0.3 s of a waited child
    assert used["machine"] >= used["tree"] + used["load generator"] - 50
    assert set(used) == {"tree", "load generator", "machine", "unaccounted"}
