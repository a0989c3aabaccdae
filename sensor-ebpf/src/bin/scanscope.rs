//! scanscope's XDP program: sees every inbound IPv4/IPv6 packet on every port, classifies it
//! into a [`Kind`], counts it exactly (per kind, per destination port, per tuple) and samples
//! full-header events with a payload snippet to a ring buffer.
//!
//! Hot-path rules: no logging, bounded loops only, every packet read bounds-checked, per-CPU
//! counters, atomic adds on the shared tuple tables. Malformed or truncated frames are counted
//! by reason and passed, never misread.
//!
//! Pipeline: `parse` (L2 → L3 → L4 into a [`Parsed`] on the stack) → `filter` (excluded source
//! prefixes, this host's own sockets) → `count` (kind, port, tuple) → `sample` (ring buffer) →
//! verdict (per-kind action).
#![no_std]
#![no_main]
// The bpfel target has no `AtomicU64`; the intrinsic lowers to BPF_ATOMIC (fetch needs cpu v3).
#![feature(core_intrinsics)]
// Inline assembly for the sk_lookup context loads (see `ctx_u32`).
#![feature(asm_experimental_arch)]
#![allow(internal_features)]

use core::{
    intrinsics::{AtomicOrdering, atomic_xadd},
    mem::{offset_of, size_of},
};

use aya_ebpf::{
    bindings::{BPF_NOEXIST, bpf_sk_lookup, bpf_sock_tuple, xdp_action},
    helpers::{
        bpf_ktime_get_ns, bpf_sk_lookup_udp, bpf_sk_release, bpf_skc_lookup_tcp,
        bpf_xdp_load_bytes, generated::bpf_probe_read_kernel,
    },
    macros::{map, sk_lookup, xdp},
    maps::{Array, HashMap, LpmTrie, PerCpuArray, RingBuf, SockMap, lpm_trie::Key},
    programs::{SkLookupContext, XdpContext},
};
use scanscope_common::{
    EXCLUDE_ENTRIES, EventRecord, KIND_SLOTS, Kind, MAX_IPV6_EXT, MAX_PAYLOAD, MAX_TCP_OPTIONS,
    PORT_SLOTS, PORTS_UDP_BASE, SensorConfig, TupleKey, TupleValue, action, config_flags, counter,
    ip_flags, ipv4_mapped, proto, respond,
};

/// Default tuple-table size; the agent sets the real one before loading.
const TUPLE_ENTRIES: u32 = 65536;

