//! scanscope's vocabulary and the records its XDP program (`sensor-ebpf`) shares with the agent
//! (`sensor-user`).
//!
//! The vocabulary is defined here once and used by every stage: the kernel program, the agent,
//! the `scanscope.v1` conversion, the lake and the rollup —
//! [`Kind`] (names, [`Role`]: probe or backscatter), [`Tool`] (fingerprinted scanners),
//! [`LostStage`] (where data was lost) and [`proto`] (IP protocol numbers and names).
//!
//! The records are `#[repr(C)]`, `Copy` and free of padding the compiler would insert, so the
//! kernel and user space agree byte for byte. Multi-byte numbers are in host byte order (the
//! kernel converts them); addresses are kept as network-order byte arrays, IPv4 as an
//! IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
//!
//! With the `user` feature the types implement [`aya::Pod`] so the agent can read and write them
//! in BPF maps.
#![no_std]

mod vocab;
pub use vocab::{AppProtocol, LostStage, Role, SessionEnd, Source, Tool};

/// Names of the maps in the eBPF object, as the agent looks them up.
pub mod maps {
    /// `Array<SensorConfig>`, one entry: the runtime configuration.
    pub const CONFIG: &str = "CONFIG";
    /// `Array<u32>`, one entry: which tuple table (0 = `TUPLES_0`, 1 = `TUPLES_1`) is live.
    pub const EPOCH: &str = "EPOCH";
    /// `PerCpuArray<u64>` indexed by [`crate::counter`].
    pub const COUNTERS: &str = "COUNTERS";
    /// `PerCpuArray<u64>` of `2 * 65536` packet counts: TCP destination ports, then UDP.
    pub const PORTS: &str = "PORTS";
    /// `HashMap<TupleKey, TupleValue>`, the tuple table for epoch 0.
    pub const TUPLES_0: &str = "TUPLES_0";
    /// `HashMap<TupleKey, TupleValue>`, the tuple table for epoch 1.
    pub const TUPLES_1: &str = "TUPLES_1";
    /// `RingBuf` of [`crate::EventRecord`].
    pub const EVENTS: &str = "EVENTS";
    /// `LpmTrie<[u8; 16], u8>`: excluded source prefixes (IPv4 as mapped IPv6, prefix + 96).
    pub const EXCLUDE: &str = "EXCLUDE";
    /// `SockMap` of 2 entries: the responder's listening sockets, [`crate::respond::SLOT_V4`]
    /// and [`crate::respond::SLOT_V6`].
    pub const RESPONDER: &str = "RESPONDER";
    /// `LpmTrie<[u8; 16], u8>`: the destination prefixes the responder answers (IPv4 mapped).
    pub const RESPOND_ADDRS: &str = "RESPOND_ADDRS";
    /// `Array<u64>` of [`crate::respond::PASS_WORDS`]: a bit per TCP port the responder never
    /// takes (the host's own services).
    pub const RESPOND_PASS: &str = "RESPOND_PASS";
}

/// The responder's steering program (sk_lookup) and its tables.
pub mod respond {
    /// Name of the sk_lookup program in the object (Linux ≥ 5.9).
    pub const PROGRAM_NAME: &str = "scanscope_respond";
    /// `RESPONDER` slot of the IPv4 listener.
    pub const SLOT_V4: u32 = 0;
    /// `RESPONDER` slot of the IPv6 listener.
    pub const SLOT_V6: u32 = 1;
    /// Entries of `RESPOND_ADDRS`.
    pub const ADDR_ENTRIES: u32 = 1024;
    /// 64-bit words of the pass-through port bitmap (65 536 ports).
    pub const PASS_WORDS: u32 = 1024;

    /// The word and bit of `port` in the pass-through bitmap.
    pub const fn pass_bit(port: u16) -> (u32, u64) {
        ((port >> 6) as u32, 1u64 << (port & 63))
    }
}

/// Name of the XDP program in the object (kernels ≥ 5.18: copies with `bpf_xdp_load_bytes`).
pub const PROGRAM_NAME: &str = "scanscope";
/// The same program for kernels 5.15–5.17 (copies with `bpf_probe_read_kernel`).
pub const PROGRAM_NAME_COMPAT: &str = "scanscope_compat";

/// Number of [`Kind`]s.
pub const KIND_COUNT: usize = 15;
/// Slots reserved for kinds in per-kind arrays (room for new kinds without a layout change).
pub const KIND_SLOTS: usize = 16;

