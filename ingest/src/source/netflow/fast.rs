//! The fast path of the decode stage. A v9 or IPFIX datagram that is one message of data sets
//! only, each of a template this receiver saw `netflow_parser` install, is decoded straight
//! from its bytes through the template's layout: no per-field values, no per-record vectors.
//! A layout is only made of a fixed-length template whose elements the decoder reads have the
//! lengths the parser reads as numbers and addresses, so both paths give the same
//! [`Decoded`] (`cargo test -p scanscope-ingest --test netflow` runs them against each other
//! on every capture, on random templates and on mutated datagrams).
//!
//! Everything else goes to the parser: v5, templates and options, data of an unknown
//! template, variable-length or unusual elements, several messages in a datagram. The
//! templates of a datagram the parser took are learned from its bytes afterwards, as the
//! parser installs them (RFC 3954 §5.2, RFC 7011 §3.4: definitions, withdrawals, options
//! templates taking an id over); a datagram the parser refused forgets the source's layouts.
//! Forgetting is always safe: the parser then decodes that source until it sends its
//! templates again.
use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use netflow_parser::{
    DEFAULT_MAX_DECODED_FIELD_VALUES_PER_MESSAGE, DEFAULT_MAX_RECORDS_PER_FLOWSET, FieldDataType,
    V9Field, variable_versions::ipfix::lookup::IPFixField,
};

use super::decode::{self, Clock, Decoded, Elements, SLOTS, Version, ie, slot_of};

/// Most fields the parser takes in a template (its `MAX_FIELD_COUNT`).
const MAX_FIELDS: usize = 10_000;
/// Templates the parser keeps per source (its `DEFAULT_MAX_TEMPLATE_CACHE_SIZE`). A source
/// that defines more ids is left to the parser: its least-recently-used eviction is not
/// followed here.
const MAX_TEMPLATES: usize = 1_000;
/// Set ids (RFC 3954, RFC 7011): templates and options templates.
const V9_TEMPLATES: u16 = 0;
const V9_OPTIONS: u16 = 1;
const IPFIX_TEMPLATES: u16 = 2;
const IPFIX_OPTIONS: u16 = 3;
/// The first data set id.
const FIRST_DATA: u16 = 256;

/// How an element's bytes are read (as the parser's value would be by `decode::number`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Unsigned big-endian (numbers, milliseconds, protocol).
    Uint,
    /// TCP flags: the 9 bits the parser keeps.
    Flags,
    /// Seconds, read as milliseconds.
    Secs,
    V4,
    V6,
}

/// Where an element is in a record.
#[derive(Debug, Clone, Copy)]
struct At {
    from: usize,
    len: usize,
    read: Read,
}

/// A data template as the fast path reads it.
#[derive(Debug, Clone)]
struct Layout {
    /// Bytes of a record.
    len: usize,
    /// Fields of a record (for the parser's budget of values per message).
    fields: usize,
    slots: [Option<At>; SLOTS],
}

/// One field of a template record, as on the wire.
#[derive(Debug, Clone, Copy)]
struct WireField {
    number: u16,
    enterprise: Option<u32>,
    len: u16,
}

/// The parser's type of a field.
fn data_type(version: Version, f: &WireField) -> FieldDataType {
    match version {
        Version::Ipfix => FieldDataType::from(IPFixField::new(f.number, f.enterprise)),
        _ => FieldDataType::from(V9Field::from(f.number)),
    }
}

/// How element `number` of type `ty` and `len` bytes is read, if the parser reads it as a
/// number or an address the fast path can read the same.
fn read_of(number: u16, ty: FieldDataType, len: u16) -> Option<Read> {
    use FieldDataType as T;
    let read = match (ty, len) {
        (T::Ip4Addr, 4) => Read::V4,
        (T::Ip6Addr, 16) => Read::V6,
        (T::UnsignedDataNumber, 1..=4 | 8)
        | (T::ProtocolType, 1)
        | (T::DurationMillis, 2 | 4 | 8) => Read::Uint,
        (T::TcpControlBits, 1 | 2) => Read::Flags,
        (T::DurationSeconds, 2 | 4 | 8) => Read::Secs,
        _ => return None,
    };
    let address = matches!(number, ie::SRC_V4 | ie::DST_V4 | ie::SRC_V6 | ie::DST_V6);
    (address == matches!(read, Read::V4 | Read::V6)).then_some(read)
}