#[map]
static CONFIG: Array<SensorConfig> = Array::with_max_entries(1, 0);
#[map]
static EPOCH: Array<u32> = Array::with_max_entries(1, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::SLOTS, 0);
#[map]
static PORTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PORT_SLOTS, 0);
#[map]
static TUPLES_0: HashMap<TupleKey, TupleValue> = HashMap::with_max_entries(TUPLE_ENTRIES, 0);
#[map]
static TUPLES_1: HashMap<TupleKey, TupleValue> = HashMap::with_max_entries(TUPLE_ENTRIES, 0);
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);
#[map]
static SCRATCH: PerCpuArray<Parsed> = PerCpuArray::with_max_entries(1, 0);
#[map]
static EXCLUDE: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(EXCLUDE_ENTRIES, 0);
#[map]
static RESPONDER: SockMap = SockMap::with_max_entries(2, 0);
#[map]
static RESPOND_ADDRS: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(respond::ADDR_ENTRIES, 0);
#[map]
static RESPOND_PASS: Array<u64> = Array::with_max_entries(respond::PASS_WORDS, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// Largest offset into a frame the parser will read at (XDP frames fit in a page).
const MAX_OFFSET: usize = 0x3fff;
const EEXIST: i32 = -17;
const TCP_LISTEN: u32 = 10;
const TCP_ESTABLISHED: u32 = 1;

/// Everything the later stages need from one packet.
struct Parsed {
    src: [u8; 16],
    dst: [u8; 16],
    flow_label: u32,
    tcp_seq: u32,
    tcp_ack: u32,
    src_port: u16,
    dst_port: u16,
    /// The tuple's port: `dst_port` for TCP/UDP, `type << 8 | code` for ICMP, else 0.
    key_port: u16,
    ip_len: u16,
    ip_id: u16,
    tcp_window: u16,
    payload_off: u16,
    payload_total: u16,
    opt_off: u16,
    vlan_id: u16,
    family: u8,
    proto: u8,
    /// A [`Kind`] discriminant, kept as `u8` so masks on it survive optimisation (the
    /// verifier does not know the enum's range).
    kind: u8,
    ttl: u8,
    tos: u8,
    ip_flags: u8,
    tcp_flags: u8,
    icmp_type: u8,
    icmp_code: u8,
    opt_len: u8,
    vlan_depth: u8,
}

impl Parsed {
    const EMPTY: Parsed = Parsed {
        src: [0; 16],
        dst: [0; 16],
        flow_label: 0,
        tcp_seq: 0,
        tcp_ack: 0,
        src_port: 0,
        dst_port: 0,
        key_port: 0,
        ip_len: 0,
        ip_id: 0,
        tcp_window: 0,
        payload_off: 0,
        payload_total: 0,
        opt_off: 0,
        vlan_id: 0,
        family: 0,
        proto: 0,
        kind: Kind::OtherProto as u8,
        ttl: 0,
        tos: 0,
        ip_flags: 0,
        tcp_flags: 0,
        icmp_type: 0,
        icmp_code: 0,
        opt_len: 0,
        vlan_depth: 0,
    };
}

/// The program for kernels ≥ 5.18: payload and options copied with `bpf_xdp_load_bytes`.
#[xdp]
pub fn scanscope(ctx: XdpContext) -> u32 {
    run::<false>(ctx)
}

/// The same program for kernels 5.15–5.17, which lack `bpf_xdp_load_bytes`: payload and options
/// copied with `bpf_probe_read_kernel` (allowed to XDP for CAP_PERFMON holders since 5.8). The
/// agent probes the kernel's helpers and loads this one when `bpf_xdp_load_bytes` is missing.
#[xdp]
pub fn scanscope_compat(ctx: XdpContext) -> u32 {
    run::<true>(ctx)
}

#[inline(always)]
fn run<const COMPAT: bool>(ctx: XdpContext) -> u32 {
    // The parse result lives in a per-CPU scratch slot: the 512-byte BPF stack is too small to
    // hold it next to the tuple key, the socket tuple and the event fill.
    let Some(parsed) = SCRATCH.get_ptr_mut(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: per-CPU slot, used only by this program run (XDP does not nest on a CPU).
    let parsed = unsafe { &mut *parsed };
    *parsed = Parsed::EMPTY;
    if let Err(reason) = parse(&ctx, parsed) {
        count(reason, 1);
        return xdp_action::XDP_PASS;
    }
    handle::<COMPAT>(&ctx, parsed)
}

// ------------------------------------------------------------------------------------------ parse

/// Reads a `T` at `off` bytes into the frame, or `None` if the frame is shorter.
#[inline(always)]
fn load<T: Copy>(ctx: &XdpContext, off: usize) -> Option<T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if off > MAX_OFFSET || start + off + size_of::<T>() > end {
        return None;
    }
    // SAFETY: the bounds check above keeps the read inside the frame; read_unaligned because
    // header fields have no alignment guarantee.
    Some(unsafe { core::ptr::read_unaligned((start + off) as *const T) })
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

#[inline(always)]
fn be32(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b)
}

#[inline(always)]
fn is_ipv6_ext(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 44 | 51 | 60)
}