/// What an inbound IP packet is. SYN-ACK, RST and ICMP errors are backscatter, not scans.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// TCP with SYN and neither ACK, RST nor FIN.
    TcpSyn = 0,
    /// TCP SYN+ACK (backscatter, or replies to this host).
    TcpSynAck = 1,
    /// TCP with RST set.
    TcpRst = 2,
    /// TCP FIN only (FIN scan).
    TcpFin = 3,
    /// TCP with none of FIN/SYN/RST/PSH/ACK/URG (NULL scan).
    TcpNull = 4,
    /// TCP FIN+PSH+URG (XMAS scan).
    TcpXmas = 5,
    /// TCP ACK only (ACK scan).
    TcpAck = 6,
    /// Any other TCP flag set (data, FIN+ACK, …).
    TcpOther = 7,
    /// UDP.
    Udp = 8,
    /// ICMP echo request (type 8) or ICMPv6 echo request (type 128).
    IcmpEcho = 9,
    /// Any other ICMP/ICMPv6 message (type and code kept).
    IcmpOther = 10,
    /// A non-first IP fragment (no transport header to read).
    Fragment = 11,
    /// Another IP protocol (GRE, ESP, SCTP, …).
    OtherProto = 12,
    /// A flow (NetFlow/IPFIX: flags OR-ed over its packets) of SYN and RST only: a SYN scan
    /// that reached an open port (the scanner reset the SYN-ACK). Never a packet's kind.
    TcpSynRst = 13,
    /// A flow with SYN, ACK and data or FIN (PSH/FIN/URG): an established connection. Never a
    /// packet's kind.
    TcpEstablished = 14,
}

impl Kind {
    /// All kinds, in discriminant order.
    pub const ALL: [Kind; KIND_COUNT] = [
        Kind::TcpSyn,
        Kind::TcpSynAck,
        Kind::TcpRst,
        Kind::TcpFin,
        Kind::TcpNull,
        Kind::TcpXmas,
        Kind::TcpAck,
        Kind::TcpOther,
        Kind::Udp,
        Kind::IcmpEcho,
        Kind::IcmpOther,
        Kind::Fragment,
        Kind::OtherProto,
        Kind::TcpSynRst,
        Kind::TcpEstablished,
    ];

