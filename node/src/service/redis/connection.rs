//! One client connection: requests taken whole from a read buffer filled
//! in large chunks, replies queued in a write buffer and written with one
//! write per batch. A pipeline of N requests thus costs a few reads and
//! one write rather than N of each: the caller answers every request
//! already buffered ([`Connection::buffered_request`]) before it flushes.
//!
//! After a [`ConnectionError::Frame`] the stream cannot be split into
//! requests any more; the caller answers [`FrameError::to_reply`], flushes
//! and closes, as Redis does.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{encode, parse_request, Frame, FrameError, FrameLimits, Protocol};

/// The least room offered to each read: a pipeline arrives in a few
/// reads rather than many small ones.
const READ_CHUNK: usize = 16 * 1024;

/// Buffers grown past this by one large request or reply are dropped
/// once empty, so an idle connection does not keep the memory.
const KEEP_CAPACITY: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("connection i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Not RESP; the text is what Redis answers.
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("the client closed the connection in the middle of a request")]
    ClosedMidRequest,
}

pub struct Connection<S> {
    stream: S,
    read_buf: BytesMut,
    write_buf: BytesMut,
    limits: FrameLimits,
    /// How replies are written; RESP2 until the client sends `HELLO 3`.
    pub protocol: Protocol,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, limits: FrameLimits) -> Self {
        Connection {
            stream,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::new(),
            limits,
            protocol: Protocol::Resp2,
        }
    }

    /// The next request, reading from the socket when the buffer holds no
    /// whole one; None when the peer closed cleanly between requests (an
    /// error if it closed mid-request).
    ///
    /// Cancel safe: bytes read before a cancellation stay buffered, so it
    /// can sit in a `select!` beside a shutdown signal.
    pub async fn read_request(&mut self) -> Result<Option<Vec<Bytes>>, ConnectionError> {
        loop {
            if let Some(request) = self.buffered_request()? {
                return Ok(Some(request));
            }
            if self.read_buf.is_empty() && self.read_buf.capacity() > KEEP_CAPACITY {
                self.read_buf = BytesMut::with_capacity(READ_CHUNK);
            }
            self.read_buf.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return if self.read_buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnectionError::ClosedMidRequest)
                };
            }
        }
    }

    /// A request already in the buffer, without reading (pipelining: the
    /// caller answers every buffered request, then flushes once).
    pub fn buffered_request(&mut self) -> Result<Option<Vec<Bytes>>, ConnectionError> {
        Ok(parse_request(&mut self.read_buf, &self.limits)?)
    }

    /// Queues a reply (encoded with `self.protocol`). Nothing is written
    /// until [`flush`](Self::flush); see [`queued_bytes`](Self::queued_bytes)
    /// to flush early when a batch's replies grow large.
    pub fn queue(&mut self, frame: &Frame) {
        encode(frame, self.protocol, &mut self.write_buf);
    }

    /// The bytes queued and not yet flushed.
    pub fn queued_bytes(&self) -> usize {
        self.write_buf.len()
    }

    /// Writes everything queued. Not cancel safe: cancelled midway, part
    /// of the replies may have been written.
    pub async fn flush(&mut self) -> Result<(), ConnectionError> {
        if !self.write_buf.is_empty() {
            self.stream.write_all(&self.write_buf).await?;
            self.write_buf.clear();
            if self.write_buf.capacity() > KEEP_CAPACITY {
                self.write_buf = BytesMut::new();
            }
        }
        // Streams that buffer themselves (TLS) send only when flushed.
        self.stream.flush().await?;
        Ok(())
    }

    /// Replaces the request limits, e.g. tighter ones before the client
    /// has authenticated.
    pub fn set_limits(&mut self, limits: FrameLimits) {
        self.limits = limits;
    }

    /// The underlying stream (peer address, TLS state).
    pub fn stream(&self) -> &S {
        &self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::redis::frame::parse_frame;
    use tokio::io::{duplex, AsyncWriteExt};

    fn encode_request(args: &[&[u8]]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let frame = Frame::Array(
            args.iter()
                .map(|a| Frame::bulk(Bytes::copy_from_slice(a)))
                .collect(),
        );
        encode(&frame, Protocol::Resp2, &mut out);
        out.to_vec()
    }

    /// Everything the server side writes until it closes, as frames.
    async fn read_frames(mut stream: impl AsyncRead + Unpin) -> Vec<Frame> {
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        loop {
            while let Some(frame) = parse_frame(&mut buf).expect("valid reply") {
                frames.push(frame);
            }
            buf.reserve(READ_CHUNK);
            if stream.read_buf(&mut buf).await.expect("read") == 0 {
                assert!(buf.is_empty(), "a partial reply was left");
                return frames;
            }
        }
    }

    #[tokio::test]
    async fn a_pipeline_of_1000_requests_comes_out_as_1000_requests() {
        let (mut client, server) = duplex(64 * 1024);
        let mut pipeline = Vec::new();
        for i in 0..1000 {
            pipeline.extend(encode_request(&[
                b"SET",
                format!("key:{i}").as_bytes(),
                format!("value:{i}").as_bytes(),
            ]));
        }
        let writer = tokio::spawn(async move {
            client.write_all(&pipeline).await.expect("write");
            // Dropping the client closes its side: a clean end.
        });

        let mut conn = Connection::new(server, FrameLimits::default());
        let mut seen = 0;
        while let Some(request) = conn.read_request().await.expect("valid") {
            assert_eq!(request.len(), 3);
            assert_eq!(request[0], "SET");
            assert_eq!(request[1], format!("key:{seen}").as_bytes());
            assert_eq!(request[2], format!("value:{seen}").as_bytes());
            seen += 1;
        }
        assert_eq!(seen, 1000);
        writer.await.expect("writer");
    }

    #[tokio::test]
    async fn replies_flushed_once_arrive_in_order() {
        let (client, server) = duplex(64 * 1024);
        let (client_read, mut client_write) = tokio::io::split(client);
        let mut pipeline = Vec::new();
        for i in 0..1000 {
            pipeline.extend(encode_request(&[b"INCR", format!("{i}").as_bytes()]));
        }
        client_write.write_all(&pipeline).await.expect("write");
        // A split half closes its direction only when shut down.
        client_write.shutdown().await.expect("shutdown");
        let reader = tokio::spawn(read_frames(client_read));

        let mut conn = Connection::new(server, FrameLimits::default());
        let mut flushes = 0;
        let mut answered = 0;
        while let Some(first) = conn.read_request().await.expect("valid") {
            // Answer the whole buffered batch, then write once.
            let mut request = Some(first);
            while let Some(args) = request {
                let n: i64 = std::str::from_utf8(&args[1])
                    .expect("utf8")
                    .parse()
                    .expect("number");
                conn.queue(&Frame::Integer(n));
                answered += 1;
                request = conn.buffered_request().expect("valid");
            }
            conn.flush().await.expect("flush");
            assert_eq!(conn.queued_bytes(), 0);
            flushes += 1;
        }
        assert_eq!(answered, 1000);
        // The 1000 requests (about 22 KB) arrive in a handful of reads.
        assert!(flushes <= 4, "{flushes} flushes");
        drop(conn);

        let frames = reader.await.expect("reader");
        let expected: Vec<Frame> = (0..1000).map(Frame::Integer).collect();
        assert_eq!(frames, expected);
    }

    #[tokio::test]
    async fn one_flush_writes_all_queued_replies() {
        let (client, server) = duplex(1024);
        let reader = tokio::spawn(read_frames(client));
        let mut conn = Connection::new(server, FrameLimits::default());
        for i in 0..1000 {
            conn.queue(&Frame::bulk(format!("reply:{i}")));
        }
        assert!(conn.queued_bytes() > 1000 * 10);
        conn.flush().await.expect("flush");
        assert_eq!(conn.queued_bytes(), 0);
        drop(conn);
        let expected: Vec<Frame> = (0..1000)
            .map(|i| Frame::bulk(format!("reply:{i}")))
            .collect();
        assert_eq!(reader.await.expect("reader"), expected);
    }

    #[tokio::test]
    async fn a_clean_close_between_requests_is_none() {
        let (mut client, server) = duplex(1024);
        client.write_all(b"PING\r\n").await.expect("write");
        drop(client);
        let mut conn = Connection::new(server, FrameLimits::default());
        assert_eq!(
            conn.read_request().await.expect("valid"),
            Some(vec![Bytes::from("PING")])
        );
        assert!(matches!(conn.read_request().await, Ok(None)));
    }

    #[tokio::test]
    async fn a_close_mid_request_is_an_error() {
        let (mut client, server) = duplex(1024);
        client
            .write_all(b"*2\r\n$3\r\nGET\r\n$3\r\nke")
            .await
            .expect("write");
        drop(client);
        let mut conn = Connection::new(server, FrameLimits::default());
        assert!(matches!(
            conn.read_request().await,
            Err(ConnectionError::ClosedMidRequest)
        ));
    }

    #[tokio::test]
    async fn a_protocol_error_comes_after_the_requests_before_it() {
        let (mut client, server) = duplex(1024);
        client
            .write_all(b"PING\r\n*1\r\n$x\r\n")
            .await
            .expect("write");
        let mut conn = Connection::new(server, FrameLimits::default());
        assert_eq!(
            conn.read_request().await.expect("valid"),
            Some(vec![Bytes::from("PING")])
        );
        match conn.read_request().await {
            Err(ConnectionError::Frame(e)) => {
                conn.queue(&e.to_reply());
                conn.flush().await.expect("flush");
            }
            other => panic!("{other:?}"),
        }
        drop(conn);
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.expect("read");
        assert_eq!(reply, b"-ERR Protocol error: invalid bulk length\r\n");
    }

    #[tokio::test]
    async fn a_large_value_arriving_in_pieces_comes_out_whole() {
        let (mut client, server) = duplex(8 * 1024);
        let value = (0..3_000_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>();
        let request = encode_request(&[b"SET", b"big", &value]);
        let writer = tokio::spawn(async move {
            for piece in request.chunks(7_777) {
                client.write_all(piece).await.expect("write");
            }
        });
        let mut conn = Connection::new(server, FrameLimits::default());
        let args = conn.read_request().await.expect("valid").expect("request");
        assert_eq!(args[2].len(), value.len());
        assert!(args[2] == value);
        assert!(matches!(conn.read_request().await, Ok(None)));
        writer.await.expect("writer");
    }

    #[tokio::test]
    async fn limits_apply_and_can_be_replaced() {
        let (mut client, server) = duplex(1024);
        client
            .write_all(&encode_request(&[b"ECHO", b"0123456789"]))
            .await
            .expect("write");
        client
            .write_all(&encode_request(&[b"ECHO", b"0123456789"]))
            .await
            .expect("write");
        let mut conn = Connection::new(server, FrameLimits::default());
        assert!(conn.read_request().await.expect("valid").is_some());
        conn.set_limits(FrameLimits {
            max_bulk_bytes: 4,
            ..FrameLimits::default()
        });
        assert!(matches!(
            conn.read_request().await,
            Err(ConnectionError::Frame(_))
        ));
    }

    #[tokio::test]
    async fn replies_follow_the_protocol() {
        let (client, server) = duplex(1024);
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut bytes = Vec::new();
            client.read_to_end(&mut bytes).await.expect("read");
            bytes
        });
        let mut conn = Connection::new(server, FrameLimits::default());
        conn.queue(&Frame::Null);
        conn.protocol = Protocol::Resp3;
        conn.queue(&Frame::Null);
        conn.queue(&Frame::Boolean(true));
        conn.flush().await.expect("flush");
        drop(conn);
        assert_eq!(reader.await.expect("reader"), b"$-1\r\n_\r\n#t\r\n");
    }
}
