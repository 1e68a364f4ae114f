//! Where the soak's connections come from. Each client slot has a loopback
//! address of its own (127.1.x.y), each hostile connection (floods,
//! half-open and garbage requests) a fresh one (127.2.x.y), and the spray
//! fault its addresses from 127.3.x.y: the proxy's per-address limits are
//! in force (`[limits]` in `proxy.rs`) and only the spray goes over them.
//! Every 127/8 address is the loopback interface's on Linux.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use tokio::net::{TcpSocket, TcpStream};

/// Addresses of one range (x.y with y in 1..=250).
const PER_RANGE: u32 = 256 * 250;

/// The next fresh hostile address, and the next spray address.
static HOSTILE: AtomicU32 = AtomicU32::new(0);
static SPRAY: AtomicU32 = AtomicU32::new(0);

fn in_range(second: u8, n: u32) -> Ipv4Addr {
    let n = n % PER_RANGE;
    Ipv4Addr::new(127, second, (n / 250) as u8, (n % 250 + 1) as u8)
}

/// Slot `i`'s address (slots 64,000 apart share one).
pub fn slot(i: usize) -> Ipv4Addr {
    in_range(1, (i % PER_RANGE as usize) as u32)
}

/// An address no hostile connection has used yet (they repeat after 64,000).
pub fn hostile() -> Ipv4Addr {
    in_range(2, HOSTILE.fetch_add(1, Relaxed))
}

/// An address no spray has used yet.
pub fn spray() -> Ipv4Addr {
    in_range(3, SPRAY.fetch_add(1, Relaxed))
}

/// A TCP connection from `from` to `to`.
pub async fn connect(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.into(), 0))?;
    let tcp = socket.connect(to).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}
