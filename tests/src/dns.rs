//! A small real DNS server on a loopback UDP port for the discovery tests: it answers SRV and
//! TXT questions from a fixed table on the wire (RFC 1035 messages built with `domain`), and
//! NXDOMAIN for anything else. Stopped and joined on drop.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use domain::base::iana::{Class, Rcode, Rtype};
use domain::base::{Message, MessageBuilder, Name, ToName};
use domain::rdata::{Srv, Txt};

/// How long the server waits for a datagram before checking whether it should stop.
const POLL: Duration = Duration::from_millis(50);
/// The time to live of every answer, in seconds.
const TTL_S: u32 = 60;

/// One record the server knows.
#[derive(Debug, Clone)]
pub enum DnsRecord {
    /// `name SRV priority weight port target`
    Srv {
        name: String,
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    /// `name TXT "text"`
    Txt { name: String, text: String },
}

impl DnsRecord {
    fn name(&self) -> &str {
        match self {
            DnsRecord::Srv { name, .. } | DnsRecord::Txt { name, .. } => name,
        }
    }

    fn rtype(&self) -> Rtype {
        match self {
            DnsRecord::Srv { .. } => Rtype::SRV,
            DnsRecord::Txt { .. } => Rtype::TXT,
        }
    }
}

/// A running DNS server.
pub struct DnsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    questions: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Serves `records` on a free loopback UDP port.
    pub fn start(records: Vec<DnsRecord>) -> std::io::Result<Self> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.set_read_timeout(Some(POLL))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let questions = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = stop.clone();
            let questions = questions.clone();
            std::thread::spawn(move || serve(&socket, &records, &stop, &questions))
        };
        Ok(Self {
            addr,
            stop,
            questions,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many questions it has answered.
    pub fn questions(&self) -> usize {
        self.questions.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(socket: &UdpSocket, records: &[DnsRecord], stop: &AtomicBool, questions: &AtomicUsize) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(reply) = buf.get(..n).and_then(|query| answer(query, records)) else {
            continue;
        };
        questions.fetch_add(1, Ordering::SeqCst);
        let _ = socket.send_to(&reply, peer);
    }
}

fn answer(query: &[u8], records: &[DnsRecord]) -> Option<Vec<u8>> {
    let msg = Message::from_octets(query.to_vec()).ok()?;
    let question = msg.first_question()?;
    let qname = question.qname().to_name::<Vec<u8>>();
    let wanted = qname.to_string().trim_end_matches('.').to_ascii_lowercase();
    let matching: Vec<&DnsRecord> = records
        .iter()
        .filter(|r| {
            r.name().trim_end_matches('.').eq_ignore_ascii_case(&wanted)
                && r.rtype() == question.qtype()
        })
        .collect();
    let known_name = records
        .iter()
        .any(|r| r.name().trim_end_matches('.').eq_ignore_ascii_case(&wanted));
    let rcode = if known_name {
        Rcode::NOERROR
    } else {
        Rcode::NXDOMAIN
    };
    let mut builder = MessageBuilder::new_vec().start_answer(&msg, rcode).ok()?;
    for record in matching {
        match record {
            DnsRecord::Srv {
                priority,
                weight,
                port,
                target,
                ..
            } => {
                let target =
                    Name::<Vec<u8>>::vec_from_str(&format!("{}.", target.trim_end_matches('.')))
                        .ok()?;
                let data = Srv::new(*priority, *weight, *port, target);
                builder.push((&qname, Class::IN, TTL_S, data)).ok()?;
            }
            DnsRecord::Txt { text, .. } => {
                let data = Txt::<Vec<u8>>::build_from_slice(text.as_bytes()).ok()?;
                builder.push((&qname, Class::IN, TTL_S, data)).ok()?;
            }
        }
    }
    Some(builder.finish())
}
