//! systemd readiness and status (`Type=notify`): a datagram to `$NOTIFY_SOCKET`, when set.
//! A few lines rather than a crate: the protocol is one `KEY=value` datagram.

use std::os::unix::net::UnixDatagram;

fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let result = if let Some(name) = path.strip_prefix('@') {
        send_abstract(&socket, name, message)
    } else {
        socket.send_to(message.as_bytes(), &path).map(|_| ())
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &str, message: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    socket.send_to_addr(message.as_bytes(), &addr).map(|_| ())
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &str, _: &str) -> std::io::Result<()> {
    Ok(())
}

pub fn ready(status_text: &str) {
    send(&format!("READY=1\nSTATUS={status_text}"));
}

pub fn status(text: &str) {
    send(&format!("STATUS={text}"));
}

pub fn stopping() {
    send("STOPPING=1");
}