/// Parses a frame; `Err` carries the counter index naming why it was not classified.
#[inline(always)]
fn parse(ctx: &XdpContext, p: &mut Parsed) -> Result<(), u32> {
    let frame_len = ctx.data_end() - ctx.data();

    // L2: Ethernet and up to two VLAN tags (802.1Q / 802.1ad).
    let mut ethertype = be16(load::<[u8; 2]>(ctx, 12).ok_or(counter::TRUNC_L2)?);
    let mut l3 = ETH_HLEN;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        let tag = load::<[u8; 4]>(ctx, l3).ok_or(counter::TRUNC_L2)?;
        p.vlan_id = be16([tag[0], tag[1]]) & 0x0fff;
        ethertype = be16([tag[2], tag[3]]);
        p.vlan_depth = 1;
        l3 += 4;
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            let tag = load::<[u8; 4]>(ctx, l3).ok_or(counter::TRUNC_L2)?;
            ethertype = be16([tag[2], tag[3]]);
            p.vlan_depth = 2;
            l3 += 4;
            if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
                return Err(counter::VLAN_TOO_DEEP);
            }
        }
    }

    // L3. `l4` is where the transport header starts, `l4_end` where the IP packet ends.
    let l4;
    let l4_end;
    let mut fragment = false;
    if ethertype == ETH_P_IP {
        let avail = frame_len - l3;
        let h = load::<[u8; 20]>(ctx, l3).ok_or(counter::TRUNC_IPV4)?;
        let ihl = usize::from(h[0] & 0x0f) * 4;
        if h[0] >> 4 != 4 || ihl < 20 {
            return Err(counter::BAD_IPV4_HDR);
        }
        let tot_len = usize::from(be16([h[2], h[3]]));
        if tot_len < ihl {
            return Err(counter::BAD_IPV4_LEN);
        }
        if tot_len > avail {
            return Err(counter::TRUNC_IPV4);
        }
        p.family = 4;
        p.tos = h[1];
        p.ip_len = tot_len as u16;
        p.ip_id = be16([h[4], h[5]]);
        let frag = be16([h[6], h[7]]);
        if frag & 0x4000 != 0 {
            p.ip_flags |= ip_flags::DF;
        }
        if frag & 0x2000 != 0 {
            p.ip_flags |= ip_flags::MF;
        }
        if frag & 0x1fff != 0 {
            p.ip_flags |= ip_flags::FRAGMENT;
            fragment = true;
        }
        p.ttl = h[8];
        p.proto = h[9];
        p.src = ipv4_mapped([h[12], h[13], h[14], h[15]]);
        p.dst = ipv4_mapped([h[16], h[17], h[18], h[19]]);
        l4 = l3 + ihl;
        l4_end = l3 + tot_len;
    } else if ethertype == ETH_P_IPV6 {
        let avail = frame_len - l3;
        let h = load::<[u8; 8]>(ctx, l3).ok_or(counter::TRUNC_IPV6)?;
        let src = load::<[u8; 16]>(ctx, l3 + 8).ok_or(counter::TRUNC_IPV6)?;
        let dst = load::<[u8; 16]>(ctx, l3 + 24).ok_or(counter::TRUNC_IPV6)?;
        if h[0] >> 4 != 6 {
            return Err(counter::BAD_IPV6_HDR);
        }
        let plen = usize::from(be16([h[4], h[5]]));
        if plen == 0 {
            return Err(counter::BAD_IPV6_LEN);
        }
        if 40 + plen > avail {
            return Err(counter::TRUNC_IPV6);
        }
        p.family = 6;
        p.tos = (h[0] << 4) | (h[1] >> 4);
        p.flow_label = (u32::from(h[1] & 0x0f) << 16) | (u32::from(h[2]) << 8) | u32::from(h[3]);
        p.ip_len = (40 + plen) as u16;
        p.ttl = h[7];
        p.src = src;
        p.dst = dst;
        l4_end = l3 + 40 + plen;

        // Bounded walk over extension headers.
        let mut nh = h[6];
        let mut off = l3 + 40;
        let mut i = 0;
        while i < MAX_IPV6_EXT {
            if !is_ipv6_ext(nh) {
                break;
            }
            if nh == 44 {
                let f = load::<[u8; 8]>(ctx, off).ok_or(counter::TRUNC_IPV6_EXT)?;
                if off + 8 > l4_end {
                    return Err(counter::TRUNC_IPV6_EXT);
                }
                let fo = be16([f[2], f[3]]);
                p.ip_flags |= ip_flags::FRAGMENT;
                if fo & 1 != 0 {
                    p.ip_flags |= ip_flags::MF;
                }
                nh = f[0];
                off += 8;
                if fo >> 3 != 0 {
                    fragment = true;
                    break;
                }
            } else {
                let e = load::<[u8; 2]>(ctx, off).ok_or(counter::TRUNC_IPV6_EXT)?;
                if off + 2 > l4_end {
                    return Err(counter::TRUNC_IPV6_EXT);
                }
                let len = if nh == 51 {
                    (usize::from(e[1]) + 2) * 4
                } else {
                    (usize::from(e[1]) + 1) * 8
                };
                nh = e[0];
                off += len;
                if off > l4_end {
                    return Err(counter::TRUNC_IPV6_EXT);
                }
            }
            i += 1;
        }
        if !fragment && is_ipv6_ext(nh) {
            return Err(counter::IPV6_EXT_LIMIT);
        }
        p.proto = nh;
        l4 = off;
    } else {
        return Err(counter::NON_IP);
    }

    // L4.
    let seg_len = l4_end - l4;
    if fragment {
        p.kind = Kind::Fragment as u8;
        p.payload_off = l4 as u16;
        p.payload_total = seg_len as u16;
        return Ok(());
    }
    match p.proto {
        proto::TCP => {
            if seg_len < 20 {
                return Err(counter::TRUNC_TCP);
            }
            let t = load::<[u8; 20]>(ctx, l4).ok_or(counter::TRUNC_TCP)?;
            let doff = usize::from(t[12] >> 4) * 4;
            if doff < 20 || doff > seg_len {
                return Err(counter::BAD_TCP_DOFF);
            }
            p.src_port = be16([t[0], t[1]]);
            p.dst_port = be16([t[2], t[3]]);
            p.key_port = p.dst_port;
            p.tcp_seq = be32([t[4], t[5], t[6], t[7]]);
            p.tcp_ack = be32([t[8], t[9], t[10], t[11]]);
            p.tcp_flags = t[13];
            p.tcp_window = be16([t[14], t[15]]);
            p.kind = Kind::from_tcp_flags(t[13]) as u8;
            p.opt_off = (l4 + 20) as u16;
            p.opt_len = (doff - 20) as u8;
            p.payload_off = (l4 + doff) as u16;
            p.payload_total = (seg_len - doff) as u16;
        }
        proto::UDP => {
            if seg_len < 8 {
                return Err(counter::TRUNC_UDP);
            }
            let u = load::<[u8; 4]>(ctx, l4).ok_or(counter::TRUNC_UDP)?;
            p.src_port = be16([u[0], u[1]]);
            p.dst_port = be16([u[2], u[3]]);
            p.key_port = p.dst_port;
            p.kind = Kind::Udp as u8;
            p.payload_off = (l4 + 8) as u16;
            p.payload_total = (seg_len - 8) as u16;
        }
        proto::ICMP | proto::ICMPV6 => {
            if seg_len < 4 {
                return Err(counter::TRUNC_ICMP);
            }
            let c = load::<[u8; 2]>(ctx, l4).ok_or(counter::TRUNC_ICMP)?;
            p.icmp_type = c[0];
            p.icmp_code = c[1];
            p.key_port = (u16::from(c[0]) << 8) | u16::from(c[1]);
            let echo = if p.proto == proto::ICMP { 8 } else { 128 };
            p.kind = if c[0] == echo {
                Kind::IcmpEcho as u8
            } else {
                Kind::IcmpOther as u8
            };
            let hdr = if seg_len < 8 { seg_len } else { 8 };
            p.payload_off = (l4 + hdr) as u16;
            p.payload_total = (seg_len - hdr) as u16;
        }
        _ => {
            p.kind = Kind::OtherProto as u8;
            p.payload_off = l4 as u16;
            p.payload_total = seg_len as u16;
        }
    }
    Ok(())
}