impl Layout {
    /// The layout of a data template, or `None` when the parser would not install it or the
    /// fast path cannot read it as the parser does.
    fn new(version: Version, fields: &[WireField]) -> Option<Layout> {
        if fields.is_empty() || fields.len() > MAX_FIELDS {
            return None;
        }
        let mut slots = [None; SLOTS];
        let mut at = 0usize;
        for f in fields {
            // Variable length; IPFIX refuses zero-length fields (v9 takes them).
            if f.len == u16::MAX || (version == Version::Ipfix && f.len == 0) {
                return None;
            }
            let ty = data_type(version, f);
            match slot_of(f.number).filter(|_| f.enterprise.is_none()) {
                // The first of a repeated element is the one read.
                Some(s) if slots[s].is_none() => {
                    slots[s] = Some(At {
                        from: at,
                        len: usize::from(f.len),
                        read: read_of(f.number, ty, f.len)?,
                    });
                }
                // Skipped, but the parser must read it without failing the record.
                _ if ty == FieldDataType::ApplicationId && f.len == 0 => return None,
                _ => {}
            }
            at += usize::from(f.len);
        }
        (1..=usize::from(u16::MAX)).contains(&at).then_some(Layout {
            len: at,
            fields: fields.len(),
            slots,
        })
    }
}

/// One record's bytes through its layout.
struct Raw<'a> {
    layout: &'a Layout,
    bytes: &'a [u8],
}

impl Raw<'_> {
    fn at(&self, id: u16) -> Option<(Read, &[u8])> {
        let at = self.layout.slots[slot_of(id)?]?;
        Some((at.read, self.bytes.get(at.from..at.from + at.len)?))
    }
}

impl Elements for Raw<'_> {
    fn num(&self, id: u16) -> Option<u64> {
        let (read, b) = self.at(id)?;
        let n = b.iter().fold(0u64, |n, x| (n << 8) | u64::from(*x));
        match read {
            Read::Uint => Some(n),
            Read::Flags => Some(n & 0x01FF),
            Read::Secs => n.checked_mul(1000),
            Read::V4 | Read::V6 => None,
        }
    }

    fn addr(&self, v4: u16, v6: u16) -> Option<IpAddr> {
        let (read, b) = self.at(v4).or_else(|| self.at(v6))?;
        match read {
            Read::V4 => <[u8; 4]>::try_from(b)
                .ok()
                .map(|a| Ipv4Addr::from(a).into()),
            Read::V6 => <[u8; 16]>::try_from(b)
                .ok()
                .map(|a| Ipv6Addr::from(a).into()),
            _ => None,
        }
    }
}

/// The templates of one source (sender address and port, observation domain, version).
#[derive(Debug, Default)]
struct Source {
    layouts: HashMap<u16, Layout>,
    /// Every id the source defined (data or options): past [`MAX_TEMPLATES`], parser only.
    defined: HashSet<u16>,
    parser_only: bool,
}

impl Source {
    fn define(&mut self, id: u16, layout: Option<Layout>) {
        self.defined.insert(id);
        match layout {
            Some(l) => self.layouts.insert(id, l),
            None => self.layouts.remove(&id),
        };
        if self.defined.len() > MAX_TEMPLATES {
            self.parser_only = true;
        }
    }
}

