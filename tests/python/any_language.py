#!/usr/bin/env python3
"""An application in Python using zdb through one address.

Its client is generated from zdb's .proto files by grpcio-tools, as a Go or
Java application's would be; it needs no routing of its own: whichever node
it reaches passes each request on to the leader of the key's range. It
retries a request only when the node says it was not applied (the typed
zdb.v1.Error in the status details), and reads on any transient failure.

Usage: any_language.py HOST:PORT KEY_PREFIX COUNT
(with the generated zdb/v1/kv_pb2*.py and google/rpc/status_pb2.py on
PYTHONPATH).
"""

import sys
import time

import grpc
from google.rpc import status_pb2
from zdb.v1 import kv_pb2, kv_pb2_grpc

# Error kinds that mean "not applied, try again".
NOT_APPLIED = {"not_leader", "not_applied", "shutting_down", "server_busy"}
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def error_kind(err):
    """The kind of the zdb.v1.Error a failed call carries, if any."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.type_url.endswith("/zdb.v1.Error"):
                    return kv_pb2.Error.FromString(detail.value).WhichOneof("kind")
    return None


def call(method, request, read=False, within=15.0):
    deadline = time.monotonic() + within
    while True:
        try:
            return method(request, timeout=3)
        except grpc.RpcError as err:
            retry = error_kind(err) in NOT_APPLIED or (read and err.code() in TRANSIENT)
            if not retry or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main(address, prefix, count):
    kv = kv_pb2_grpc.KvStub(grpc.insecure_channel(address))
    keys = [f"{prefix}-{i:04d}".encode() for i in range(count)]
    for key in keys:
        call(kv.Put, kv_pb2.PutRequest(key=key, value=b"v1"))
        got = call(kv.Get, kv_pb2.GetRequest(key=key), read=True)
        assert got.found and got.value == b"v1", (key, got)
        swapped = call(
            kv.CompareAndSwap,
            kv_pb2.CompareAndSwapRequest(key=key, expected_value=b"v1", new_value=b"v2"),
        )
        assert swapped.succeeded, (key, swapped)
        refused = call(
            kv.CompareAndSwap,
            kv_pb2.CompareAndSwapRequest(key=key, expected_value=b"v1", new_value=b"v3"),
        )
        assert not refused.succeeded and refused.current_value == b"v2", (key, refused)

    # One scan over every range the keys span, seven keys a page, every
    # page at one timestamp from the oracle: one snapshot.
    ts = call(kv.Now, kv_pb2.NowRequest(), read=True).timestamp
    seen, start, end = [], f"{prefix}-".encode(), f"{prefix}.".encode()
    while True:
        request = kv_pb2.ScanRequest(start_key=start, end_key=end, limit=7, read_ts=ts)
        page = call(kv.Scan, request, read=True)
        assert page.read_ts == ts, page.read_ts
        seen += [(pair.key, pair.value) for pair in page.pairs]
        if not page.more:
            break
        start = page.pairs[-1].key + b"\0"
    assert seen == [(key, b"v2") for key in keys], seen

    wanted = keys[::3]
    batch = call(kv.BatchGet, kv_pb2.BatchGetRequest(keys=wanted), read=True)
    assert [pair.key for pair in batch.pairs] == wanted, batch

    call(kv.Delete, kv_pb2.DeleteRequest(key=keys[0]))
    assert not call(kv.Get, kv_pb2.GetRequest(key=keys[0]), read=True).found
    past = call(kv.Get, kv_pb2.GetRequest(key=keys[0], read_ts=ts), read=True)
    assert past.found and past.value == b"v2", past
    print(f"ok: {count} keys through {address}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