// ----------------------------------------------------------------------------- filter/count/sample

#[inline(always)]
fn count(index: u32, by: u64) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs.
        unsafe { *c += by };
    }
}

#[inline(always)]
fn handle<const COMPAT: bool>(ctx: &XdpContext, p: &Parsed) -> u32 {
    let Some(cfg) = CONFIG.get(0) else {
        return xdp_action::XDP_PASS;
    };

    // Filter: configured source prefixes (management, collector, …).
    if cfg.flags & config_flags::EXCLUSIONS_ACTIVE != 0
        && EXCLUDE.get(Key::new(128, p.src)).is_some()
    {
        count(counter::EXCLUDED_CIDR, 1);
        return xdp_action::XDP_PASS;
    }
    // Filter: packets that belong to one of this host's own sockets (replies to its outgoing
    // connections, its established sessions). A plain SYN can only match a listener, so the
    // lookup is skipped for it: a SYN to a listening port is a scan hit like any other.
    if cfg.flags & config_flags::EXCLUDE_OWN_SOCKETS != 0
        && ((p.proto == proto::TCP
            && p.kind != Kind::TcpSyn as u8
            && p.kind != Kind::Fragment as u8)
            || p.kind == Kind::Udp as u8)
        && own_socket(ctx, p)
    {
        count(counter::OWN_SOCKET, 1);
        return xdp_action::XDP_PASS;
    }

    // Count: per kind, per port, per tuple.
    let kind = u32::from(p.kind) & (KIND_SLOTS as u32 - 1);
    count(counter::KIND_PACKETS + kind, 1);
    count(counter::KIND_BYTES + kind, u64::from(p.ip_len));
    let port_slot = if p.kind == Kind::Udp as u8 {
        Some(PORTS_UDP_BASE + u32::from(p.dst_port))
    } else if p.proto == proto::TCP && p.kind != Kind::Fragment as u8 {
        Some(u32::from(p.dst_port))
    } else {
        None
    };
    if let Some(slot) = port_slot
        && let Some(c) = PORTS.get_ptr_mut(slot)
    {
        // SAFETY: per-CPU slot.
        unsafe { *c += 1 };
    }

    let now = unsafe { bpf_ktime_get_ns() };
    let key = TupleKey {
        src: p.src,
        dst: p.dst,
        dst_port: p.key_port,
        proto: p.proto,
        kind: p.kind,
    };
    let epoch = EPOCH.get(0).copied().unwrap_or(0);
    let every = cfg.sample_every[kind as usize];
    let weight = if epoch & 1 == 0 {
        tuple_update(&TUPLES_0, &key, p, now, every)
    } else {
        tuple_update(&TUPLES_1, &key, p, now, every)
    };
    if weight != 0 {
        sample::<COMPAT>(ctx, p, cfg, now, weight);
    }

    if cfg.action[kind as usize] == action::DROP {
        count(counter::DROPPED, 1);
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_PASS
}

/// Adds the packet to its tuple; returns the sample weight (0 = do not sample).
#[inline(always)]
fn tuple_update(
    map: &HashMap<TupleKey, TupleValue>,
    key: &TupleKey,
    p: &Parsed,
    now: u64,
    every: u32,
) -> u32 {
    if let Some(v) = map.get_ptr_mut(key) {
        return tuple_add(v, p, now, every);
    }
    let fresh = TupleValue {
        packets: 1,
        bytes: u64::from(p.ip_len),
        first_ns: now,
        last_ns: now,
    };
    match map.insert(key, fresh, u64::from(BPF_NOEXIST)) {
        Ok(()) => 1,
        // Another CPU inserted it between our lookup and insert: add to theirs.
        Err(EEXIST) => match map.get_ptr_mut(key) {
            Some(v) => tuple_add(v, p, now, every),
            None => {
                count(counter::TUPLE_TABLE_FULL, 1);
                0
            }
        },
        Err(_) => {
            count(counter::TUPLE_TABLE_FULL, 1);
            0
        }
    }
}

#[inline(always)]
fn tuple_add(v: *mut TupleValue, p: &Parsed, now: u64, every: u32) -> u32 {
    // SAFETY: `v` points into a hash-map value that stays valid for this program run; the
    // counters are updated with atomic adds because every CPU shares the entry.
    let before = unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(
            &raw mut (*v).bytes,
            u64::from(p.ip_len),
        );
        (*v).last_ns = now;
        // SeqCst, not Relaxed: LLVM's BPF backend lowers a relaxed fetch-add to a plain
        // `lock +=` that does not return the old value, even when it is used.
        atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut (*v).packets, 1)
    };
    if every != 0 && before % u64::from(every) == 0 {
        every
    } else {
        0
    }
}

