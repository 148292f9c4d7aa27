//! The end-to-end harness, reused by every test in `tests/tests`: real CalDAV/CardDAV servers
//! on loopback ports, and the desktop session the real app runs in.

pub mod desktop;
pub mod dns;
pub mod front;
pub mod servers;
pub mod sync_fixture;
