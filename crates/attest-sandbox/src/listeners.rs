//! Loopback listeners standing in for cluster services: a TCP port that accepts, one that
//! accepts and never answers, an HTTP server shaped like Paperless-ngx's login redirect, and a
//! port that refuses.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A background listener; stops when dropped.
pub struct Listener {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections and closes them: enough for TCP connect checks.
pub async fn tcp_accepting() -> std::io::Result<Listener> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    Ok(Listener { addr, task })
}

/// Accepts connections and never answers, holding them open: a server stuck behind a dead NFS
/// mount, or an HTTP backend that hangs.
pub async fn silent() -> std::io::Result<Listener> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    Ok(Listener { addr, task })
}

/// A loopback port with nothing listening: connections are refused.
pub async fn closed_port() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    listener.local_addr()
}

/// Answers like Paperless-ngx behind its ingress: `/` redirects (302) to the login page,
/// which answers 200; anything else is 404.
pub async fn http_paperless() -> std::io::Result<Listener> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let mut read = 0;
                // Read until the end of the request head.
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buffer.len() {
                    match stream.read(&mut buffer[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let head = String::from_utf8_lossy(&buffer[..read]);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let response = match path {
                    "/" => "HTTP/1.1 302 Found\r\nLocation: /accounts/login/?next=/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                    p if p.starts_with("/accounts/login/") => {
                        let body = "<!doctype html><title>Paperless-ngx sign in</title><form method=post><input name=username></form>";
                        format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    }
                    _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(Listener { addr, task })
}
