#!/usr/bin/env python3
"""The Redis commands zdb's Redis front end serves, against a real client.

Every test talks to the server with redis-py (`redis.Redis(protocol=2)`, and
`protocol=3` for HELLO / RESP3), and to check exact reply types and error
texts also through `Wire`, a minimal hand-written RESP client. The
expectations are Redis's own behaviour (this module was developed against
redis-server 7.0); where zdb deliberately differs, the test says so under
`if ZDB:`. The differences, all of them:

  (a) INFO has the sections server, clients, stats (with keyspace_hits,
      keyspace_misses, evicted_keys, expired_keys), keyspace and
      replication, but not every field Redis has;
  (b) only the string type exists: commands of the other types (LPUSH,
      HSET, SADD, ZADD, ...) answer `ERR unknown command`;
  (c) SELECT accepts only 0; any other index is `ERR DB index is out of
      range` (Redis has 16 databases);
  (d) SCAN cursors are opaque, not small integers: the tests only hand a
      cursor back as they got it, and the scan is over when it is "0"
      (they still must be decimal numbers below 2^64: redis-cli --scan
      and redis-py's scan() parse them as such);
  (e) MULTI/EXEC: with WATCH, EXEC answers a null array (None) when a
      watched key changed, from any connection to any node.

Environment:
  ZDB_REDIS_ADDRS      host:port[,host:port...]; the first serves most tests,
                       the others are checked to see the same data
  ZDB_REDIS_TARGET     zdb (default) or redis (a plain redis-server)
  ZDB_REDIS_USER, ZDB_REDIS_PASSWORD
                       authentication is on: log in as this user (the
                       AUTH / NOAUTH / WRONGPASS tests run only then)
  ZDB_REDIS_CA_FILE    connect with TLS, trusting this CA
  ZDB_REDIS_BIG=1      run test_scan_100k_during_splits (100,000 keys)
  ZDB_REDIS_BIG_PREFIX its key prefix (default: a fresh one); its keys are
                       PREFIX + 6 digits, 000000 to 099999
  ZDB_REDIS_LOCKSTEP=1 test_scan_100k_during_splits prints `LOADED` once
                       the keys are written and `PAGE n` after each SCAN
                       page, each time waiting for a line on stdin before it
                       goes on (the caller splits ranges meanwhile)

Run: ZDB_REDIS_ADDRS=127.0.0.1:6379 python3 tests/python/redis_commands.py
     [RedisCommands.test_name ...]
"""

import os
import socket
import ssl
import sys
import time
import unittest
import uuid

import redis

ZDB = os.environ.get("ZDB_REDIS_TARGET", "zdb") == "zdb"
ADDRS = [
    (host, int(port))
    for host, port in (
        address.strip().rsplit(":", 1)
        for address in os.environ.get("ZDB_REDIS_ADDRS", "").split(",")
        if address.strip()
    )
]
USER = os.environ.get("ZDB_REDIS_USER")
PASSWORD = os.environ.get("ZDB_REDIS_PASSWORD")
CA_FILE = os.environ.get("ZDB_REDIS_CA_FILE")
BIG = os.environ.get("ZDB_REDIS_BIG") == "1"
LOCKSTEP = os.environ.get("ZDB_REDIS_LOCKSTEP") == "1"
RUN = uuid.uuid4().hex[:8]
# Long enough for a write that waits out a leader election or a split.
TIMEOUT = 20.0


def client(index=0, protocol=2, decode=True, **extra):
    """A redis-py client of node `index`, one connection, logged in."""
    host, port = ADDRS[index]
    tls = dict(ssl=True, ssl_ca_certs=CA_FILE) if CA_FILE else {}
    return redis.Redis(
        host=host,
        port=port,
        protocol=protocol,
        decode_responses=decode,
        username=USER,
        password=PASSWORD,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        single_connection_client=True,
        # Other tests' binary keys decode too (SCAN, KEYS of everything).
        encoding_errors="surrogateescape",
        **tls,
        **extra,
    )


def raw(index=0, protocol=2):
    """As `client`, without redis-py's reply parsing: what the server sent."""
    connection = client(index, protocol)
    connection.response_callbacks.clear()
    return connection


class Err(str):
    """An error reply, its text exactly as sent."""


class Verbatim(str):
    """A RESP3 verbatim string; `format` is its three-letter format."""

    format = ""