    /// The kind with this discriminant.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.get(usize::from(v)).copied()
    }

    /// Stable snake_case name used in output formats.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::TcpSyn => "tcp_syn",
            Kind::TcpSynAck => "tcp_synack",
            Kind::TcpRst => "tcp_rst",
            Kind::TcpFin => "tcp_fin",
            Kind::TcpNull => "tcp_null",
            Kind::TcpXmas => "tcp_xmas",
            Kind::TcpAck => "tcp_ack",
            Kind::TcpOther => "tcp_other",
            Kind::Udp => "udp",
            Kind::IcmpEcho => "icmp_echo",
            Kind::IcmpOther => "icmp_other",
            Kind::Fragment => "fragment",
            Kind::OtherProto => "other_proto",
            Kind::TcpSynRst => "tcp_syn_rst",
            Kind::TcpEstablished => "tcp_established",
        }
    }

    /// Whether the kind is one of TCP's.
    pub const fn is_tcp(self) -> bool {
        matches!(
            self,
            Kind::TcpSyn
                | Kind::TcpSynAck
                | Kind::TcpRst
                | Kind::TcpFin
                | Kind::TcpNull
                | Kind::TcpXmas
                | Kind::TcpAck
                | Kind::TcpOther
                | Kind::TcpSynRst
                | Kind::TcpEstablished
        )
    }

    /// Whether a packet of IP protocol `proto_` can be of this kind: TCP kinds are protocol 6,
    /// `udp` 17, the ICMP kinds 1 or 58; fragments and other protocols carry any number.
    pub const fn admits_proto(self, proto_: u8) -> bool {
        match self {
            Kind::Udp => proto_ == proto::UDP,
            Kind::IcmpEcho | Kind::IcmpOther => proto_ == proto::ICMP || proto_ == proto::ICMPV6,
            Kind::Fragment | Kind::OtherProto => true,
            k => !k.is_tcp() || proto_ == proto::TCP,
        }
    }

    /// The kind with this [`Kind::name`].
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What traffic of this kind stands for. `proto` and `icmp_type` matter only for
    /// [`Kind::IcmpOther`]: ICMPv4 types 0, 3, 4, 5, 11, 12, 14, 16, 18 and ICMPv6 types 1–4 and
    /// 129 are replies and errors — backscatter; other ICMP is [`Role::Other`].
    pub fn role(self, proto_: u8, icmp_type: Option<u8>) -> Role {
        match self {
            Kind::TcpSyn
            | Kind::TcpFin
            | Kind::TcpNull
            | Kind::TcpXmas
            | Kind::TcpAck
            | Kind::TcpOther
            | Kind::Udp
            | Kind::IcmpEcho
            | Kind::TcpSynRst => Role::Probe,
            Kind::TcpSynAck | Kind::TcpRst => Role::Backscatter,
            Kind::IcmpOther => match (proto_, icmp_type) {
                (proto::ICMP, Some(t)) if vocab::ICMP4_BACKSCATTER.contains(&t) => {
                    Role::Backscatter
                }
                (proto::ICMPV6, Some(t)) if vocab::ICMP6_BACKSCATTER.contains(&t) => {
                    Role::Backscatter
                }
                _ => Role::Other,
            },
            Kind::Fragment | Kind::OtherProto | Kind::TcpEstablished => Role::Other,
        }
    }

    /// Whether a packet is backscatter (a reply to traffic someone sent with a forged source):
    /// `role == Role::Backscatter`.
    pub fn is_backscatter(self, proto_: u8, icmp_type: u8) -> bool {
        self.role(proto_, Some(icmp_type)) == Role::Backscatter
    }

    /// Classifies TCP flags (the 8 bits of byte 13 of the TCP header).
    #[inline(always)]
    pub const fn from_tcp_flags(flags: u8) -> Kind {
        let f = flags & 0x3f; // ignore ECE/CWR
        if f & tcp::RST != 0 {
            Kind::TcpRst
        } else if f & (tcp::SYN | tcp::ACK | tcp::FIN) == tcp::SYN {
            Kind::TcpSyn
        } else if f & (tcp::SYN | tcp::ACK | tcp::FIN) == tcp::SYN | tcp::ACK {
            Kind::TcpSynAck
        } else if f == 0 {
            Kind::TcpNull
        } else if f == tcp::FIN {
            Kind::TcpFin
        } else if f == tcp::FIN | tcp::PSH | tcp::URG {
            Kind::TcpXmas
        } else if f == tcp::ACK {
            Kind::TcpAck
        } else {
            Kind::TcpOther
        }
    }

    /// Classifies a flow's TCP flags, OR-ed over its packets (NetFlow/IPFIX), ECE/CWR
    /// ignored: exactly SYN is [`Kind::TcpSyn`]; SYN+RST [`Kind::TcpSynRst`]; SYN+ACK
    /// [`Kind::TcpSynAck`]; SYN+ACK with any of PSH/FIN/URG (RST or not)
    /// [`Kind::TcpEstablished`]; any other set with SYN [`Kind::TcpOther`]; flags without SYN
    /// as one packet's ([`Kind::from_tcp_flags`]).
    pub const fn from_flow_flags(flags: u8) -> Kind {
        let f = flags & 0x3f;
        const SA: u8 = tcp::SYN | tcp::ACK;
        if f & tcp::SYN == 0 {
            Kind::from_tcp_flags(f)
        } else if f == tcp::SYN {
            Kind::TcpSyn
        } else if f == tcp::SYN | tcp::RST {
            Kind::TcpSynRst
        } else if f == SA {
            Kind::TcpSynAck
        } else if f & SA == SA && f & (tcp::PSH | tcp::FIN | tcp::URG) != 0 {
            Kind::TcpEstablished
        } else {
            Kind::TcpOther
        }
    }
}

/// TCP flag bits.
pub mod tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// IP protocol numbers the sensor parses, and their names in output formats.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;

    /// The protocols with a name: number and name.
    pub const NAMED: [(u8, &str); 4] = [
        (ICMP, "icmp"),
        (TCP, "tcp"),
        (UDP, "udp"),
        (ICMPV6, "icmpv6"),
    ];

    /// The name of a protocol number (`tcp`, `udp`, `icmp`, `icmpv6`); others have none and are
    /// written as their number.
    pub fn name(p: u8) -> Option<&'static str> {
        NAMED.iter().find(|(n, _)| *n == p).map(|(_, s)| *s)
    }

    /// The number of a protocol name, or of a number written as text.
    pub fn from_name(s: &str) -> Option<u8> {
        NAMED
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(p, _)| *p)
            .or_else(|| s.parse().ok())
    }
}