/// The header of a v9 or IPFIX datagram that is one message: version, observation domain,
/// sequence number, the clock (without a boot time) and where its sets start.
fn header(data: &[u8]) -> Option<(Version, u32, u32, Clock, usize)> {
    let u32_at = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes(data.get(i..i + 4)?.try_into().ok()?))
    };
    match data.get(..2)? {
        [0, 9] => Some((
            Version::V9,
            u32_at(16)?,
            u32_at(12)?,
            Clock {
                export_ms: i64::from(u32_at(8)?) * 1000,
                uptime_ms: Some(u32_at(4)?),
                init_ms: None,
            },
            20,
        )),
        [0, 10] => {
            let len = usize::from(u16::from_be_bytes(data.get(2..4)?.try_into().ok()?));
            (len == data.len()).then_some(())?;
            Some((
                Version::Ipfix,
                u32_at(12)?,
                u32_at(8)?,
                Clock {
                    export_ms: i64::from(u32_at(4)?) * 1000,
                    uptime_ms: None,
                    init_ms: None,
                },
                16,
            ))
        }
        _ => None,
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

/// The sets of a message from `at` on: (id, body). `None` for a set that does not fit.
fn sets(data: &[u8], mut at: usize) -> impl Iterator<Item = Option<(u16, &[u8])>> {
    std::iter::from_fn(move || {
        if at >= data.len() {
            return None;
        }
        let set = (|| {
            let (id, len) = (u16_at(data, at)?, usize::from(u16_at(data, at + 2)?));
            let body = data
                .get(at + 4..at.checked_add(len)?)
                .filter(|_| len >= 4)?;
            Some((id, body, len))
        })();
        match set {
            Some((id, body, len)) => {
                at += len;
                Some(Some((id, body)))
            }
            None => {
                at = data.len();
                Some(None)
            }
        }
    })
}

/// The fields of a template record at `b[at..]`: `count` of them, IPFIX ones with an
/// enterprise number when their top bit is set. `None` when they do not fit.
fn fields(
    version: Version,
    b: &[u8],
    mut at: usize,
    count: usize,
) -> Option<(Vec<WireField>, usize)> {
    let mut out = Vec::with_capacity(count.min(b.len() / 4));
    for _ in 0..count {
        let (number, len) = (u16_at(b, at)?, u16_at(b, at + 2)?);
        at += 4;
        let (number, enterprise) = if version == Version::Ipfix && number & 0x8000 != 0 {
            let e = u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?);
            at += 4;
            (number & 0x7FFF, Some(e))
        } else {
            (number, None)
        };
        out.push(WireField {
            number,
            enterprise,
            len,
        });
    }
    Some((out, at))
}

/// The data templates of the sources a receiver's parser knows, as layouts.
#[derive(Debug, Default)]
pub struct Layouts {
    of: HashMap<(SocketAddr, u32, Version), Source>,
}

impl Layouts {
    /// Decodes a datagram from `from` without the parser, if it is one message of data sets
    /// of known layouts (and within the parser's limits); `init_ms(domain)` is the
    /// exporter's boot time (IPFIX uptime-relative times).
    pub fn decode(
        &self,
        from: SocketAddr,
        data: &[u8],
        init_ms: impl FnOnce(u32) -> Option<i64>,
    ) -> Option<Decoded> {
        let (version, domain, sequence, mut clock, start) = header(data)?;
        let src = self.of.get(&(from, domain, version))?;
        if src.parser_only {
            return None;
        }
        let (mut values, mut records, mut any) = (0usize, 0usize, false);
        for set in sets(data, start) {
            let (id, body) = set?;
            let l = src.layouts.get(&id).filter(|_| id >= FIRST_DATA)?;
            let n = body.len() / l.len;
            if n > DEFAULT_MAX_RECORDS_PER_FLOWSET {
                return None;
            }
            values += n * l.fields;
            records += n;
            any = true;
        }
        if !any || values > DEFAULT_MAX_DECODED_FIELD_VALUES_PER_MESSAGE {
            return None;
        }
        if version == Version::Ipfix {
            clock.init_ms = init_ms(domain);
        }
        let mut d = Decoded::empty(version, domain, sequence);
        d.flows.reserve(records);
        for (id, body) in sets(data, start).flatten() {
            let layout = &src.layouts[&id];
            for bytes in body.chunks_exact(layout.len) {
                d.push(decode::record(&Raw { layout, bytes }, &clock));
            }
        }
        Some(d)
    }

