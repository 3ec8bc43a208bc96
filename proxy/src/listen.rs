//! Listener addresses: `host:0` asks for a port the kernel picks, as a
//! process that binds its own socket would. pingora binds the listeners
//! itself and reports nothing, so the node binds a reservation socket on
//! `host:0` first, learns the port, keeps the socket (bound, never
//! listening) for its lifetime so no other process can be given that port,
//! and hands pingora the concrete address with `SO_REUSEPORT`, which lets
//! pingora's listener share the port with the reservation. The node then
//! logs every address it listens on.

use std::io;
use std::net::SocketAddr;

use pingora::listeners::TcpSocketOptions;
use socket2::{Domain, Protocol, Socket, Type};

/// One listener's address, concrete (never port 0).
#[derive(Debug)]
pub struct Listen {
    /// `host:port` as pingora binds it.
    pub address: String,
    /// Held while the node runs; `Some` when the port was picked here.
    reservation: Option<Socket>,
}

impl Listen {
    /// `address` as given, or with a port picked now when it names port 0.
    pub fn resolve(address: &str) -> io::Result<Self> {
        let parsed: SocketAddr = address
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not host:port"))?;
        if parsed.port() != 0 {
            return Ok(Self {
                address: address.to_owned(),
                reservation: None,
            });
        }
        let socket = Socket::new(
            Domain::for_address(parsed),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_port(true)?;
        socket.bind(&parsed.into())?;
        let bound = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("reservation has no socket address"))?;
        Ok(Self {
            address: bound.to_string(),
            reservation: Some(socket),
        })
    }

    /// The socket options pingora's listener needs to share a reserved port.
    pub fn socket_options(&self) -> Option<TcpSocketOptions> {
        self.reservation.as_ref().map(|_| {
            let mut options = TcpSocketOptions::default();
            options.so_reuseport = Some(true);
            options
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_port_is_kept_as_given() {
        let listen = Listen::resolve("127.0.0.1:8080").expect("resolves");
        assert_eq!(listen.address, "127.0.0.1:8080");
        assert!(listen.socket_options().is_none());
    }

    #[test]
    fn port_zero_is_reserved_until_dropped() {
        let listen = Listen::resolve("127.0.0.1:0").expect("resolves");
        let addr: SocketAddr = listen.address.parse().expect("concrete");
        assert_ne!(addr.port(), 0);
        // Held: an ordinary bind of the same port is refused ...
        assert!(std::net::TcpListener::bind(addr).is_err());
        // ... while a listener sharing it (as pingora's does) may bind, and
        // it alone accepts.
        let shared = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        shared.set_reuse_port(true).expect("reuseport");
        shared.bind(&addr.into()).expect("shares the reserved port");
        shared.listen(8).expect("listens");
        std::net::TcpStream::connect(addr).expect("the shared listener accepts");
    }

    #[test]
    fn not_an_address_is_refused() {
        assert!(Listen::resolve("nowhere").is_err());
    }
}