/// Indices into the per-CPU `COUNTERS` array.
pub mod counter {
    /// Packets of kind `k` are at `KIND_PACKETS + k`.
    pub const KIND_PACKETS: u32 = 0;
    /// IP bytes of kind `k` are at `KIND_BYTES + k`.
    pub const KIND_BYTES: u32 = 16;
    /// Frames that are not IPv4/IPv6 (ARP, LLDP, …): passed, not counted per kind.
    pub const NON_IP: u32 = 32;
    /// Frame shorter than its Ethernet/VLAN header.
    pub const TRUNC_L2: u32 = 33;
    /// More than two VLAN tags.
    pub const VLAN_TOO_DEEP: u32 = 34;
    /// Frame ends inside the IPv4 header or before the IPv4 total length.
    pub const TRUNC_IPV4: u32 = 35;
    /// IPv4 header with version ≠ 4 or IHL < 5.
    pub const BAD_IPV4_HDR: u32 = 36;
    /// IPv4 total length smaller than its header.
    pub const BAD_IPV4_LEN: u32 = 37;
    /// Frame ends inside the IPv6 header or before the IPv6 payload length.
    pub const TRUNC_IPV6: u32 = 38;
    /// IPv6 header with version ≠ 6.
    pub const BAD_IPV6_HDR: u32 = 39;
    /// IPv6 payload length 0 (jumbograms are not parsed).
    pub const BAD_IPV6_LEN: u32 = 40;
    /// IPv6 packet ends inside an extension header.
    pub const TRUNC_IPV6_EXT: u32 = 41;
    /// More IPv6 extension headers than the bounded walk reads.
    pub const IPV6_EXT_LIMIT: u32 = 42;
    /// IP payload shorter than the TCP header.
    pub const TRUNC_TCP: u32 = 43;
    /// TCP data offset < 5 words or beyond the segment.
    pub const BAD_TCP_DOFF: u32 = 44;
    /// IP payload shorter than the UDP header.
    pub const TRUNC_UDP: u32 = 45;
    /// IP payload shorter than 4 bytes of ICMP header.
    pub const TRUNC_ICMP: u32 = 46;
    /// Packets from an excluded source prefix.
    pub const EXCLUDED_CIDR: u32 = 47;
    /// Packets belonging to one of this host's own sockets (not background radiation).
    pub const OWN_SOCKET: u32 = 48;
    /// Packets dropped by a per-kind `drop` action.
    pub const DROPPED: u32 = 49;
    /// Events written to the ring buffer.
    pub const SAMPLED: u32 = 50;
    /// Events lost because the ring buffer was full (per CPU).
    pub const RINGBUF_FULL: u32 = 51;
    /// Packets not kept in the tuple table because it was full.
    pub const TUPLE_TABLE_FULL: u32 = 52;
    /// TCP connections the sk_lookup program handed to the responder.
    pub const RESPOND_STEERED: u32 = 53;
    /// TCP connections to a responder address on a pass-through port (left to the host).
    pub const RESPOND_PASS_PORT: u32 = 54;
    /// TCP connections for the responder while it had no listening socket (left to the host:
    /// it answers RST as in dark mode).
    pub const RESPOND_NO_SOCKET: u32 = 55;
    /// Slots in the array.
    pub const SLOTS: u32 = 64;

