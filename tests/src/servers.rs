//! Real Radicale and Xandikos servers, each started fresh on a free loopback port.