/// Is this packet part of a connection or connected UDP socket of this host?
#[inline(always)]
fn own_socket(ctx: &XdpContext, p: &Parsed) -> bool {
    // SAFETY: an all-zero bpf_sock_tuple is a valid value of the plain-data union.
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let size;
    // SAFETY: writing plain fields of the union; sizes are those of the variant written.
    unsafe {
        if p.family == 4 {
            let t = &mut tuple.__bindgen_anon_1.ipv4;
            t.saddr = u32::from_ne_bytes([p.src[12], p.src[13], p.src[14], p.src[15]]);
            t.daddr = u32::from_ne_bytes([p.dst[12], p.dst[13], p.dst[14], p.dst[15]]);
            t.sport = p.src_port.to_be();
            t.dport = p.dst_port.to_be();
            size = size_of::<[u32; 3]>() as u32;
        } else {
            let t = &mut tuple.__bindgen_anon_1.ipv6;
            t.saddr = core::mem::transmute::<[u8; 16], [u32; 4]>(p.src);
            t.daddr = core::mem::transmute::<[u8; 16], [u32; 4]>(p.dst);
            t.sport = p.src_port.to_be();
            t.dport = p.dst_port.to_be();
            size = size_of::<[u32; 9]>() as u32;
        }
    }
    let netns = u64::from(u32::MAX); // BPF_F_CURRENT_NETNS (as s32: -1)
    let ctx_ptr = ctx.ctx.cast();
    // SAFETY: helper calls with a valid tuple and size; every returned socket is released.
    unsafe {
        if p.proto == proto::TCP {
            let sk = bpf_skc_lookup_tcp(ctx_ptr, &mut tuple, size, netns, 0);
            if sk.is_null() {
                return false;
            }
            let state = (*sk).state;
            bpf_sk_release(sk.cast());
            state != TCP_LISTEN
        } else {
            let sk = bpf_sk_lookup_udp(ctx_ptr, &mut tuple, size, netns, 0);
            if sk.is_null() {
                return false;
            }
            let state = (*sk).state;
            bpf_sk_release(sk.cast());
            state == TCP_ESTABLISHED
        }
    }
}

