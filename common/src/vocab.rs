//! The words every stage shares: what a packet stands for ([`Role`]), the scanning tools the
//! agent recognises ([`Tool`]), where data was lost ([`LostStage`]) and what a responder session
//! spoke and how it ended ([`AppProtocol`], [`SessionEnd`]). Each has one stable
//! snake_case name, used in JSON lines, the lake and reports.

/// ICMPv4 types that are backscatter: echo reply 0, unreachable 3, source quench 4, redirect 5,
/// time exceeded 11, parameter problem 12, timestamp reply 14, information reply 16, mask reply 18.
pub(crate) const ICMP4_BACKSCATTER: [u8; 9] = [0, 3, 4, 5, 11, 12, 14, 16, 18];
/// ICMPv6 backscatter types: errors 1–4 and echo reply 129.
pub(crate) const ICMP6_BACKSCATTER: [u8; 5] = [1, 2, 3, 4, 129];

/// What traffic stands for ([`crate::Kind::role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A probe a scanner sends: SYN, FIN, NULL, XMAS, ACK, other TCP, UDP, ICMP echo request.
    Probe,
    /// A reply to traffic someone sent with a forged source (SYN-ACK, RST, ICMP errors and echo
    /// replies): evidence of a DoS attack against the source, never scanning.
    Backscatter,
    /// Anything else (fragments, other IP protocols, other ICMP).
    Other,
}

/// A scanning tool recognised from packet headers (the agent's fingerprints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    Zmap,
    Masscan,
    Mirai,
    Nmap,
    Unicornscan,
}

impl Tool {
    /// Every tool, in a stable order (the order fingerprints report them in).
    pub const ALL: [Tool; 5] = [
        Tool::Zmap,
        Tool::Masscan,
        Tool::Mirai,
        Tool::Nmap,
        Tool::Unicornscan,
    ];

    /// Stable name in output formats.
    pub const fn name(self) -> &'static str {
        match self {
            Tool::Zmap => "zmap",
            Tool::Masscan => "masscan",
            Tool::Mirai => "mirai",
            Tool::Nmap => "nmap",
            Tool::Unicornscan => "unicornscan",
        }
    }

    /// The tool with this [`Tool::name`].
    pub fn from_name(name: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Stateless scanners: their SYNs come from a raw socket, not from the OS stack, so a real
    /// handshake that follows from the same source is a second phase (the two-phase rule).
    pub const fn is_stateless(self) -> bool {
        matches!(
            self,
            Tool::Zmap | Tool::Masscan | Tool::Mirai | Tool::Unicornscan
        )
    }

    /// Raw-packet scanners that send with TTL 255 (so a high TTL from them is no forgery hint).
    pub const fn sends_ttl_255(self) -> bool {
        matches!(self, Tool::Masscan | Tool::Zmap | Tool::Unicornscan)
    }
}

/// Where data was lost. The discriminants are the `scanscope.v1.LostStage` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LostStage {
    /// The kernel ring buffer was full: sampled events lost.
    KernelRingbuf = 1,
    /// The kernel tuple table was full: packets counted per kind and port but not per tuple.
    KernelTupleTable = 2,
    /// The agent could not write its local output (JSON lines).
    AgentOutput = 3,
    /// The agent's in-memory queue overflowed and the batch could not be spooled.
    AgentQueue = 4,
    /// The agent's spool reached its size limit (or held an unreadable file).
    AgentSpool = 5,
    /// The collector refused a batch as malformed or too large.
    CollectorRejected = 6,
    /// Ring-buffer records the agent could not decode.
    AgentDecode = 7,
    /// A collector write-ahead-log record failed its checksum at replay (disk corruption).
    CollectorWal = 8,
    /// The collector refused a batch for a sensor id its credentials do not name.
    CollectorDenied = 9,
    /// NetFlow/IPFIX records that never arrived (gaps in an exporter's sequence numbers).
    NetflowSequence = 10,
    /// NetFlow/IPFIX datagrams the collector could not decode, or records it could not use.
    NetflowMalformed = 11,
}

