//! Talking to the primary server: TSIG-signed messages over one TCP connection (RFC 1035
//! §4.2.2 framing), an UPDATE exchange and a zone transfer (AXFR) whose every message is
//! verified against our key.
//!
//! TCP rather than UDP because batched updates and transfers are far larger than a datagram,
//! and one connection serves a whole converge.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigVerifier, TSigner};

use crate::config::DnsConfig;
use crate::DnsError;

/// Fudge (allowed clock skew) sent in our signatures, in seconds; BIND's default is 300.
const FUDGE: u16 = 300;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// An open, authenticated channel to the primary server.
pub struct Connection {
    stream: TcpStream,
    signer: TSigner,
    server: String,
    next_id: u16,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `host:port`, with port 53 when only a host is given (an IPv6 literal must be bracketed to
/// carry a port).
fn with_default_port(server: &str) -> String {
    let s = server.trim();
    if s.starts_with('[') || s.matches(':').count() == 1 {
        s.to_string()
    } else if s.contains(':') {
        format!("[{s}]:53")
    } else {
        format!("{s}:53")
    }
}

impl Connection {
    pub fn open(cfg: &DnsConfig) -> Result<Self, DnsError> {
        let unreachable = |reason: String| DnsError::Unreachable {
            server: cfg.server.clone(),
            reason,
        };
        let addrs: Vec<_> = with_default_port(&cfg.server)
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("cannot resolve: {e}")))?
            .collect();
        let mut last = "no address".to_string();
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        let stream = stream.ok_or_else(|| unreachable(last))?;
        let io = |e: std::io::Error| unreachable(e.to_string());
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        // Batches are written whole and answered whole; Nagle only adds latency here.
        stream.set_nodelay(true).map_err(io)?;
        let signer = TSigner::new(
            cfg.secret.bytes().to_vec(),
            cfg.algorithm.clone(),
            cfg.key_name.clone(),
            FUDGE,
        )
        .map_err(|e| DnsError::Config(format!("TSIG key: {e}")))?;
        let seed = (now() as u16) ^ (std::process::id() as u16).rotate_left(7);
        Ok(Self {
            stream,
            signer,
            server: cfg.server.clone(),
            next_id: seed,
        })
    }

    fn io_error(&self, e: std::io::Error) -> DnsError {
        DnsError::Unreachable {
            server: self.server.clone(),
            reason: e.to_string(),
        }
    }

    fn protocol(&self, reason: impl Into<String>) -> DnsError {
        DnsError::Protocol {
            server: self.server.clone(),
            reason: reason.into(),
        }
    }

    fn sign_and_send(&mut self, mut msg: Message) -> Result<(u16, TSigVerifier), DnsError> {
        self.next_id = self.next_id.wrapping_add(1);
        msg.metadata.id = self.next_id;
        let verifier = msg
            .finalize(&self.signer, now())
            .map_err(|e| self.protocol(format!("signing: {e}")))?
            .ok_or_else(|| self.protocol("signing produced no verifier"))?;
        let bytes = msg
            .to_vec()
            .map_err(|e| self.protocol(format!("encoding: {e}")))?;
        let len = u16::try_from(bytes.len())
            .map_err(|_| self.protocol(format!("message of {} bytes is too large", bytes.len())))?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        self.stream
            .write_all(&framed)
            .map_err(|e| self.io_error(e))?;
        Ok((self.next_id, verifier))
    }

