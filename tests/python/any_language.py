#!/usr/bin/env python3
"""An application in Python using zdb through one address.

Its client is generated from zdb's .proto files by grpcio-tools, as a Go or
Java application's would be; it needs no routing of its own: whichever node
it reaches passes each request on to the leader of the key's range. It
retries a request only when the node says it was not applied (the typed
zdb.v1.Error in the status details), and reads on any transient failure.
Its transactions need no commit protocol either: the node that answers
Begin coordinates one, so every call of it goes to that same address.

Usage: any_language.py HOST:PORT KEY_PREFIX COUNT
(with the generated zdb/v1/kv_pb2*.py, zdb/v1/txn_pb2*.py and
google/rpc/status_pb2.py on PYTHONPATH). The caller splits the key space at
KEY_PREFIX-0010, so that KEY_PREFIX+txn and KEY_PREFIX.txn, on
either side of the numbered keys, lie in two ranges.
"""

import sys
import time

import grpc
from google.rpc import status_pb2
from zdb.v1 import kv_pb2, kv_pb2_grpc, txn_pb2, txn_pb2_grpc

# Error kinds that mean "not applied, try again".
NOT_APPLIED = {"not_leader", "not_applied", "shutting_down", "server_busy"}
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def error_detail(err):
    """The zdb.v1.Error a failed call carries, if any."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.type_url.endswith("/zdb.v1.Error"):
                    return kv_pb2.Error.FromString(detail.value)
    return None


def error_kind(err):
    """The kind of the zdb.v1.Error a failed call carries, if any."""
    detail = error_detail(err)
    return detail.WhichOneof("kind") if detail is not None else None


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


def range_of(kv, key):
    located = call(kv.Locate, kv_pb2.LocateRequest(key=key), read=True)
    return located.ranges[0].range.range_id


def transactions(kv, txn, prefix):
    # Two keys outside the numbered ones, in two ranges: one transaction
    # writes both, or neither.
    first, second = f"{prefix}+txn".encode(), f"{prefix}.txn".encode()
    assert range_of(kv, first) != range_of(kv, second), "the keys share a range"
    begun = call(
        txn.Begin, txn_pb2.BeginRequest(isolation=txn_pb2.ISOLATION_SERIALIZABLE)
    )
    call(txn.Put, txn_pb2.TxnPutRequest(txn_id=begun.txn_id, key=first, value=b"t1"))
    call(txn.Put, txn_pb2.TxnPutRequest(txn_id=begun.txn_id, key=second, value=b"t2"))
    own = call(txn.Get, txn_pb2.TxnGetRequest(txn_id=begun.txn_id, key=first), read=True)
    assert own.found and own.value == b"t1", ("a transaction sees its own writes", own)
    committed = call(txn.Commit, txn_pb2.CommitRequest(txn_id=begun.txn_id))
    assert committed.commit_ts > begun.start_ts, (begun, committed)
    for key, value in [(first, b"t1"), (second, b"t2")]:
        got = call(kv.Get, kv_pb2.GetRequest(key=key), read=True)
        assert got.found and got.value == value, (key, got)

    # Two snapshot transactions write one key: the first committer wins,
    # the second gets ABORTED with a typed WriteConflict and applies nothing.
    key = f"{prefix}.conflict".encode()
    snapshot = txn_pb2.BeginRequest(isolation=txn_pb2.ISOLATION_SNAPSHOT)
    winner = call(txn.Begin, snapshot).txn_id
    loser = call(txn.Begin, snapshot).txn_id
    call(txn.Put, txn_pb2.TxnPutRequest(txn_id=winner, key=key, value=b"winner"))
    call(txn.Put, txn_pb2.TxnPutRequest(txn_id=loser, key=key, value=b"loser"))
    call(txn.Commit, txn_pb2.CommitRequest(txn_id=winner))
    try:
        call(txn.Commit, txn_pb2.CommitRequest(txn_id=loser))
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.ABORTED, err
        detail = error_detail(err)
        assert detail is not None and detail.WhichOneof("kind") == "write_conflict", err
        assert detail.write_conflict.key == key, detail
    else:
        raise AssertionError("the second committer committed too")
    got = call(kv.Get, kv_pb2.GetRequest(key=key), read=True)
    assert got.found and got.value == b"winner", got


def main(address, prefix, count):
    channel = grpc.insecure_channel(address)
    kv = kv_pb2_grpc.KvStub(channel)
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

    transactions(kv, txn_pb2_grpc.TxnStub(channel), prefix)
    print(f"ok: {count} keys and transactions through {address}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