/// Copies `min(max, N)` bytes at frame offset `off` into `dst` with one bounded helper call
/// (a byte loop would multiply the verifier's paths past its limit): `bpf_xdp_load_bytes`, or
/// `bpf_probe_read_kernel` from the frame's address for `COMPAT`. Returns how many were copied.
/// The caller guarantees `off + max` lies inside the IP packet, hence inside the frame.
#[inline(always)]
fn copy_bytes<const N: usize, const COMPAT: bool>(
    ctx: &XdpContext,
    off: u16,
    max: usize,
    dst: &mut [u8; N],
) -> usize {
    let n = if max > N { N } else { max };
    // The verifier needs 1 ≤ len ≤ N on the very register passed to the helper. Verifiers
    // before ~6.8 learn nothing from `len != 0`, so the range comes from one unsigned check of
    // `n - 1` (0 wraps to a huge value) and `+ 1` after it. A volatile round trip keeps LLVM from
    // folding `(n - 1) + 1` back into `n`, whose range the verifier never saw checked.
    // SAFETY: reading a local.
    let m = unsafe { core::ptr::read_volatile(&n.wrapping_sub(1)) };
    if m >= N {
        return 0;
    }
    let n = m + 1;
    let rc = if COMPAT {
        let off = usize::from(off);
        if off > MAX_OFFSET || ctx.data() + off + n > ctx.data_end() {
            return 0;
        }
        // SAFETY: `dst` holds N ≥ n bytes and the source range lies inside the frame (checked
        // above); the helper faults safely on any bad address anyway.
        unsafe {
            bpf_probe_read_kernel(
                dst.as_mut_ptr().cast(),
                n as u32,
                (ctx.data() + off) as *const core::ffi::c_void,
            )
        }
    } else {
        // SAFETY: `dst` holds N ≥ n bytes; the helper bounds-checks the frame itself.
        unsafe { bpf_xdp_load_bytes(ctx.ctx, u32::from(off), dst.as_mut_ptr().cast(), n as u32) }
    };
    if rc == 0 { n } else { 0 }
}

