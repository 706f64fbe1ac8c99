#!/usr/bin/env python3
"""A Python application reaching a secure zdb cluster: TLS (trusting the
cluster CA) and a password login, whose token goes with every call as
`authorization: Bearer <token>` metadata. What its user may not do fails
with PERMISSION_DENIED and a typed zdb.v1.Error naming the permission;
a call without the token fails with UNAUTHENTICATED.

Usage: secure_client.py HOST:PORT CA_FILE USER PASSWORD PREFIX
(with the generated zdb/v1/*_pb2*.py on PYTHONPATH). USER may read and
write keys under PREFIX, and nothing else.
"""

import sys

import grpc
from google.rpc import status_pb2
from zdb.v1 import auth_pb2, auth_pb2_grpc, kv_pb2, kv_pb2_grpc


def error_kind(err):
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.type_url.endswith("/zdb.v1.Error"):
                    return kv_pb2.Error.FromString(detail.value).WhichOneof("kind")
    return None


def expect_refused(call, code, kind):
    try:
        call()
    except grpc.RpcError as err:
        assert err.code() == code, (err.code(), err.details())
        assert error_kind(err) == kind, (error_kind(err), err.details())
        return err.details()
    raise AssertionError("the call should have been refused")


def main(address, ca_file, user, password, prefix):
    with open(ca_file, "rb") as ca:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
    channel = grpc.secure_channel(address, credentials)
    login = auth_pb2_grpc.AuthStub(channel).Authenticate(
        auth_pb2.AuthenticateRequest(user=user, password=password), timeout=10
    )
    assert login.token and login.ttl_seconds > 0
    token = (("authorization", "Bearer " + login.token),)
    kv = kv_pb2_grpc.KvStub(channel)

    key = (prefix + "/python").encode()
    kv.Put(kv_pb2.PutRequest(key=key, value=b"from python"), metadata=token, timeout=10)
    got = kv.Get(kv_pb2.GetRequest(key=key), metadata=token, timeout=10)
    assert got.found and got.value == b"from python", got

    denied = expect_refused(
        lambda: kv.Put(kv_pb2.PutRequest(key=b"elsewhere", value=b"x"), metadata=token, timeout=10),
        grpc.StatusCode.PERMISSION_DENIED,
        "permission_denied",
    )
    assert "write" in denied, denied
    expect_refused(
        lambda: kv.Get(kv_pb2.GetRequest(key=key), timeout=10),
        grpc.StatusCode.UNAUTHENTICATED,
        "unauthenticated",
    )
    print("python secure client: ok")


if __name__ == "__main__":
    main(*sys.argv[1:6])