    /// Name of a counter other than the per-kind ones, for output formats.
    pub const fn name(index: u32) -> Option<&'static str> {
        Some(match index {
            NON_IP => "non_ip",
            TRUNC_L2 => "trunc_l2",
            VLAN_TOO_DEEP => "vlan_too_deep",
            TRUNC_IPV4 => "trunc_ipv4",
            BAD_IPV4_HDR => "bad_ipv4_hdr",
            BAD_IPV4_LEN => "bad_ipv4_len",
            TRUNC_IPV6 => "trunc_ipv6",
            BAD_IPV6_HDR => "bad_ipv6_hdr",
            BAD_IPV6_LEN => "bad_ipv6_len",
            TRUNC_IPV6_EXT => "trunc_ipv6_ext",
            IPV6_EXT_LIMIT => "ipv6_ext_limit",
            TRUNC_TCP => "trunc_tcp",
            BAD_TCP_DOFF => "bad_tcp_doff",
            TRUNC_UDP => "trunc_udp",
            TRUNC_ICMP => "trunc_icmp",
            EXCLUDED_CIDR => "excluded_cidr",
            OWN_SOCKET => "own_socket",
            DROPPED => "dropped",
            SAMPLED => "sampled",
            RINGBUF_FULL => "ringbuf_full",
            TUPLE_TABLE_FULL => "tuple_table_full",
            RESPOND_STEERED => "respond_steered",
            RESPOND_PASS_PORT => "respond_pass_port",
            RESPOND_NO_SOCKET => "respond_no_socket",
            _ => return None,
        })
    }

    /// The counters that name malformed or truncated frames.
    pub const MALFORMED: [u32; 14] = [
        TRUNC_L2,
        VLAN_TOO_DEEP,
        TRUNC_IPV4,
        BAD_IPV4_HDR,
        BAD_IPV4_LEN,
        TRUNC_IPV6,
        BAD_IPV6_HDR,
        BAD_IPV6_LEN,
        TRUNC_IPV6_EXT,
        IPV6_EXT_LIMIT,
        TRUNC_TCP,
        BAD_TCP_DOFF,
        TRUNC_UDP,
        TRUNC_ICMP,
    ];
}

/// Counters of an interval's stats that are levels at its end (gauges), not counts over it:
/// readers take the newest value instead of a sum.
pub mod gauge {
    /// Bytes in the agent's spool directory (batches waiting for the collector).
    pub const SPOOL_BYTES: &str = "uplink_spool_bytes";
    /// Batches sealed and not yet acknowledged by the collector.
    pub const PENDING_BATCHES: &str = "uplink_pending_batches";
    pub const ALL: [&str; 2] = [SPOOL_BYTES, PENDING_BATCHES];
}

/// Number of slots in the `PORTS` array: TCP ports `0..65536`, then UDP ports.
pub const PORT_SLOTS: u32 = 2 * 65536;
/// Offset of the UDP ports in `PORTS`.
pub const PORTS_UDP_BASE: u32 = 65536;

/// Entries of the `EXCLUDE` prefix trie: the most source prefixes a configuration can exclude.
pub const EXCLUDE_ENTRIES: u32 = 4096;

/// Whether `id` is a valid sensor id: 1–128 bytes of `[A-Za-z0-9._:-]` (the agent checks it at
/// start, the collector on every batch).
pub fn valid_sensor_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Longest IPv6 extension-header chain the kernel walks.
pub const MAX_IPV6_EXT: usize = 8;
/// Most payload bytes an event can carry.
pub const MAX_PAYLOAD: usize = 256;
/// Most TCP option bytes (data offset 15 words − 20 bytes).
pub const MAX_TCP_OPTIONS: usize = 40;
/// Default number of payload bytes captured per event.
pub const DEFAULT_PAYLOAD_LEN: u16 = 64;

/// Per-kind action.
pub mod action {
    /// Let the host's stack see the packet (it answers as it normally would).
    pub const PASS: u8 = 0;
    /// Drop the packet after counting it (a dark sensor that never answers).
    pub const DROP: u8 = 1;
}

/// Bits of [`SensorConfig::flags`].
pub mod config_flags {
    /// Look up this host's sockets and leave their traffic out of the counts.
    pub const EXCLUDE_OWN_SOCKETS: u16 = 1;
    /// The `EXCLUDE` trie holds prefixes: look sources up in it.
    pub const EXCLUSIONS_ACTIVE: u16 = 2;
}

/// Runtime configuration, the single entry of the `CONFIG` array.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorConfig {
    /// Per kind: after the first packet of a tuple in an interval, sample 1 packet in N
    /// (0 = only the first packet, 1 = every packet).
    pub sample_every: [u32; KIND_SLOTS],
    /// Per kind: [`action::PASS`] or [`action::DROP`].
    pub action: [u8; KIND_SLOTS],
    /// Payload bytes copied into each event (≤ [`MAX_PAYLOAD`]).
    pub payload_len: u16,
    /// [`config_flags`].
    pub flags: u16,
}