    /// Learns the templates of a datagram from `from` that the parser took (`parsed`: it
    /// parsed without error), as the parser installed them; a refused one forgets the
    /// source's layouts.
    pub fn learn(&mut self, from: SocketAddr, data: &[u8], parsed: bool) {
        let Some((version, domain, _, _, start)) = header(data) else {
            // Not one v9/IPFIX message (v5, several messages, bytes past its length):
            // whatever its templates were, this path knows none of the sender's.
            if matches!(data.get(..2), Some([0, 9 | 10])) {
                self.of.retain(|(f, _, _), _| *f != from);
            }
            return;
        };
        let key = (from, domain, version);
        let src = self.of.entry(key).or_default();
        if !parsed || learn(src, version, data, start).is_none() {
            self.of.remove(&key);
        }
    }

    /// Forgets the templates of a source (sender address and port, observation domain).
    pub fn forget(&mut self, from: SocketAddr, domain: u32) {
        self.of.retain(|(f, d, _), _| (*f, *d) != (from, domain));
    }
}

/// Applies a message's template sets to `src`, in order; `None` for one that does not parse.
fn learn(src: &mut Source, version: Version, data: &[u8], start: usize) -> Option<()> {
    for set in sets(data, start) {
        let (id, b) = set?;
        match (version, id) {
            (Version::V9, V9_TEMPLATES) => {
                let mut at = 0;
                while b.len() - at >= 4 {
                    let (tid, count) = (u16_at(b, at)?, usize::from(u16_at(b, at + 2)?));
                    let (f, next) = fields(version, b, at + 4, count)?;
                    src.define(tid, Layout::new(version, &f));
                    at = next;
                }
            }
            (Version::V9, V9_OPTIONS) => {
                let mut at = 0;
                while b.len() - at >= 6 {
                    // Scope and option fields of 4 bytes each, by their lengths in bytes.
                    let tid = u16_at(b, at)?;
                    let fields = |i| u16_at(b, i).map(|n| usize::from(n / 4) * 4);
                    let len = fields(at + 2)? + fields(at + 4)?;
                    b.get(at + 6..at + 6 + len)?;
                    src.define(tid, None);
                    at += 6 + len;
                }
            }
            (Version::Ipfix, IPFIX_TEMPLATES) => {
                // Withdrawals first, then definitions, as the parser does within a set;
                // a record that does not fit ends the set.
                let mut defined = Vec::new();
                let mut at = 0;
                while b.len() - at >= 4 {
                    let (tid, count) = (u16_at(b, at)?, usize::from(u16_at(b, at + 2)?));
                    if count == 0 {
                        if tid == IPFIX_TEMPLATES {
                            src.layouts.clear();
                        } else {
                            src.layouts.remove(&tid);
                        }
                        at += 4;
                        continue;
                    }
                    let Some((f, next)) = fields(version, b, at + 4, count) else {
                        break;
                    };
                    defined.push((tid, Layout::new(version, &f)));
                    at = next;
                }
                for (tid, layout) in defined {
                    src.define(tid, layout);
                }
            }
            (Version::Ipfix, IPFIX_OPTIONS) => {
                let mut at = 0;
                while b.len() - at >= 6 {
                    let (tid, count) = (u16_at(b, at)?, usize::from(u16_at(b, at + 2)?));
                    if count == 0 {
                        // Withdraws options templates only.
                        at += 6;
                        continue;
                    }
                    let Some((_, next)) = fields(version, b, at + 6, count) else {
                        break;
                    };
                    src.define(tid, None);
                    at = next;
                }
            }
            // v9-style templates inside IPFIX: their own caches in the parser.
            (Version::Ipfix, V9_TEMPLATES | V9_OPTIONS) => src.parser_only = true,
            _ => {}
        }
    }
    Some(())
}