    fn read_frame(&mut self) -> Result<Vec<u8>, DnsError> {
        let mut len = [0u8; 2];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| self.io_error(e))?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| self.io_error(e))?;
        Ok(buf)
    }

    /// Read one response to request `id`, verify its signature, and turn a failure code into an
    /// error. Prerequisite failures come back as `Ok(Err(code))` for the caller to re-read.
    fn read_response(
        &mut self,
        id: u16,
        verifier: &mut TSigVerifier,
    ) -> Result<Result<Message, ResponseCode>, DnsError> {
        let bytes = self.read_frame()?;
        let msg = Message::from_vec(&bytes)
            .map_err(|e| self.protocol(format!("undecodable response: {e}")))?;
        if msg.metadata.id != id || msg.metadata.message_type != MessageType::Response {
            return Err(self.protocol("response does not match the request"));
        }
        let code = msg.metadata.response_code;
        if code == ResponseCode::NotAuth || msg.signature().is_none() {
            // The server did not sign: it could not (or would not) check our key, so the TSIG
            // error in the reply (if any) says why. Nothing it says can be trusted beyond that.
            let tsig_error = msg.signature().and_then(|s| s.data.error);
            return Err(self.auth_error(code, tsig_error));
        }
        verifier
            .verify(&bytes)
            .map_err(|e| self.protocol(format!("response signature does not verify: {e}")))?;
        match code {
            ResponseCode::NoError => Ok(Ok(msg)),
            ResponseCode::YXDomain
            | ResponseCode::YXRRSet
            | ResponseCode::NXDomain
            | ResponseCode::NXRRSet => Ok(Err(code)),
            ResponseCode::Refused => Err(DnsError::Auth {
                server: self.server.clone(),
                reason: "the server refused (REFUSED): does its allow-update / update-policy / \
                         allow-transfer permit this key for the zone?"
                    .to_string(),
            }),
            ResponseCode::NotZone => Err(self
                .protocol("the server is not authoritative for the zone (NOTZONE): check `zone`")),
            other => Err(self.protocol(format!("server answered {other}"))),
        }
    }

    fn auth_error(&self, code: ResponseCode, tsig_error: Option<TsigError>) -> DnsError {
        let reason = match tsig_error {
            Some(TsigError::BadKey) => format!(
                "the server does not know key `{}` (BADKEY)",
                self.signer.signer_name()
            ),
            Some(TsigError::BadSig) => format!(
                "signature rejected (BADSIG): the secret of key `{}` is wrong",
                self.signer.signer_name()
            ),
            Some(TsigError::BadTime) => {
                "signature time rejected (BADTIME): clocks differ by more than the fudge"
                    .to_string()
            }
            Some(other) => format!("TSIG error {other:?}"),
            None if code == ResponseCode::NotAuth => {
                "the server rejected our TSIG signature (NOTAUTH)".to_string()
            }
            None => format!("the server answered {code} without a TSIG signature"),
        };
        DnsError::Auth {
            server: self.server.clone(),
            reason,
        }
    }

    /// Send one UPDATE and wait for its answer. `Ok(Err(code))` means a prerequisite failed and
    /// nothing in the message was applied.
    pub fn update(&mut self, msg: Message) -> Result<Result<(), ResponseCode>, DnsError> {
        let (id, mut verifier) = self.sign_and_send(msg)?;
        Ok(self.read_response(id, &mut verifier)?.map(|_| ()))
    }

    /// Transfer the whole zone. Returns its records without the closing SOA.
    pub fn axfr(&mut self, zone: &Name) -> Result<Vec<Record>, DnsError> {
        let mut query = Message::new(0, MessageType::Query, OpCode::Query);
        let mut q = Query::query(zone.clone(), RecordType::AXFR);
        q.set_query_class(DNSClass::IN);
        query.add_query(q);
        let (id, mut verifier) = self.sign_and_send(query)?;
        let mut records = Vec::new();
        let mut soas = 0;
        loop {
            let msg = match self.read_response(id, &mut verifier)? {
                Ok(m) => m,
                Err(code) => return Err(self.protocol(format!("zone transfer failed: {code}"))),
            };
            for rec in msg.answers {
                if rec.record_type() == RecordType::SOA {
                    soas += 1;
                    if soas == 2 {
                        return Ok(records);
                    }
                }
                records.push(rec);
            }
            if soas == 0 {
                return Err(self.protocol(format!(
                    "zone transfer of `{zone}` did not start with an SOA record"
                )));
            }
        }
    }
}

/// The zone section of an UPDATE for `zone`.
pub fn update_message(zone: &Name) -> Message {
    let mut msg = Message::new(0, MessageType::Query, OpCode::Update);
    let mut q = Query::query(zone.clone(), RecordType::SOA);
    q.set_query_class(DNSClass::IN);
    msg.add_query(q);
    msg
}

/// RFC 2136 §2.4 prerequisite and §2.5 update records.
pub mod rr {
    use super::*;

    /// §2.4.5 Name is not in use.
    pub fn name_not_in_use(name: &Name) -> Record {
        let mut r = Record::update0(name.clone(), 0, RecordType::ANY).into_record_of_rdata();
        r.dns_class = DNSClass::NONE;
        r
    }

    /// §2.4.3 RRset does not exist.
    pub fn rrset_absent(name: &Name, rtype: RecordType) -> Record {
        let mut r = Record::update0(name.clone(), 0, rtype).into_record_of_rdata();
        r.dns_class = DNSClass::NONE;
        r
    }

    /// §2.4.2 RRset exists (value dependent): one record of the exact set, TTL 0.
    pub fn rrset_member(name: &Name, data: RData) -> Record {
        Record::from_rdata(name.clone(), 0, data)
    }

    /// §2.5.1 Add to an RRset.
    pub fn add(name: &Name, ttl: u32, data: RData) -> Record {
        Record::from_rdata(name.clone(), ttl, data)
    }

    /// §2.5.2 Delete an RRset.
    pub fn delete_rrset(name: &Name, rtype: RecordType) -> Record {
        let mut r = Record::update0(name.clone(), 0, rtype).into_record_of_rdata();
        r.dns_class = DNSClass::ANY;
        r
    }

    /// §2.5.4 Delete an RR from an RRset.
    pub fn delete_rr(name: &Name, data: RData) -> Record {
        let mut r = Record::from_rdata(name.clone(), 0, data);
        r.dns_class = DNSClass::NONE;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_port_is_added_only_when_missing() {
        assert_eq!(with_default_port("127.0.0.1:5353"), "127.0.0.1:5353");
        assert_eq!(with_default_port("ns1.example"), "ns1.example:53");
        assert_eq!(with_default_port("::1"), "[::1]:53");
        assert_eq!(with_default_port("[::1]:5353"), "[::1]:5353");
    }
}
