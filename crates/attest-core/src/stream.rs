//! A byte stream to a target: a TCP connection, or a port-forward through the API server.

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a target.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}
