//! Reply header names spelled as Salesforce sends them (`Content-Type`, `Sforce-Locator`,
//! `Sforce-NumberOfRecords`, `Sforce-Limit-Info`). hyper 1 keeps header names lower-case and
//! writes them so; its `preserve_header_case` works from a map type it does not export, and
//! `title_case_headers` would write `Sforce-Numberofrecords`. Some clients compare header
//! names case-sensitively, so the listener hands hyper a stream that respells these names
//! in each HTTP/1 reply head as it is written: the same bytes, only their case changed, so
//! lengths and offsets stay as hyper computed them. Only a head at the start of a write is
//! respelled (hyper writes a reply's head at the start of its buffer); bodies are untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Header names and their Salesforce spelling.
const SPELLINGS: [&str; 6] = [
    "Content-Type",
    "Content-Length",
    "Content-Encoding",
    "Sforce-Locator",
    "Sforce-NumberOfRecords",
    "Sforce-Limit-Info",
];

/// Respells the known header names in the reply head at the start of `buf`, in place.
pub fn respell_head(buf: &mut [u8]) {
    if !buf.starts_with(b"HTTP/1.") {
        return;
    }
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(buf.len());
    let mut i = 0;
    while i + 2 < end {
        if &buf[i..i + 2] == b"\r\n" {
            let start = i + 2;
            for name in SPELLINGS {
                let n = name.len();
                if start + n < end
                    && buf[start + n] == b':'
                    && buf[start..start + n].eq_ignore_ascii_case(name.as_bytes())
                {
                    buf[start..start + n].copy_from_slice(name.as_bytes());
                    break;
                }
            }
        }
        i += 1;
    }
}

/// A TCP stream whose written reply heads are respelled.
pub struct CaseStream(TcpStream);

impl AsyncRead for CaseStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for CaseStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.starts_with(b"HTTP/1.") {
            let mut copy = buf.to_vec();
            respell_head(&mut copy);
            return Pin::new(&mut self.0).poll_write(cx, &copy);
        }
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    /// Not vectored: hyper then writes each reply's head and body from one flat buffer, so a
    /// head starts a write.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// The org's TCP listener, handing out [`CaseStream`]s.
pub struct CaseListener(pub TcpListener);

impl axum::serve::Listener for CaseListener {
    type Io = CaseStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => return (CaseStream(stream), addr),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_names_are_respelled_and_bodies_left_alone() {
        let mut b = b"HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\nsforce-numberofrecords: 2\r\nsforce-locator: null\r\nx-other: 1\r\n\r\n\r\ncontent-type: body".to_vec();
        respell_head(&mut b);
        let s = String::from_utf8(b).expect("utf8");
        assert!(s.contains("\r\nContent-Type: text/csv\r\n"), "{s}");
        assert!(s.contains("\r\nSforce-NumberOfRecords: 2\r\n"), "{s}");
        assert!(s.contains("\r\nSforce-Locator: null\r\n"), "{s}");
        assert!(s.contains("\r\nx-other: 1\r\n"), "{s}");
        assert!(s.ends_with("\r\ncontent-type: body"), "{s}");
        let mut body = b"\r\ncontent-type: x".to_vec();
        respell_head(&mut body);
        assert_eq!(body, b"\r\ncontent-type: x");
    }
}