impl SensorConfig {
    /// The default: sample the first packet of every tuple and 1 in 64 afterwards, pass every
    /// kind, 64 payload bytes, exclude this host's own sockets.
    pub const fn new() -> Self {
        SensorConfig {
            sample_every: [64; KIND_SLOTS],
            action: [action::PASS; KIND_SLOTS],
            payload_len: DEFAULT_PAYLOAD_LEN,
            flags: config_flags::EXCLUDE_OWN_SOCKETS,
        }
    }
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Key of the tuple tables: one exact count per (source, destination, protocol, kind, port).
/// For ICMP, `dst_port` holds `type << 8 | code`; for fragments and other protocols it is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TupleKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub dst_port: u16,
    pub proto: u8,
    pub kind: u8,
}

/// Value of the tuple tables. Updated with atomic adds from every CPU.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TupleValue {
    pub packets: u64,
    /// Sum of IP lengths.
    pub bytes: u64,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) of the first and last packet.
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Bits of [`EventRecord::ip_flags`].
pub mod ip_flags {
    /// IPv4 Don't Fragment.
    pub const DF: u8 = 1;
    /// More fragments follow (IPv4 MF, IPv6 fragment header M).
    pub const MF: u8 = 2;
    /// The packet carried an IPv6 fragment header or a non-zero IPv4 fragment offset.
    pub const FRAGMENT: u8 = 4;
}

/// A sampled packet, as written to the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRecord {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// Interface index the frame arrived on.
    pub ifindex: u32,
    /// How many packets this sample stands for (1 for the first packet of a tuple, N after).
    pub weight: u32,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    /// IPv6 flow label (0 for IPv4).
    pub flow_label: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// IPv4 total length, or 40 + IPv6 payload length.
    pub ip_len: u16,
    /// IPv4 identification (0 for IPv6).
    pub ip_id: u16,
    pub tcp_window: u16,
    /// Length of the transport payload in the packet (what `payload` is the start of).
    pub payload_total: u16,
    /// 4 or 6.
    pub family: u8,
    pub proto: u8,
    pub kind: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// [`ip_flags`].
    pub ip_flags: u8,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Bytes of `tcp_options` in use.
    pub tcp_options_len: u8,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
    /// Bytes of `payload` in use.
    pub payload_len: u16,
    /// Number of VLAN tags the frame carried (0–2) and the outer VLAN id.
    pub vlan_depth: u16,
    pub vlan_id: u16,
    pub tcp_options: [u8; MAX_TCP_OPTIONS],
    pub payload: [u8; MAX_PAYLOAD],
}

/// Converts an IPv4 address (network order bytes) to its mapped IPv6 form.
#[inline(always)]
pub const fn ipv4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

#[cfg(feature = "user")]
mod pod {
    use super::{EventRecord, SensorConfig, TupleKey, TupleValue};
    // SAFETY: all four are #[repr(C)], Copy, made of integers and byte arrays whose sizes leave
    // no padding (checked by the layout tests in sensor-user), so every bit pattern is valid.
    unsafe impl aya::Pod for SensorConfig {}
    // SAFETY: see above.
    unsafe impl aya::Pod for TupleKey {}
    // SAFETY: see above.
    unsafe impl aya::Pod for TupleValue {}
    // SAFETY: see above.
    unsafe impl aya::Pod for EventRecord {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_padding() {
        assert_eq!(size_of::<TupleKey>(), 36);
        assert_eq!(size_of::<TupleValue>(), 32);
        assert_eq!(size_of::<SensorConfig>(), 4 * KIND_SLOTS + KIND_SLOTS + 4);
        // 8+4+4 +16+16 +4+4+4 +2*6 +1*10 +2+2+2 +40 +256
        assert_eq!(size_of::<EventRecord>(), 384);
    }

    #[test]
    fn flow_flag_classes() {
        use tcp::*;
        // The OR-ed flags softflowd exports for nmap/masscan probes, replies and a session.
        for (flags, kind) in [
            (SYN, Kind::TcpSyn),
            (SYN | ECE | CWR, Kind::TcpSyn),
            (SYN | RST, Kind::TcpSynRst),
            (SYN | ACK, Kind::TcpSynAck),
            (FIN | SYN | PSH | ACK, Kind::TcpEstablished),
            (SYN | ACK | PSH | RST, Kind::TcpEstablished),
            (FIN | SYN, Kind::TcpOther),
            (SYN | ACK | RST, Kind::TcpOther),
            (RST, Kind::TcpRst),
            (RST | ACK, Kind::TcpRst),
            (ACK, Kind::TcpAck),
            (ACK | PSH, Kind::TcpOther),
            (0, Kind::TcpNull),
            (FIN | PSH | URG, Kind::TcpXmas),
        ] {
            assert_eq!(Kind::from_flow_flags(flags), kind, "flags {flags:#x}");
        }
        assert_eq!(Kind::TcpSynRst.role(proto::TCP, None), Role::Probe);
        assert_eq!(Kind::TcpEstablished.role(proto::TCP, None), Role::Other);
    }

