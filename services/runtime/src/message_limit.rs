//! The size limit on request messages, answered the way the gRPC status-code specification says: a message larger
//! than the server accepts is RESOURCE_EXHAUSTED (tonic's own limit answers OUT_OF_RANGE), with a message that
//! names the limit. It reads only the 5-byte prefix of each length-prefixed message, so a refused message is never
//! buffered.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf as _, Bytes};
use http_body::{Frame, SizeHint};
use tonic::{Status, body::Body};

/// Refuses request messages of more than `max` bytes.
#[derive(Clone, Copy, Debug)]
pub struct MessageLimitLayer {
    max: usize,
}

impl MessageLimitLayer {
    pub fn new(max: usize) -> Self {
        Self { max }
    }
}

impl<S> tower::Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;

    fn layer(&self, inner: S) -> MessageLimit<S> {
        MessageLimit {
            inner,
            max: self.max,
        }
    }
}

#[derive(Clone, Debug)]
pub struct MessageLimit<S> {
    inner: S,
    max: usize,
}

impl<S> tower::Service<http::Request<Body>> for MessageLimit<S>
where
    S: tower::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let max = self.max;
        self.inner
            .call(request.map(|body| Body::new(Checked::new(body, max))))
    }
}

/// A request body whose message prefixes are checked as they pass.
#[derive(Debug)]
struct Checked {
    inner: Body,
    max: usize,
    /// The prefix of the message being read, while fewer than its 5 bytes have arrived.
    prefix: Vec<u8>,
    /// Bytes of the current message still to pass before the next prefix.
    remaining: usize,
}

impl Checked {
    fn new(inner: Body, max: usize) -> Self {
        Self {
            inner,
            max,
            prefix: Vec::with_capacity(5),
            remaining: 0,
        }
    }

    /// Walks `data`'s message boundaries; the first message over the limit is refused.
    fn check(&mut self, data: &Bytes) -> Result<(), Status> {
        let mut rest = data.clone();
        while rest.has_remaining() {
            if self.remaining > 0 {
                let skip = self.remaining.min(rest.remaining());
                rest.advance(skip);
                self.remaining -= skip;
                continue;
            }
            let take = (5 - self.prefix.len()).min(rest.remaining());
            self.prefix.extend_from_slice(&rest[..take]);
            rest.advance(take);
            if self.prefix.len() == 5 {
                let length = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]) as usize;
                self.prefix.clear();
                if length > self.max {
                    return Err(Status::resource_exhausted(format!(
                        "the request message is {length} bytes, more than the {} bytes this server accepts",
                        self.max
                    )));
                }
                self.remaining = length;
            }
        }
        Ok(())
    }
}

impl http_body::Body for Checked {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Err(status) = self.check(data)
                {
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(length: usize) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&u32::try_from(length).expect("len").to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, length));
        bytes
    }

    fn checked(max: usize) -> Checked {
        Checked::new(Body::empty(), max)
    }

    #[test]
    fn messages_within_the_limit_pass_in_any_chunking() {
        let mut stream = message(10);
        stream.extend(message(100));
        stream.extend(message(0));
        for chunk in [1, 2, 4, 5, 7, 200] {
            let mut body = checked(100);
            for piece in stream.chunks(chunk) {
                body.check(&Bytes::copy_from_slice(piece))
                    .expect("within the limit");
            }
        }
    }

    #[test]
    fn the_first_message_over_the_limit_is_resource_exhausted_naming_it() {
        let mut stream = message(10);
        stream.extend(message(101));
        for chunk in [1, 3, 6, 500] {
            let mut body = checked(100);
            let refused = stream
                .chunks(chunk)
                .map(|piece| body.check(&Bytes::copy_from_slice(piece)))
                .find_map(Result::err)
                .expect("refused");
            assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
            assert_eq!(
                refused.message(),
                "the request message is 101 bytes, more than the 100 bytes this server accepts"
            );
        }
    }
}