class Wire:
    """A minimal RESP2/RESP3 client over one socket: exact types and texts."""

    def __init__(self, index=0, login=True):
        host, port = ADDRS[index]
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
        if CA_FILE:
            sock = ssl.create_default_context(cafile=CA_FILE).wrap_socket(
                sock, server_hostname=host
            )
        self.sock = sock
        self.buffer = b""
        if login and USER:
            assert self.call("AUTH", USER, PASSWORD) == "OK"

    def close(self):
        self.sock.close()

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            if isinstance(arg, str):
                arg = arg.encode()
            elif isinstance(arg, int):
                arg = str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        self.sock.sendall(b"".join(out))

    def call(self, *args):
        self.send(*args)
        return self.reply()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data

    def line(self):
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def exactly(self, count):
        while len(self.buffer) < count + 2:
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count + 2 :]
        return data

    def reply(self):
        """One reply: str, int, float, bool, None, Err, list, dict, set."""
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return Err(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return None if rest == b"-1" else self.exactly(int(rest)).decode("latin-1")
        if kind == b"*":
            return None if rest == b"-1" else [self.reply() for _ in range(int(rest))]
        if kind == b"_":
            return None
        if kind == b",":
            return float(rest)
        if kind == b"#":
            return rest == b"t"
        if kind == b"(":
            return int(rest)
        if kind == b"!":
            return Err(self.exactly(int(rest)).decode())
        if kind == b"=":
            data = self.exactly(int(rest)).decode()
            text = Verbatim(data[4:])
            text.format = data[:3]
            return text
        if kind == b"%":
            pairs = [(self.reply(), self.reply()) for _ in range(int(rest))]
            return {_hashable(k): v for k, v in pairs}
        if kind in (b"~", b">"):
            items = [self.reply() for _ in range(int(rest))]
            return set(map(_hashable, items)) if kind == b"~" else items
        raise AssertionError(f"not a RESP reply: {line!r}")

    def kind_of_next(self, *args):
        """The type byte of the reply to `args` (the reply is consumed)."""
        self.send(*args)
        while not self.buffer:
            self._fill()
        kind = self.buffer[:1].decode()
        self.reply()
        return kind


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def pairs(flat):
    """[k1, v1, k2, v2...] (HELLO in RESP2) as a dict."""
    return dict(zip(flat[::2], flat[1::2]))


def eventually(what, check, timeout=10.0):
    """Polls `check` until it returns something truthy, or fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def scan_all(connection, match=None, count=None, on_page=None):
    """Every key SCAN returns, iterating from cursor 0 back to 0; the
    cursor is handed back as received, never interpreted."""
    seen, cursor, pages = [], "0", 0
    args = (["MATCH", match] if match else []) + (["COUNT", count] if count else [])
    while True:
        reply = connection.execute_command("SCAN", cursor, *args)
        assert isinstance(reply, list) and len(reply) == 2, reply
        cursor, keys = reply
        assert isinstance(cursor, str) and cursor, cursor
        seen.extend(keys)
        pages += 1
        if on_page:
            on_page(pages)
        if cursor == "0":
            return seen, pages


class Case(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        if not ADDRS:
            self.fail("set ZDB_REDIS_ADDRS=host:port[,host:port...]")
        # Each test's own keys: no test sees another's, none assumes the
        # database is empty (a zdb cluster's keys are shared).
        self.prefix = f"t{RUN}:{self._testMethodName}:"
        self.r = client()
        self.addCleanup(self.r.close)

    def k(self, name=""):
        return self.prefix + name

    def wire(self, index=0, login=True):
        connection = Wire(index, login)
        self.addCleanup(connection.close)
        return connection

    def assertErr(self, reply, text):
        self.assertIsInstance(reply, Err, f"expected the error {text!r}")
        self.assertEqual(reply, text)

    def assertErrStarts(self, reply, text):
        self.assertIsInstance(reply, Err, f"expected an error {text!r}...")
        self.assertTrue(reply.startswith(text), f"{reply!r} should start with {text!r}")


class RedisCommands(Case):
    # ----- connection

    def test_ping_and_echo(self):
        self.assertTrue(self.r.ping())
        w = self.wire()
        self.assertEqual(w.call("PING"), "PONG")
        self.assertEqual(w.kind_of_next("PING"), "+")
        self.assertEqual(w.call("PING", "hello there"), "hello there")
        self.assertEqual(w.kind_of_next("PING", "x"), "$")
        self.assertErr(w.call("PING", "a", "b"), "ERR wrong number of arguments for 'ping' command")
        self.assertEqual(w.call("ECHO", "some\r\nbytes"), "some\r\nbytes")
        self.assertEqual(self.r.echo(""), "")
        self.assertErr(w.call("ECHO"), "ERR wrong number of arguments for 'echo' command")
        # Lower- and mixed-case command names are the same commands.
        self.assertEqual(w.call("ping"), "PONG")
        self.assertEqual(w.call("eChO", "x"), "x")

    def test_hello_2_and_3(self):
        w = self.wire()
        hello = w.call("HELLO", "2")
        self.assertIsInstance(hello, list)
        fields = pairs(hello)
        for field in ["server", "version", "proto", "id", "mode", "role", "modules"]:
            self.assertIn(field, fields)
        self.assertEqual(fields["proto"], 2)
        self.assertEqual(fields["id"], w.call("CLIENT", "ID"))
        self.assertEqual(w.kind_of_next("GET", self.k("missing")), "$")

        hello = w.call("HELLO", "3")
        self.assertIsInstance(hello, dict, "HELLO 3 answers a RESP3 map")
        self.assertEqual(hello["proto"], 3)
        self.assertEqual(hello["id"], w.call("CLIENT", "ID"))
        # RESP3 from now on: the null of a missing key is `_`.
        self.assertEqual(w.kind_of_next("GET", self.k("missing")), "_")
        self.assertIsNone(w.call("GET", self.k("missing")))
        self.assertEqual(w.call("SET", self.k("a"), "1"), "OK")
        self.assertEqual(w.call("GET", self.k("a")), "1")
        self.assertEqual(w.call("EXISTS", self.k("a")), 1)
        # HELLO without a version: the current one.
        self.assertEqual(w.call("HELLO")["proto"], 3)
        self.assertErrStarts(w.call("HELLO", "4"), "NOPROTO")
        self.assertErrStarts(w.call("HELLO", "abc"), "ERR")
        # Back to RESP2.
        self.assertEqual(pairs(w.call("HELLO", "2"))["proto"], 2)
        self.assertEqual(w.kind_of_next("GET", self.k("missing")), "$")

    def test_resp3_client(self):
        r3 = client(protocol=3)
        self.addCleanup(r3.close)
        self.assertTrue(r3.ping())
        self.assertIsNone(r3.get(self.k("missing")))
        self.assertTrue(r3.set(self.k("a"), "x", ex=100))
        self.assertEqual(r3.get(self.k("a")), "x")
        self.assertEqual(r3.mget(self.k("a"), self.k("missing")), ["x", None])
        self.assertEqual(r3.incr(self.k("n")), 1)
        self.assertEqual(r3.incrbyfloat(self.k("f"), 1.5), 1.5)
        self.assertIn(r3.ttl(self.k("a")), range(90, 101))
        pipe = r3.pipeline(transaction=True)
        pipe.set(self.k("t"), "1").incr(self.k("t")).get(self.k("t"))
        self.assertEqual(pipe.execute(), [True, 2, "2"])
        # What one RESP3 connection sees, another RESP2 one does too.
        self.assertEqual(self.r.get(self.k("t")), "2")

    @unittest.skipUnless(USER, "authentication is off (ZDB_REDIS_USER not set)")
    def test_hello_3_auth(self):
        w = self.wire(login=False)
        hello = w.call("HELLO", "3", "AUTH", USER, PASSWORD)
        self.assertIsInstance(hello, dict)
        self.assertEqual(hello["proto"], 3)
        self.assertEqual(w.call("PING"), "PONG")
        w = self.wire(login=False)
        self.assertErr(
            w.call("HELLO", "3", "AUTH", USER, PASSWORD + "-wrong"),
            "WRONGPASS invalid username-password pair or user is disabled.",
        )
        self.assertErr(w.call("GET", self.k("a")), "NOAUTH Authentication required.")

    @unittest.skipUnless(USER, "authentication is off (ZDB_REDIS_USER not set)")
    def test_auth(self):
        w = self.wire(login=False)
        self.assertErr(w.call("GET", self.k("a")), "NOAUTH Authentication required.")
        self.assertErr(w.call("SET", self.k("a"), "1"), "NOAUTH Authentication required.")
        self.assertErr(
            w.call("AUTH", USER, PASSWORD + "-wrong"),
            "WRONGPASS invalid username-password pair or user is disabled.",
        )
        self.assertErr(
            w.call("AUTH", "no-such-user-" + RUN, PASSWORD),
            "WRONGPASS invalid username-password pair or user is disabled.",
        )
        self.assertErr(w.call("GET", self.k("a")), "NOAUTH Authentication required.")
        self.assertEqual(w.call("AUTH", USER, PASSWORD), "OK")
        self.assertEqual(w.call("SET", self.k("a"), "1"), "OK")
        self.assertEqual(w.call("GET", self.k("a")), "1")
        # redis-py logs in by itself, with AUTH (RESP2) or HELLO 3 AUTH.
        for protocol in (2, 3):
            logged_in = client(protocol=protocol)
            self.assertEqual(logged_in.get(self.k("a")), "1")
            logged_in.close()
        wrong = redis.Redis(
            host=ADDRS[0][0], port=ADDRS[0][1], username=USER, password=PASSWORD + "-wrong",
            socket_timeout=TIMEOUT, ssl=bool(CA_FILE), ssl_ca_certs=CA_FILE,
        )
        with self.assertRaises(redis.AuthenticationError):
            wrong.ping()
        wrong.close()

    def test_select(self):
        w = self.wire()
        self.assertEqual(w.call("SELECT", "0"), "OK")
        self.assertTrue(self.r.execute_command("SELECT", 0))
        self.assertErr(w.call("SELECT", "99"), "ERR DB index is out of range")
        self.assertErr(w.call("SELECT", "-1"), "ERR DB index is out of range")
        self.assertErr(w.call("SELECT", "abc"), "ERR value is not an integer or out of range")
        self.assertErr(w.call("SELECT"), "ERR wrong number of arguments for 'select' command")
        if ZDB:
            self.assertErr(w.call("SELECT", "1"), "ERR DB index is out of range")
        else:
            self.assertEqual(w.call("SELECT", "1"), "OK")
            self.assertEqual(w.call("SELECT", "0"), "OK")
        # Still on database 0: the keys of the other connections.
        self.r.set(self.k("a"), "1")
        self.assertEqual(w.call("GET", self.k("a")), "1")

    def test_quit(self):
        w = self.wire()
        self.assertEqual(w.call("SET", self.k("a"), "1"), "OK")
        self.assertEqual(w.call("QUIT"), "OK")
        w.sock.settimeout(TIMEOUT)
        with self.assertRaises(EOFError):
            w.reply()
        # What it did before stays.
        self.assertEqual(self.r.get(self.k("a")), "1")

    def test_client_commands(self):
        w = self.wire()
        self.assertIsNone(w.call("CLIENT", "GETNAME"))
        self.assertEqual(w.call("CLIENT", "SETNAME", "tester-" + RUN), "OK")
        self.assertEqual(w.call("CLIENT", "GETNAME"), "tester-" + RUN)
        self.assertErr(
            w.call("CLIENT", "SETNAME", "a b"),
            "ERR Client names cannot contain spaces, newlines or special characters.",
        )
        self.assertEqual(w.call("CLIENT", "GETNAME"), "tester-" + RUN)
        client_id = w.call("CLIENT", "ID")
        self.assertIsInstance(client_id, int)
        self.assertGreater(client_id, 0)
        other = self.wire()
        self.assertNotEqual(other.call("CLIENT", "ID"), client_id)
        info = w.call("CLIENT", "INFO")
        self.assertIsInstance(info, str)
        fields = dict(field.split("=", 1) for field in info.strip().split(" ") if "=" in field)
        self.assertEqual(fields.get("id"), str(client_id))
        self.assertEqual(fields.get("name"), "tester-" + RUN)
        # An empty name clears it.
        self.assertEqual(w.call("CLIENT", "SETNAME", ""), "OK")
        self.assertIsNone(w.call("CLIENT", "GETNAME"))
        # redis-py's own calls.
        self.assertTrue(self.r.client_setname("py-" + RUN))
        self.assertEqual(self.r.client_getname(), "py-" + RUN)
        self.assertEqual(self.r.client_info()["name"], "py-" + RUN)
        self.assertGreater(self.r.client_id(), 0)

    # ----- strings

    def test_get_and_set(self):
        r, k = self.r, self.k
        self.assertIsNone(r.get(k("a")))
        self.assertTrue(r.set(k("a"), "1"))
        self.assertEqual(r.get(k("a")), "1")
        self.assertTrue(r.set(k("a"), "2"))
        self.assertEqual(r.get(k("a")), "2")
        self.assertTrue(r.set(k("empty"), ""))
        self.assertEqual(r.get(k("empty")), "", "an empty value is a value")
        self.assertEqual(r.exists(k("empty")), 1)
        # Binary-safe keys and values.
        b = client(decode=False)
        self.addCleanup(b.close)
        key, value = k("bin\x00\xff").encode("latin-1"), bytes(range(256)) + b"\r\n$-1\r\n"
        self.assertTrue(b.set(key, value))
        self.assertEqual(b.get(key), value)
        big = os.urandom(512 * 1024)
        self.assertTrue(b.set(k("big").encode(), big))
        self.assertEqual(b.get(k("big").encode()), big)
        w = self.wire()
        self.assertEqual(w.kind_of_next("SET", k("a"), "3"), "+")
        self.assertEqual(w.kind_of_next("GET", k("a")), "$")
        self.assertErr(w.call("GET"), "ERR wrong number of arguments for 'get' command")
        self.assertErr(w.call("GET", "a", "b"), "ERR wrong number of arguments for 'get' command")
        self.assertErr(w.call("SET", k("a")), "ERR wrong number of arguments for 'set' command")

    def test_set_options(self):
        r, k, w = self.r, self.k, self.wire()
        # NX and XX.
        self.assertTrue(r.set(k("nx"), "1", nx=True))
        self.assertIsNone(r.set(k("nx"), "2", nx=True))
        self.assertEqual(r.get(k("nx")), "1")
        self.assertIsNone(r.set(k("xx"), "1", xx=True))
        self.assertIsNone(r.get(k("xx")))
        self.assertTrue(r.set(k("nx"), "3", xx=True))
        self.assertEqual(r.get(k("nx")), "3")
        self.assertIsNone(w.call("SET", k("nx"), "4", "NX"), "a SET NX that sets nothing is nil")
        # GET: the old value (nil when there was none).
        self.assertIsNone(r.set(k("get"), "old", get=True))
        self.assertEqual(r.set(k("get"), "new", get=True), "old")
        self.assertEqual(r.get(k("get")), "new")
        self.assertEqual(w.call("SET", k("get"), "newer", "XX", "GET"), "new")
        self.assertIsNone(w.call("SET", k("nothing"), "v", "XX", "GET"))
        self.assertIsNone(r.get(k("nothing")))
        self.assertEqual(w.call("SET", k("get"), "no", "NX", "GET"), "newer")
        self.assertEqual(r.get(k("get")), "newer")
        # EX, PX, EXAT, PXAT.
        self.assertTrue(r.set(k("ex"), "v", ex=100))
        self.assertIn(r.ttl(k("ex")), range(90, 101))
        self.assertTrue(r.set(k("px"), "v", px=100_000))
        self.assertTrue(90_000 <= r.pttl(k("px")) <= 100_000)
        now = int(time.time())
        self.assertTrue(r.set(k("exat"), "v", exat=now + 100))
        self.assertIn(r.ttl(k("exat")), range(90, 101))
        self.assertTrue(r.set(k("pxat"), "v", pxat=now * 1000 + 100_000))
        self.assertTrue(90_000 <= r.pttl(k("pxat")) <= 100_000)
        # A time already past: set, and gone at once.
        self.assertEqual(w.call("SET", k("past"), "v", "PXAT", "1"), "OK")
        self.assertIsNone(r.get(k("past")))
        self.assertEqual(r.exists(k("past")), 0)
        # KEEPTTL keeps the expiry; a plain SET drops it.
        self.assertTrue(r.set(k("ex"), "w", keepttl=True))
        self.assertIn(r.ttl(k("ex")), range(90, 101))
        self.assertEqual(r.get(k("ex")), "w")
        self.assertTrue(r.set(k("ex"), "x"))
        self.assertEqual(r.ttl(k("ex")), -1)
        self.assertEqual(w.call("SET", k("kt"), "v", "KEEPTTL"), "OK")
        self.assertEqual(r.ttl(k("kt")), -1)
        # Options in any case and order.
        self.assertEqual(w.call("SET", k("mix"), "v", "ex", "100", "nx"), "OK")
        self.assertIn(r.ttl(k("mix")), range(90, 101))
        # Syntax errors.
        for args, error in [
            (["NX", "XX"], "ERR syntax error"),
            (["EX", "10", "PX", "10"], "ERR syntax error"),
            (["KEEPTTL", "EX", "10"], "ERR syntax error"),
            (["EX"], "ERR syntax error"),
            (["FOO"], "ERR syntax error"),
            (["EX", "0"], "ERR invalid expire time in 'set' command"),
            (["EX", "-5"], "ERR invalid expire time in 'set' command"),
            (["PX", "0"], "ERR invalid expire time in 'set' command"),
            (["EXAT", "0"], "ERR invalid expire time in 'set' command"),
            (["EX", "abc"], "ERR value is not an integer or out of range"),
            (["PX", "1.5"], "ERR value is not an integer or out of range"),
        ]:
            with self.subTest(args=args):
                self.assertErr(w.call("SET", k("err"), "v", *args), error)
        self.assertIsNone(r.get(k("err")), "a refused SET sets nothing")

    def test_setnx_setex_psetex(self):
        r, k, w = self.r, self.k, self.wire()
        self.assertEqual(w.call("SETNX", k("a"), "1"), 1)
        self.assertEqual(w.call("SETNX", k("a"), "2"), 0)
        self.assertEqual(r.get(k("a")), "1")
        self.assertTrue(r.setnx(k("b"), "x"))
        self.assertFalse(r.setnx(k("b"), "y"))
        self.assertEqual(w.call("SETEX", k("ex"), "100", "v"), "OK")
        self.assertEqual(r.get(k("ex")), "v")
        self.assertIn(r.ttl(k("ex")), range(90, 101))
        self.assertEqual(w.call("PSETEX", k("px"), "100000", "v"), "OK")
        self.assertTrue(90_000 <= r.pttl(k("px")) <= 100_000)
        # SETEX replaces the value and the expiry of a key that has one.
        self.assertEqual(w.call("SETEX", k("a"), "100", "3"), "OK")
        self.assertEqual(r.get(k("a")), "3")
        self.assertIn(r.ttl(k("a")), range(90, 101))
        self.assertErr(w.call("SETEX", k("e"), "0", "v"), "ERR invalid expire time in 'setex' command")
        self.assertErr(w.call("SETEX", k("e"), "-1", "v"), "ERR invalid expire time in 'setex' command")
        self.assertErr(w.call("PSETEX", k("e"), "0", "v"), "ERR invalid expire time in 'psetex' command")
        self.assertErr(w.call("SETEX", k("e"), "x", "v"), "ERR value is not an integer or out of range")
        self.assertErr(w.call("SETEX", k("e"), "1"), "ERR wrong number of arguments for 'setex' command")
        self.assertIsNone(r.get(k("e")))

    def test_getset_and_getdel(self):
        r, k = self.r, self.k
        self.assertIsNone(r.getset(k("a"), "1"))
        self.assertEqual(r.getset(k("a"), "2"), "1")
        self.assertEqual(r.get(k("a")), "2")
        # GETSET drops an expiry.
        r.set(k("t"), "v", ex=100)
        self.assertEqual(r.getset(k("t"), "w"), "v")
        self.assertEqual(r.ttl(k("t")), -1)
        self.assertEqual(r.getdel(k("a")), "2")
        self.assertIsNone(r.getdel(k("a")))
        self.assertEqual(r.exists(k("a")), 0)
        self.assertIsNone(r.getdel(k("never")))

    def test_mget_mset_msetnx(self):
        r, k, w = self.r, self.k, self.wire()
        self.assertTrue(r.mset({k("a"): "1", k("b"): "2", k("c"): "3"}))
        self.assertEqual(r.mget(k("a"), k("missing"), k("c"), k("a")), ["1", None, "3", "1"])
        # The last of a repeated key wins.
        self.assertEqual(w.call("MSET", k("d"), "1", k("d"), "2"), "OK")
        self.assertEqual(r.get(k("d")), "2")
        # MSET drops expiries.
        r.set(k("a"), "x", ex=100)
        r.mset({k("a"): "y"})
        self.assertEqual(r.ttl(k("a")), -1)
        self.assertEqual(w.call("MSETNX", k("e"), "1", k("f"), "2"), 1)
        self.assertEqual(r.mget(k("e"), k("f")), ["1", "2"])
        # One key exists: none is set.
        self.assertEqual(w.call("MSETNX", k("g"), "1", k("e"), "9"), 0)
        self.assertEqual(r.mget(k("g"), k("e")), [None, "1"])
        self.assertErr(w.call("MSET", k("a")), "ERR wrong number of arguments for 'mset' command")
        self.assertErr(w.call("MSET", k("a"), "1", k("b")), "ERR wrong number of arguments for 'mset' command")
        self.assertErr(w.call("MSETNX", k("a")), "ERR wrong number of arguments for 'msetnx' command")
        self.assertErr(w.call("MGET"), "ERR wrong number of arguments for 'mget' command")
        # Many keys in one command.
        many = {k(f"m{i:04d}"): str(i) for i in range(500)}
        self.assertTrue(r.mset(many))
        self.assertEqual(r.mget(list(many)), list(many.values()))

    def test_del_unlink_exists(self):
        r, k = self.r, self.k
        r.mset({k("a"): "1", k("b"): "2", k("c"): "3"})
        self.assertEqual(r.exists(k("a")), 1)
        self.assertEqual(r.exists(k("a"), k("a")), 2, "EXISTS counts a repeated key each time")
        self.assertEqual(r.exists(k("a"), k("b"), k("missing")), 2)
        self.assertEqual(r.exists(k("missing")), 0)
        self.assertEqual(r.delete(k("a"), k("missing")), 1)
        self.assertEqual(r.delete(k("a")), 0)
        self.assertEqual(r.unlink(k("b"), k("c"), k("missing")), 2)
        self.assertEqual(r.exists(k("a"), k("b"), k("c")), 0)
        r.mset({k("d"): "1"})
        self.assertEqual(r.delete(k("d"), k("d")), 1, "a key deleted once counts once")
        w = self.wire()
        self.assertErr(w.call("DEL"), "ERR wrong number of arguments for 'del' command")
        self.assertErr(w.call("EXISTS"), "ERR wrong number of arguments for 'exists' command")

    def test_incr_decr(self):
        r, k, w = self.r, self.k, self.wire()
        self.assertEqual(r.incr(k("n")), 1)
        self.assertEqual(r.incr(k("n")), 2)
        self.assertEqual(r.incrby(k("n"), 10), 12)
        self.assertEqual(r.incrby(k("n"), -20), -8)
        self.assertEqual(r.decr(k("n")), -9)
        self.assertEqual(r.decrby(k("n"), 1), -10)
        self.assertEqual(r.decrby(k("m"), 5), -5)
        self.assertEqual(r.get(k("n")), "-10")
        self.assertEqual(w.kind_of_next("INCR", k("n")), ":")
        # INCR keeps an expiry.
        r.set(k("t"), "5", ex=100)
        self.assertEqual(r.incr(k("t")), 6)
        self.assertIn(r.ttl(k("t")), range(90, 101))
        r.set(k("max"), str(2**63 - 1))
        self.assertErr(w.call("INCR", k("max")), "ERR increment or decrement would overflow")
        self.assertErr(w.call("INCRBY", k("max"), "1"), "ERR increment or decrement would overflow")
        self.assertEqual(r.get(k("max")), str(2**63 - 1))
        r.set(k("min"), str(-(2**63)))
        self.assertErr(w.call("DECR", k("min")), "ERR increment or decrement would overflow")
        self.assertEqual(r.incrby(k("min"), 2**63 - 1), -1)
        self.assertErr(w.call("DECRBY", k("min"), str(-(2**63))), "ERR decrement would overflow")
        for value in ["abc", "1.5", " 1", "1 ", "01", "+1", "", "-0", str(2**63), "1e3"]:
            with self.subTest(value=value):
                r.set(k("bad"), value)
                self.assertErr(w.call("INCR", k("bad")), "ERR value is not an integer or out of range")
                self.assertEqual(r.get(k("bad")), value)
        for increment in ["abc", "1.5", "", str(2**63)]:
            with self.subTest(increment=increment):
                self.assertErr(w.call("INCRBY", k("n"), increment), "ERR value is not an integer or out of range")
        self.assertErr(w.call("INCR"), "ERR wrong number of arguments for 'incr' command")
        self.assertErr(w.call("INCRBY", k("n")), "ERR wrong number of arguments for 'incrby' command")

    def test_incrbyfloat(self):
        r, k, w = self.r, self.k, self.wire()
        self.assertEqual(w.call("INCRBYFLOAT", k("f"), "1.5"), "1.5")
        self.assertEqual(w.kind_of_next("INCRBYFLOAT", k("f"), "0"), "$")
        r.set(k("f"), "10.50")
        self.assertEqual(w.call("INCRBYFLOAT", k("f"), "0.1"), "10.6")
        self.assertEqual(w.call("INCRBYFLOAT", k("f"), "-5"), "5.6")
        r.set(k("e"), "5.0e3")
        self.assertEqual(w.call("INCRBYFLOAT", k("e"), "2.0e2"), "5200")
        self.assertEqual(r.get(k("e")), "5200")
        r.set(k("i"), "3")
        self.assertEqual(w.call("INCRBYFLOAT", k("i"), "1.25"), "4.25")
        self.assertEqual(w.call("INCRBYFLOAT", k("i"), "-4.25"), "0")
        self.assertEqual(r.incrbyfloat(k("i"), 2.5), 2.5)
        r.set(k("bad"), "abc")
        self.assertErr(w.call("INCRBYFLOAT", k("bad"), "1"), "ERR value is not a valid float")
        self.assertErr(w.call("INCRBYFLOAT", k("i"), "abc"), "ERR value is not a valid float")
        self.assertErr(w.call("INCRBYFLOAT", k("i"), ""), "ERR value is not a valid float")
        self.assertEqual(r.get(k("i")), "2.5")
        self.assertErr(w.call("INCRBYFLOAT", k("i")), "ERR wrong number of arguments for 'incrbyfloat' command")

    def test_append_and_strlen(self):
        r, k = self.r, self.k
        self.assertEqual(r.strlen(k("a")), 0)
        self.assertEqual(r.append(k("a"), "Hello"), 5)
        self.assertEqual(r.append(k("a"), " World"), 11)
        self.assertEqual(r.get(k("a")), "Hello World")
        self.assertEqual(r.strlen(k("a")), 11)
        self.assertEqual(r.append(k("a"), ""), 11)
        # APPEND keeps an expiry.
        r.set(k("t"), "x", ex=100)
        self.assertEqual(r.append(k("t"), "y"), 2)
        self.assertIn(r.ttl(k("t")), range(90, 101))
        b = client(decode=False)
        self.addCleanup(b.close)
        b.set(k("u"), "é".encode())
        self.assertEqual(b.strlen(k("u")), 2, "STRLEN counts bytes")
        self.assertEqual(b.append(k("u"), b"\x00"), 3)

    def test_expire_family(self):
        r, k, w = self.r, self.k, self.wire()
        self.assertEqual(r.ttl(k("missing")), -2)
        self.assertEqual(r.pttl(k("missing")), -2)
        self.assertFalse(r.expire(k("missing"), 100))
        r.set(k("a"), "v")
        self.assertEqual(r.ttl(k("a")), -1)
        self.assertEqual(r.pttl(k("a")), -1)
        self.assertEqual(w.call("EXPIRE", k("a"), "100"), 1)
        self.assertIn(r.ttl(k("a")), range(90, 101))
        self.assertEqual(w.call("PEXPIRE", k("a"), "50000"), 1)
        self.assertTrue(40_000 <= r.pttl(k("a")) <= 50_000)
        self.assertIn(r.ttl(k("a")), range(40, 51))
        now = time.time()
        self.assertEqual(w.call("EXPIREAT", k("a"), str(int(now) + 200)), 1)
        self.assertIn(r.ttl(k("a")), range(190, 201))
        self.assertEqual(w.call("PEXPIREAT", k("a"), str(int(now * 1000) + 300_000)), 1)
        self.assertIn(r.ttl(k("a")), range(290, 301))
        # PERSIST.
        self.assertEqual(w.call("PERSIST", k("a")), 1)
        self.assertEqual(r.ttl(k("a")), -1)
        self.assertEqual(w.call("PERSIST", k("a")), 0)
        self.assertEqual(w.call("PERSIST", k("missing")), 0)
        # NX / XX / GT / LT; a key without expiry counts as an infinite one.
        r.set(k("o"), "v")
        self.assertEqual(w.call("EXPIRE", k("o"), "100", "XX"), 0)
        self.assertEqual(w.call("EXPIRE", k("o"), "100", "GT"), 0)
        self.assertEqual(r.ttl(k("o")), -1)
        self.assertEqual(w.call("EXPIRE", k("o"), "100", "NX"), 1)
        self.assertEqual(w.call("EXPIRE", k("o"), "200", "NX"), 0)
        self.assertIn(r.ttl(k("o")), range(90, 101))
        self.assertEqual(w.call("EXPIRE", k("o"), "200", "XX"), 1)
        self.assertIn(r.ttl(k("o")), range(190, 201))
        self.assertEqual(w.call("EXPIRE", k("o"), "100", "GT"), 0)
        self.assertEqual(w.call("EXPIRE", k("o"), "300", "GT"), 1)
        self.assertIn(r.ttl(k("o")), range(290, 301))
        self.assertEqual(w.call("EXPIRE", k("o"), "400", "LT"), 0)
        self.assertEqual(w.call("EXPIRE", k("o"), "150", "lt"), 1)
        self.assertIn(r.ttl(k("o")), range(140, 151))
        self.assertEqual(w.call("PEXPIRE", k("o"), "100000", "XX", "LT"), 1)
        self.assertIn(r.ttl(k("o")), range(90, 101))
        r.set(k("lt"), "v")
        self.assertEqual(w.call("EXPIRE", k("lt"), "100", "LT"), 1)
        self.assertIn(r.ttl(k("lt")), range(90, 101))
        self.assertEqual(w.call("EXPIREAT", k("lt"), str(int(now) + 50), "GT"), 0)
        self.assertEqual(w.call("PEXPIREAT", k("lt"), str(int(now * 1000) + 50_000), "LT"), 1)
        self.assertTrue(r.expire(k("lt"), 100, nx=False, xx=True))
        # A time in the past deletes the key.
        r.set(k("gone"), "v")
        self.assertEqual(w.call("EXPIRE", k("gone"), "-1"), 1)
        self.assertEqual(r.exists(k("gone")), 0)
        r.set(k("gone"), "v")
        self.assertEqual(w.call("EXPIREAT", k("gone"), str(int(now) - 10)), 1)
        self.assertIsNone(r.get(k("gone")))
        r.set(k("gone"), "v")
        self.assertEqual(w.call("PEXPIRE", k("gone"), "0"), 1)
        self.assertEqual(r.ttl(k("gone")), -2)
        # Errors.
        self.assertErr(
            w.call("EXPIRE", k("o"), "10", "NX", "XX"),
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        )
        self.assertErr(
            w.call("EXPIRE", k("o"), "10", "GT", "LT"),
            "ERR GT and LT options at the same time are not compatible",
        )
        self.assertErr(w.call("EXPIRE", k("o"), "10", "FOO"), "ERR Unsupported option FOO")
        self.assertErr(w.call("EXPIRE", k("o"), "abc"), "ERR value is not an integer or out of range")
        self.assertErr(w.call("PEXPIREAT", k("o"), "1.5"), "ERR value is not an integer or out of range")
        self.assertErr(w.call("EXPIRE", k("o")), "ERR wrong number of arguments for 'expire' command")
        self.assertErr(w.call("TTL"), "ERR wrong number of arguments for 'ttl' command")

    def test_keys_expire(self):
        r, k = self.r, self.k
        self.assertTrue(r.set(k("short"), "v", px=100))
        self.assertTrue(r.set(k("long"), "v", ex=100))
        self.assertTrue(r.set(k("ex1"), "v"))
        self.assertTrue(r.pexpire(k("ex1"), 100))
        self.assertTrue(r.execute_command("SETEX", k("ex2"), 1, "v"))
        self.assertLessEqual(r.pttl(k("short")), 100)
        # Read it from every node until it is gone, then it is gone
        # everywhere and for every command.
        eventually("the PX 100 key to expire", lambda: r.get(k("short")) is None)
        for index in range(len(ADDRS)):
            other = client(index)
            self.assertIsNone(other.get(k("short")))
            self.assertEqual(other.exists(k("short")), 0)
            self.assertEqual(other.ttl(k("short")), -2)
            self.assertEqual(other.pttl(k("short")), -2)
            self.assertEqual(other.type(k("short")), "none")
            self.assertEqual(other.strlen(k("short")), 0)
            self.assertEqual(other.keys(k("short")), [])
            other.close()
        eventually("the PEXPIRE 100 key to expire", lambda: r.exists(k("ex1")) == 0)
        eventually("the SETEX 1 key to expire", lambda: r.exists(k("ex2")) == 0, timeout=15)
        self.assertEqual(sorted(r.keys(k("*"))), [k("long")])
        rr = raw()
        self.addCleanup(rr.close)
        self.assertEqual(scan_all(rr, match=k("*"), count=1000)[0], [k("long")])
        # An expired key is a missing one: NX sets it, INCR starts at 0.
        r.set(k("again"), "41", px=100)
        eventually("the key to expire", lambda: r.exists(k("again")) == 0)
        self.assertEqual(r.incr(k("again")), 1)
        self.assertEqual(r.ttl(k("again")), -1)
        r.set(k("nx"), "old", px=100)
        eventually("the key to expire", lambda: r.exists(k("nx")) == 0)
        self.assertTrue(r.set(k("nx"), "new", nx=True))
        self.assertEqual(r.get(k("nx")), "new")

    def test_type(self):
        r, k = self.r, self.k
        r.set(k("s"), "v")
        self.assertEqual(r.type(k("s")), "string")
        self.assertEqual(r.type(k("missing")), "none")
        w = self.wire()
        self.assertEqual(w.kind_of_next("TYPE", k("s")), "+")

    def test_other_types(self):
        w = self.wire()
        commands = [
            ["LPUSH", self.k("l"), "a"],
            ["RPUSH", self.k("l"), "a"],
            ["HSET", self.k("h"), "f", "v"],
            ["SADD", self.k("s"), "m"],
            ["ZADD", self.k("z"), "1", "m"],
            ["XADD", self.k("x"), "*", "f", "v"],
        ]
        for command in commands:
            with self.subTest(command=command[0]):
                reply = w.call(*command)
                if ZDB:
                    self.assertErrStarts(reply, f"ERR unknown command '{command[0]}'")
                else:
                    self.assertNotIsInstance(reply, Err)
        if not ZDB:
            self.assertErrStarts(w.call("GET", self.k("l")), "WRONGTYPE")
        else:
            self.assertEqual(w.call("EXISTS", self.k("l"), self.k("h"), self.k("s")), 0)

    # ----- the keyspace

    def test_keys_patterns(self):
        r, k = self.r, self.k
        names = ["hello", "hallo", "hxllo", "hllo", "heeeello", "a*b", "axb", "a?b", "[x]", "x"]
        r.mset({k(name): name for name in names})

        def keys(pattern):
            return sorted(key[len(self.prefix):] for key in r.keys(self.prefix + pattern))

        self.assertEqual(keys("*"), sorted(names))
        self.assertEqual(keys("h?llo"), ["hallo", "hello", "hxllo"])
        self.assertEqual(keys("h*llo"), ["hallo", "heeeello", "hello", "hllo", "hxllo"])
        self.assertEqual(keys("h[ae]llo"), ["hallo", "hello"])
        self.assertEqual(keys("h[^e]llo"), ["hallo", "hxllo"])
        self.assertEqual(keys("h[a-b]llo"), ["hallo"])
        self.assertEqual(keys("a\\*b"), ["a*b"])
        self.assertEqual(keys("a*b"), ["a*b", "a?b", "axb"])
        self.assertEqual(keys("a\\?b"), ["a?b"])
        self.assertEqual(keys("\\[x\\]"), ["[x]"])
        self.assertEqual(keys("x"), ["x"])
        self.assertEqual(keys("nothing*"), [])
        self.assertEqual(keys("hello"), ["hello"])
        # The whole keyspace has them too.
        everything = set(r.keys("*"))
        self.assertTrue({k(name) for name in names} <= everything)

    def test_scan(self):
        r, k = self.r, self.k
        expected = {k(f"s{i:04d}") for i in range(250)}
        pipe = r.pipeline(transaction=False)
        for key in expected:
            pipe.set(key, "v")
        pipe.set(self.prefix.rstrip(":") + "-other", "v")
        pipe.execute()
        rr = raw()
        self.addCleanup(rr.close)
        for count in (None, 5, 10, 1000):
            with self.subTest(count=count):
                seen, pages = scan_all(rr, match=k("s*"), count=count)
                self.assertEqual(set(seen), expected, "every key, at least once")
                self.assertTrue(all(key.startswith(k("s")) for key in seen))
                if count == 5:
                    self.assertGreater(pages, 1, "COUNT 5 takes several pages")
        seen, _ = scan_all(rr, match=k("s000[0-4]"), count=1000)
        self.assertEqual(set(seen), {k(f"s000{i}") for i in range(5)})
        self.assertEqual(scan_all(rr, match=k("nothing*"), count=100)[0], [])
        # Without MATCH: the whole keyspace, these among them.
        seen, _ = scan_all(rr, count=500)
        self.assertTrue(expected <= set(seen))
        # redis-py's own iteration.
        self.assertEqual(set(r.scan_iter(match=k("s*"), count=200)), expected)
        w = self.wire()
        reply = w.call("SCAN", "0", "MATCH", k("s*"), "COUNT", "10")
        self.assertIsInstance(reply[0], str)
        self.assertErr(w.call("SCAN", "0", "COUNT", "0"), "ERR syntax error")
        self.assertErr(w.call("SCAN", "0", "COUNT", "abc"), "ERR value is not an integer or out of range")
        self.assertErr(w.call("SCAN", "0", "MATCH"), "ERR syntax error")
        self.assertErr(w.call("SCAN"), "ERR wrong number of arguments for 'scan' command")

    def test_scan_cursor_works_with_common_clients(self):
        # redis-cli --scan and redis-py's scan() read a cursor as an
        # unsigned 64-bit decimal number: the opaque cursors must be.
        r, k = self.r, self.k
        r.mset({k(f"c{i:03d}"): "v" for i in range(30)})
        rr = raw()
        self.addCleanup(rr.close)
        cursor, seen = "0", set()
        while True:
            cursor, keys = rr.execute_command("SCAN", cursor, "MATCH", k("*"), "COUNT", 5)
            self.assertRegex(cursor, r"^(0|[1-9][0-9]*)$")
            self.assertLess(int(cursor), 2**64)
            seen.update(keys)
            if cursor == "0":
                break
        self.assertEqual(len(seen), 30)
        cursor, seen = 0, set()
        while True:
            cursor, keys = r.scan(cursor, match=k("*"), count=5)
            self.assertIsInstance(cursor, int)
            seen.update(keys)
            if cursor == 0:
                break
        self.assertEqual(len(seen), 30)

    @unittest.skipUnless(BIG, "set ZDB_REDIS_BIG=1 to write and scan 100,000 keys")
    def test_scan_100k_during_splits(self):
        prefix = os.environ.get("ZDB_REDIS_BIG_PREFIX") or self.k()
        total, batch, per_round_trip = 100_000, 1000, 10
        keys = [f"{prefix}{i:06d}" for i in range(total)]
        # MSETs of 1,000 keys, ten of them pipelined per round trip.
        pipe = self.r.pipeline(transaction=False)
        for start in range(0, total, batch * per_round_trip):
            for first in range(start, min(start + batch * per_round_trip, total), batch):
                pipe.mset({key: key for key in keys[first : first + batch]})
            results = pipe.execute()
            self.assertEqual(results, [True] * len(results))
        self.assertEqual(self.r.mget(keys[:: total // 100]), keys[:: total // 100])

        def step(line):
            if LOCKSTEP:
                print(line, flush=True)
                self.assertTrue(sys.stdin.readline(), "the caller closed stdin")

        step("LOADED")
        started = time.monotonic()
        rr = raw()
        self.addCleanup(rr.close)
        seen, pages = scan_all(
            rr, match=prefix + "*", count=1000, on_page=lambda page: step(f"PAGE {page}")
        )
        missing = set(keys) - set(seen)
        self.assertFalse(
            missing, f"{len(missing)} keys were never returned, e.g. {sorted(missing)[:5]}"
        )
        self.assertEqual(set(seen), set(keys))
        self.assertGreaterEqual(pages, total // 1000 // 2, "COUNT 1000 pages the scan")
        print(
            f"SCANNED {len(set(seen))} keys ({len(seen)} returned) in {pages} pages,"
            f" {time.monotonic() - started:.1f} s",
            flush=True,
        )
        self.assertEqual(self.r.get(keys[-1]), keys[-1])

    def test_dbsize(self):
        r, k = self.r, self.k
        r.mset({k(f"d{i}"): "v" for i in range(5)})
        self.assertGreaterEqual(r.dbsize(), 5)
        w = self.wire()
        self.assertEqual(w.kind_of_next("DBSIZE"), ":")
        self.assertErr(w.call("DBSIZE", "x"), "ERR wrong number of arguments for 'dbsize' command")

    def test_info(self):
        r, k = self.r, self.k
        w = self.wire()
        text = w.call("INFO")
        for section in ["Server", "Clients", "Stats", "Replication", "Keyspace"]:
            self.assertIn(f"# {section}\r\n", text)
        stats = r.info("stats")
        for field in ["keyspace_hits", "keyspace_misses", "evicted_keys", "expired_keys"]:
            self.assertIsInstance(stats[field], int, field)
        self.assertIn("connected_clients", r.info("clients"))
        self.assertIn("role", r.info("replication"))
        self.assertIn("# Stats", w.call("INFO", "stats"))
        self.assertNotIn("# Server", w.call("INFO", "stats"))
        # Hits and misses count GETs.
        r.set(k("hit"), "v")
        before = r.info("stats")
        for _ in range(3):
            self.assertEqual(r.get(k("hit")), "v")
        for _ in range(2):
            self.assertIsNone(r.get(k("miss")))
        after = r.info("stats")
        self.assertGreaterEqual(after["keyspace_hits"] - before["keyspace_hits"], 3)
        self.assertGreaterEqual(after["keyspace_misses"] - before["keyspace_misses"], 2)
        keyspace = r.info("keyspace")
        self.assertIn("db0", keyspace)
        self.assertGreaterEqual(keyspace["db0"]["keys"], 1)
        # A RESP3 client reads the same text.
        r3 = client(protocol=3)
        self.addCleanup(r3.close)
        self.assertIn("keyspace_hits", r3.info("stats"))

    def test_command_count_and_docs(self):
        w = self.wire()
        count = w.call("COMMAND", "COUNT")
        self.assertIsInstance(count, int)
        self.assertGreater(count, 20)
        docs = w.call("COMMAND", "DOCS", "GET")
        self.assertIsInstance(docs, list)
        self.assertTrue(docs)
        self.assertEqual(docs[0].lower(), "get")
        self.assertIn("summary", pairs(docs[1]))
        docs = w.call("COMMAND", "DOCS")
        self.assertTrue(docs and len(docs) % 2 == 0)
        names = {name.lower() for name in docs[::2]}
        self.assertTrue({"get", "set", "scan", "incr", "expire"} <= names, names)
        w.call("HELLO", "3")
        docs = w.call("COMMAND", "DOCS", "SET")
        self.assertIsInstance(docs, dict)
        self.assertIn("set", {name.lower() for name in docs})

    # ----- transactions

    def test_multi_exec(self):
        k, w = self.k, self.wire()
        self.assertEqual(w.call("MULTI"), "OK")
        self.assertEqual(w.call("SET", k("a"), "1"), "QUEUED")
        self.assertEqual(w.call("INCR", k("a")), "QUEUED")
        self.assertEqual(w.call("GET", k("a")), "QUEUED")
        self.assertEqual(w.call("GET", k("missing")), "QUEUED")
        self.assertEqual(w.call("DEL", k("b")), "QUEUED")
        # Nothing happened yet.
        self.assertIsNone(self.r.get(k("a")))
        self.assertEqual(w.call("EXEC"), ["OK", 2, "2", None, 0])
        self.assertEqual(self.r.get(k("a")), "2")
        # Errors.
        self.assertErr(w.call("EXEC"), "ERR EXEC without MULTI")
        self.assertErr(w.call("DISCARD"), "ERR DISCARD without MULTI")
        self.assertEqual(w.call("MULTI"), "OK")
        self.assertErr(w.call("MULTI"), "ERR MULTI calls can not be nested")
        self.assertErr(w.call("WATCH", k("a")), "ERR WATCH inside MULTI is not allowed")
        self.assertEqual(w.call("SET", k("a"), "3"), "QUEUED")
        self.assertEqual(w.call("EXEC"), ["OK"])
        # An error at run time is the result of its command only.
        self.assertEqual(w.call("MULTI"), "OK")
        self.assertEqual(w.call("SET", k("s"), "text"), "QUEUED")
        self.assertEqual(w.call("INCR", k("s")), "QUEUED")
        self.assertEqual(w.call("SET", k("after"), "yes"), "QUEUED")
        results = w.call("EXEC")
        self.assertEqual(results[0], "OK")
        self.assertErr(results[1], "ERR value is not an integer or out of range")
        self.assertEqual(results[2], "OK")
        self.assertEqual(self.r.get(k("after")), "yes")
        # An error while queueing aborts the whole transaction.
        self.assertEqual(w.call("MULTI"), "OK")
        self.assertEqual(w.call("SET", k("never"), "1"), "QUEUED")
        self.assertErr(w.call("GET"), "ERR wrong number of arguments for 'get' command")
        self.assertErrStarts(w.call("NOSUCHCMD"), "ERR unknown command 'NOSUCHCMD'")
        self.assertErr(w.call("EXEC"), "EXECABORT Transaction discarded because of previous errors.")
        self.assertIsNone(self.r.get(k("never")))
        # An empty transaction.
        self.assertEqual(w.call("MULTI"), "OK")
        self.assertEqual(w.call("EXEC"), [])

    def test_discard(self):
        k, w = self.k, self.wire()
        self.r.set(k("a"), "1")
        self.assertEqual(w.call("MULTI"), "OK")
        self.assertEqual(w.call("SET", k("a"), "2"), "QUEUED")
        self.assertEqual(w.call("DISCARD"), "OK")
        self.assertEqual(self.r.get(k("a")), "1")
        self.assertErr(w.call("EXEC"), "ERR EXEC without MULTI")
        # The connection is out of MULTI: commands run at once.
        self.assertEqual(w.call("SET", k("a"), "3"), "OK")
        self.assertEqual(self.r.get(k("a")), "3")

    def test_redis_py_transactions(self):
        r, k = self.r, self.k
        pipe = r.pipeline(transaction=True)
        pipe.set(k("a"), "1").incr(k("a")).incrby(k("a"), 5).get(k("a")).exists(k("a"))
        self.assertEqual(pipe.execute(), [True, 2, 7, "7", 1])

        def add_one(pipe):
            value = int(pipe.get(k("c")) or 0)
            pipe.multi()
            pipe.set(k("c"), value + 1)

        for _ in range(5):
            r.transaction(add_one, k("c"))
        self.assertEqual(r.get(k("c")), "5")

    def test_watch(self):
        k, w = self.k, self.wire()
        # The other connection is to another node when there is one.
        other = client(len(ADDRS) - 1)
        self.addCleanup(other.close)
        self.r.set(k("a"), "1")
        # Unchanged: EXEC runs.
        self.assertEqual(w.call("WATCH", k("a"), k("b")), "OK")
        self.assertEqual(w.call("MULTI"), "OK")
        self.assertEqual(w.call("SET", k("a"), "2"), "QUEUED")
        self.assertEqual(w.call("EXEC"), ["OK"])
        self.assertEqual(other.get(k("a")), "2")
        # Changed by another connection: EXEC answers a null array.
        self.assertEqual(w.call("WATCH", k("a")), "OK")
        self.assertTrue(other.set(k("a"), "changed"))
        self.assertEqual(w.call("MULTI"), "OK")
        self.assertEqual(w.call("SET", k("a"), "mine"), "QUEUED")
        self.assertEqual(w.kind_of_next("EXEC"), "*")
        self.assertEqual(self.r.get(k("a")), "changed")
        self.assertEqual(w.call("WATCH", k("a")), "OK")
        other.set(k("a"), "again")
        w.call("MULTI")
        w.call("SET", k("a"), "mine")
        self.assertIsNone(w.call("EXEC"))
        self.assertEqual(self.r.get(k("a")), "again")
        # A watched key that did not exist and now does.
        self.assertEqual(w.call("WATCH", k("new")), "OK")
        other.set(k("new"), "x")
        w.call("MULTI")
        w.call("SET", k("new"), "mine")
        self.assertIsNone(w.call("EXEC"))
        self.assertEqual(self.r.get(k("new")), "x")
        # Deleted by another connection.
        self.assertEqual(w.call("WATCH", k("new")), "OK")
        other.delete(k("new"))
        w.call("MULTI")
        w.call("SET", k("new"), "mine")
        self.assertIsNone(w.call("EXEC"))
        self.assertIsNone(self.r.get(k("new")))
        # EXEC unwatches: the next transaction runs.
        other.set(k("a"), "later")
        w.call("MULTI")
        w.call("SET", k("a"), "mine")
        self.assertEqual(w.call("EXEC"), ["OK"])
        # UNWATCH, and DISCARD, forget the watched keys.
        self.assertEqual(w.call("WATCH", k("a")), "OK")
        self.assertEqual(w.call("UNWATCH"), "OK")
        other.set(k("a"), "x")
        w.call("MULTI")
        w.call("SET", k("a"), "after-unwatch")
        self.assertEqual(w.call("EXEC"), ["OK"])
        self.assertEqual(w.call("WATCH", k("a")), "OK")
        w.call("MULTI")
        self.assertEqual(w.call("DISCARD"), "OK")
        other.set(k("a"), "y")
        w.call("MULTI")
        w.call("SET", k("a"), "after-discard")
        self.assertEqual(w.call("EXEC"), ["OK"])
        self.assertEqual(self.r.get(k("a")), "after-discard")
        # The connection's own writes before MULTI do not abort it.
        self.assertEqual(w.call("WATCH", k("own")), "OK")
        self.assertEqual(w.call("SET", k("own"), "1"), "OK")
        w.call("MULTI")
        w.call("INCR", k("own"))
        self.assertIsNone(w.call("EXEC"), "a watched key changed, by whomever")
        # redis-py raises WatchError.
        pipe = self.r.pipeline(transaction=True)
        pipe.watch(k("p"))
        other.set(k("p"), "1")
        pipe.multi()
        pipe.set(k("p"), "2")
        with self.assertRaises(redis.WatchError):
            pipe.execute()
        self.assertEqual(self.r.get(k("p")), "1")

    # ----- errors

    def test_unknown_command_and_arity(self):
        w = self.wire()
        self.assertErrStarts(w.call("FOO"), "ERR unknown command 'FOO'")
        self.assertErrStarts(w.call("FOO", "bar", "baz"), "ERR unknown command 'FOO'")
        self.assertErr(w.call("GET"), "ERR wrong number of arguments for 'get' command")
        self.assertErr(w.call("get", "a", "b"), "ERR wrong number of arguments for 'get' command")
        self.assertErr(w.call("SETNX", "a"), "ERR wrong number of arguments for 'setnx' command")
        self.assertErr(w.call("STRLEN"), "ERR wrong number of arguments for 'strlen' command")
        # The connection stays usable.
        self.assertEqual(w.call("PING"), "PONG")
        with self.assertRaises(redis.ResponseError) as raised:
            self.r.execute_command("FOO")
        self.assertIn("unknown command", str(raised.exception))
        self.assertTrue(self.r.ping())

    def test_inline_commands(self):
        # redis-cli-less tools (telnet, nc) send commands as plain lines.
        w = self.wire()
        w.sock.sendall(b"PING\r\n")
        self.assertEqual(w.reply(), "PONG")
        w.sock.sendall(f"SET {self.k('inline')} hello\r\n".encode())
        self.assertEqual(w.reply(), "OK")
        w.sock.sendall(f"GET {self.k('inline')}\r\n".encode())
        self.assertEqual(w.reply(), "hello")

    # ----- pipelines, and every node

    def test_pipeline_of_thousands(self):
        r, k = self.r, self.k
        pipe = r.pipeline(transaction=False)
        for i in range(1000):
            pipe.set(k(f"p{i:04d}"), f"value-{i}")
        for i in range(1000):
            pipe.get(k(f"p{i:04d}"))
        results = pipe.execute()
        self.assertEqual(results[:1000], [True] * 1000)
        self.assertEqual(results[1000:], [f"value-{i}" for i in range(1000)])
        # Raw, all in one write: the replies come back in order.
        w = self.wire()
        commands = []
        for i in range(500):
            commands.append(["INCR", k("counter")])
            commands.append(["GET", k(f"p{i:04d}")])
        out = b""
        for command in commands:
            out += b"*%d\r\n" % len(command)
            for arg in command:
                arg = arg.encode()
                out += b"$%d\r\n%s\r\n" % (len(arg), arg)
        w.sock.sendall(out)
        replies = [w.reply() for _ in commands]
        self.assertEqual(replies[::2], list(range(1, 501)))
        self.assertEqual(replies[1::2], [f"value-{i}" for i in range(500)])

    def test_every_node_sees_the_same_data(self):
        k = self.k
        clients = [client(index) for index in range(len(ADDRS))]
        for each in clients:
            self.addCleanup(each.close)
        for index, writer in enumerate(clients):
            self.assertTrue(writer.set(k(f"from{index}"), f"node{index}"))
            # Linearizable: every node reads the write at once.
            for reader in clients:
                self.assertEqual(reader.get(k(f"from{index}")), f"node{index}")
        for index, each in enumerate(clients):
            self.assertEqual(each.incr(k("counter")), index + 1)
        for each in clients:
            self.assertEqual(each.get(k("counter")), str(len(clients)))
            self.assertEqual(
                sorted(each.keys(k("from*"))), sorted(k(f"from{i}") for i in range(len(clients)))
            )
            self.assertEqual(each.exists(*[k(f"from{i}") for i in range(len(clients))]), len(clients))
        clients[0].set(k("t"), "v", ex=100)
        for each in clients:
            self.assertIn(each.ttl(k("t")), range(90, 101))
        clients[-1].delete(k("from0"))
        for each in clients:
            self.assertIsNone(each.get(k("from0")))


class RedisFlush(Case):
    """Runs after RedisCommands (alphabetical order), on no key prefix:
    FLUSHDB and FLUSHALL empty the whole database, every node's view."""

    def test_zz_flushdb_and_flushall(self):
        r, w = self.r, self.wire()
        r.mset({f"flush-{RUN}-{i}": "v" for i in range(10)})
        self.assertEqual(w.call("FLUSHDB"), "OK")
        self.assertEqual(r.dbsize(), 0)
        self.assertEqual(r.keys("*"), [])
        rr = raw()
        self.addCleanup(rr.close)
        self.assertEqual(scan_all(rr)[0], [])
        r.mset({"a": "1", "b": "2", "c": "3"})
        self.assertEqual(r.dbsize(), 3)
        self.assertEqual(sorted(r.keys("*")), ["a", "b", "c"])
        self.assertEqual(r.delete("a"), 1)
        self.assertEqual(r.dbsize(), 2)
        for index in range(len(ADDRS)):
            other = client(index)
            self.assertEqual(other.dbsize(), 2)
            other.close()
        self.assertEqual(w.call("FLUSHALL"), "OK")
        self.assertEqual(r.dbsize(), 0)
        self.assertIsNone(r.get("b"))
        r.set("x", "1")
        self.assertEqual(w.call("FLUSHDB", "SYNC"), "OK")
        self.assertEqual(r.dbsize(), 0)
        r.set("x", "1")
        self.assertEqual(w.call("FLUSHALL", "ASYNC"), "OK")
        eventually("FLUSHALL ASYNC to empty the database", lambda: r.dbsize() == 0)
        self.assertErr(w.call("FLUSHDB", "NOW"), "ERR syntax error")
        for index in range(len(ADDRS)):
            other = client(index)
            self.assertEqual(other.dbsize(), 0)
            self.assertEqual(other.keys("*"), [])
            other.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