    #[test]
    fn tcp_flag_classes() {
        use tcp::*;
        assert_eq!(Kind::from_tcp_flags(SYN), Kind::TcpSyn);
        assert_eq!(Kind::from_tcp_flags(SYN | ECE | CWR), Kind::TcpSyn);
        assert_eq!(Kind::from_tcp_flags(SYN | PSH), Kind::TcpSyn);
        assert_eq!(Kind::from_tcp_flags(SYN | ACK), Kind::TcpSynAck);
        assert_eq!(Kind::from_tcp_flags(RST), Kind::TcpRst);
        assert_eq!(Kind::from_tcp_flags(RST | ACK), Kind::TcpRst);
        assert_eq!(Kind::from_tcp_flags(SYN | RST), Kind::TcpRst);
        assert_eq!(Kind::from_tcp_flags(0), Kind::TcpNull);
        assert_eq!(Kind::from_tcp_flags(FIN), Kind::TcpFin);
        assert_eq!(Kind::from_tcp_flags(FIN | PSH | URG), Kind::TcpXmas);
        assert_eq!(Kind::from_tcp_flags(ACK), Kind::TcpAck);
        assert_eq!(Kind::from_tcp_flags(ACK | PSH), Kind::TcpOther);
        assert_eq!(Kind::from_tcp_flags(FIN | ACK), Kind::TcpOther);
        assert_eq!(Kind::from_tcp_flags(SYN | FIN), Kind::TcpOther);
    }

    #[test]
    fn kinds_round_trip() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
            assert_eq!(Kind::from_u8(i as u8), Some(*k));
            assert_eq!(Kind::from_name(k.name()), Some(*k));
        }
        assert_eq!(Kind::from_u8(KIND_COUNT as u8), None);
        assert_eq!(Kind::from_name("tcp_synack"), Some(Kind::TcpSynAck));
        assert_eq!(Kind::from_name("kind_99"), None);
    }

    #[test]
    fn roles() {
        use proto::{ICMP, ICMPV6, TCP, UDP};
        assert_eq!(Kind::TcpSyn.role(TCP, None), Role::Probe);
        assert_eq!(Kind::Udp.role(UDP, None), Role::Probe);
        assert_eq!(Kind::IcmpEcho.role(ICMP, Some(8)), Role::Probe);
        assert_eq!(Kind::TcpSynAck.role(TCP, None), Role::Backscatter);
        assert_eq!(Kind::TcpRst.role(TCP, None), Role::Backscatter);
        for t in [0, 3, 4, 5, 11, 12, 14, 16, 18] {
            assert_eq!(
                Kind::IcmpOther.role(ICMP, Some(t)),
                Role::Backscatter,
                "{t}"
            );
        }
        assert_eq!(Kind::IcmpOther.role(ICMP, Some(13)), Role::Other);
        assert_eq!(Kind::IcmpOther.role(ICMP, None), Role::Other);
        for t in [1, 2, 3, 4, 129] {
            assert_eq!(
                Kind::IcmpOther.role(ICMPV6, Some(t)),
                Role::Backscatter,
                "{t}"
            );
        }
        assert_eq!(Kind::IcmpOther.role(ICMPV6, Some(135)), Role::Other);
        assert_eq!(Kind::Fragment.role(TCP, None), Role::Other);
        assert!(Kind::IcmpOther.is_backscatter(ICMP, 3));
        assert!(!Kind::IcmpEcho.is_backscatter(ICMP, 0));
        assert!(!Kind::TcpSyn.is_backscatter(TCP, 0));
        assert!(Kind::TcpSynAck.is_backscatter(TCP, 0));
    }

    #[test]
    fn protocol_names() {
        assert_eq!(proto::name(58), Some("icmpv6"));
        assert_eq!(proto::name(47), None);
        assert_eq!(proto::from_name("udp"), Some(17));
        assert_eq!(proto::from_name("47"), Some(47));
        assert_eq!(proto::from_name("gre"), None);
    }
}