#[inline(always)]
fn sample<const COMPAT: bool>(
    ctx: &XdpContext,
    p: &Parsed,
    cfg: &SensorConfig,
    now: u64,
    weight: u32,
) {
    let Some(mut entry) = EVENTS.reserve::<EventRecord>(0) else {
        count(counter::RINGBUF_FULL, 1);
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned ring-buffer record of the right size.
    unsafe {
        (*ev).ts_ns = now;
        (*ev).ifindex = ctx.ingress_ifindex() as u32;
        (*ev).weight = weight;
        (*ev).src = p.src;
        (*ev).dst = p.dst;
        (*ev).tcp_seq = p.tcp_seq;
        (*ev).tcp_ack = p.tcp_ack;
        (*ev).flow_label = p.flow_label;
        (*ev).src_port = p.src_port;
        (*ev).dst_port = p.dst_port;
        (*ev).ip_len = p.ip_len;
        (*ev).ip_id = p.ip_id;
        (*ev).tcp_window = p.tcp_window;
        (*ev).payload_total = p.payload_total;
        (*ev).family = p.family;
        (*ev).proto = p.proto;
        (*ev).kind = p.kind;
        (*ev).ttl = p.ttl;
        (*ev).ip_flags = p.ip_flags;
        (*ev).tcp_flags = p.tcp_flags;
        (*ev).icmp_type = p.icmp_type;
        (*ev).icmp_code = p.icmp_code;
        (*ev).tos = p.tos;
        (*ev).vlan_depth = u16::from(p.vlan_depth);
        (*ev).vlan_id = p.vlan_id;
        let opt_max = usize::from(p.opt_len);
        (*ev).tcp_options_len =
            copy_bytes::<MAX_TCP_OPTIONS, COMPAT>(ctx, p.opt_off, opt_max, &mut (*ev).tcp_options)
                as u8;
        let want = usize::from(cfg.payload_len);
        let total = usize::from(p.payload_total);
        let max = if want < total { want } else { total };
        (*ev).payload_len =
            copy_bytes::<MAX_PAYLOAD, COMPAT>(ctx, p.payload_off, max, &mut (*ev).payload) as u16;
    }
    entry.submit(0);
    count(counter::SAMPLED, 1);
}

// ----------------------------------------------------------------------------- responder

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const SK_PASS: u32 = 1;

/// One 4-byte load of the sk_lookup context at a constant offset: the only form the verifier
/// accepts for context fields. Plain field reads let LLVM share a computed pointer between
/// loads ("dereference of modified ctx ptr").
#[inline(always)]
fn ctx_u32<const OFF: usize>(ctx: *const bpf_sk_lookup) -> u32 {
    let v: u64;
    // SAFETY: a read of the context at a constant offset inside it; the verifier checks it.
    unsafe {
        core::arch::asm!(
            "{v} = *(u32 *)({p} + {off})",
            v = out(reg) v,
            p = in(reg) ctx,
            off = const OFF,
            options(readonly, nostack, preserves_flags),
        );
    }
    v as u32
}

/// The responder's steering (sk_lookup, Linux ≥ 5.9): a TCP connection to any port of the
/// responder's addresses, except the pass-through ports, goes to the responder's listening
/// socket of its family; the kernel does the handshake. Anything else, and every connection
/// while the responder has no socket, goes on to the normal lookup (the host answers as in
/// dark mode). The XDP program has counted the SYN already.
#[sk_lookup]
pub fn scanscope_respond(ctx: SkLookupContext) -> u32 {
    let l = ctx.lookup.cast_const();
    let protocol = ctx_u32::<{ offset_of!(bpf_sk_lookup, protocol) }>(l);
    if protocol != u32::from(proto::TCP) {
        return SK_PASS;
    }
    let family = ctx_u32::<{ offset_of!(bpf_sk_lookup, family) }>(l);
    let port = ctx_u32::<{ offset_of!(bpf_sk_lookup, local_port) }>(l);
    let (dst, slot) = if family == AF_INET {
        let a = ctx_u32::<{ offset_of!(bpf_sk_lookup, local_ip4) }>(l).to_ne_bytes();
        (ipv4_mapped(a), respond::SLOT_V4)
    } else if family == AF_INET6 {
        const IP6: usize = offset_of!(bpf_sk_lookup, local_ip6);
        let w = [
            ctx_u32::<IP6>(l),
            ctx_u32::<{ IP6 + 4 }>(l),
            ctx_u32::<{ IP6 + 8 }>(l),
            ctx_u32::<{ IP6 + 12 }>(l),
        ];
        let mut d = [0u8; 16];
        for (i, word) in w.iter().enumerate() {
            d[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
        }
        (d, respond::SLOT_V6)
    } else {
        return SK_PASS;
    };
    if RESPOND_ADDRS.get(Key::new(128, dst)).is_none() {
        return SK_PASS;
    }
    let (word, bit) = respond::pass_bit(port as u16);
    if RESPOND_PASS.get(word).is_some_and(|w| w & bit != 0) {
        count(counter::RESPOND_PASS_PORT, 1);
        return SK_PASS;
    }
    match RESPONDER.redirect_sk_lookup(&ctx, slot, 0) {
        Ok(()) => count(counter::RESPOND_STEERED, 1),
        Err(_) => count(counter::RESPOND_NO_SOCKET, 1),
    }
    SK_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