impl LostStage {
    /// Every stage, in number order.
    pub const ALL: [LostStage; 11] = [
        LostStage::KernelRingbuf,
        LostStage::KernelTupleTable,
        LostStage::AgentOutput,
        LostStage::AgentQueue,
        LostStage::AgentSpool,
        LostStage::CollectorRejected,
        LostStage::AgentDecode,
        LostStage::CollectorWal,
        LostStage::CollectorDenied,
        LostStage::NetflowSequence,
        LostStage::NetflowMalformed,
    ];

    /// Stable name in output formats.
    pub const fn name(self) -> &'static str {
        match self {
            LostStage::KernelRingbuf => "kernel_ringbuf",
            LostStage::KernelTupleTable => "kernel_tuple_table",
            LostStage::AgentOutput => "agent_output",
            LostStage::AgentQueue => "agent_queue",
            LostStage::AgentSpool => "agent_spool",
            LostStage::CollectorRejected => "collector_rejected",
            LostStage::AgentDecode => "agent_decode",
            LostStage::CollectorWal => "collector_wal",
            LostStage::CollectorDenied => "collector_denied",
            LostStage::NetflowSequence => "netflow_sequence",
            LostStage::NetflowMalformed => "netflow_malformed",
        }
    }

    /// The stage with this `scanscope.v1` number.
    pub fn from_number(n: i32) -> Option<LostStage> {
        LostStage::ALL.into_iter().find(|s| *s as i32 == n)
    }
}

/// Declares a vocabulary enum: each variant with its stable name, `ALL`, `name` and `from_name`.
macro_rules! named {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident => $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v,)* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v,)*];

            /// Stable name in output formats.
            pub const fn name(self) -> &'static str {
                match self { $($name::$v => $text,)* }
            }

            /// The value with this [`Self::name`].
            pub fn from_name(name: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.name() == name)
            }
        }
    };
}

named! {
    /// Where a row's traffic was seen: a scanscope sensor, or flows a router exported.
    pub enum Source {
        /// A scanscope sensor (XDP): every packet counted, headers sampled.
        Xdp => "xdp",
        /// NetFlow v5/v9 or IPFIX flows an exporter sent to the collector (docs/netflow.md).
        Netflow => "netflow",
    }
}

named! {
    /// The application protocol of a responder session, told by what the client sent (and, for
    /// protocols where the server speaks first, by the banner the port called for).
    pub enum AppProtocol {
        /// The client sent nothing.
        None => "none",
        /// Bytes of no protocol the responder knows.
        Unknown => "unknown",
        Http => "http",
        Tls => "tls",
        Ssh => "ssh",
        Telnet => "telnet",
        Ftp => "ftp",
        Smtp => "smtp",
        Pop3 => "pop3",
        Imap => "imap",
        Mysql => "mysql",
        Postgres => "postgres",
        Redis => "redis",
        Mqtt => "mqtt",
        Rdp => "rdp",
        Vnc => "vnc",
    }
}

named! {
    /// How a responder session ended.
    pub enum SessionEnd {
        /// The client closed the connection.
        Closed => "closed",
        /// The client reset the connection (or reading failed).
        Reset => "reset",
        /// The client sent nothing within the first-byte timeout.
        Silent => "silent",
        /// The client went quiet for the idle timeout.
        Idle => "idle",
        /// The session's total time ran out.
        Timeout => "timeout",
        /// The client sent more than the responder reads in a session.
        ReadCap => "read_cap",
        /// The client reached the cap on login attempts.
        AuthCap => "auth_cap",
        /// The responder answered and closed (one request a session, or a refused login).
        Answered => "answered",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Tool::ALL {
            assert_eq!(Tool::from_name(t.name()), Some(t));
        }
        assert_eq!(Tool::from_name("zgrab"), None);
        assert!(Tool::Masscan.sends_ttl_255() && !Tool::Nmap.sends_ttl_255());
        for (i, s) in LostStage::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i + 1);
            assert_eq!(LostStage::from_number(*s as i32), Some(*s));
        }
        assert_eq!(LostStage::from_number(0), None);
        for p in AppProtocol::ALL {
            assert_eq!(AppProtocol::from_name(p.name()), Some(*p));
        }
        assert_eq!(SessionEnd::from_name("read_cap"), Some(SessionEnd::ReadCap));
    }
}
