//! The gRPC codec of `scanscope.v1`: prost's, with one guard. Before a `Batch` is decoded its
//! wire form is scanned (no allocation) and refused if it holds more records than the limit:
//! protobuf decodes a 2-byte empty element into a full struct (an `Event` is ~300 bytes), so a
//! 32 MiB message of empty elements would become gigabytes before any validation could run.
//!
//! The limits are the process's (the collector sets them from its command line with
//! [`set_batch_limits`]; the generated code creates codecs with `Default`).
use std::{
    any::TypeId,
    marker::PhantomData,
    sync::atomic::{AtomicUsize, Ordering},
};

use bytes::Buf;
use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

use crate::v1::Batch;

static MAX_RECORDS: AtomicUsize = AtomicUsize::new(1_000_000);
static MAX_NESTED: AtomicUsize = AtomicUsize::new(4_000_000);

/// Sets the most records (events + flows + stats + lost) and the most nested entries (per-kind,
/// counter and port entries of the stats) a `Batch` may hold for this process.
pub fn set_batch_limits(max_records: usize, max_nested: usize) {
    MAX_RECORDS.store(max_records, Ordering::Relaxed);
    MAX_NESTED.store(max_nested, Ordering::Relaxed);
}

/// What a `Batch`'s wire form holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// Events, flows, stats and lost records.
    pub records: usize,
    /// Entries inside the stats records.
    pub nested: usize,
}

/// Reads a varint; `None` at the end of the input or for an overlong one.
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Visits the fields of one message: `(field number, length-delimited body if any)`.
/// `None` if the wire form is malformed (the decoder then reports it).
fn fields<'a>(b: &'a [u8], mut f: impl FnMut(u64, Option<&'a [u8]>)) -> Option<()> {
    let mut at = 0;
    while at < b.len() {
        let key = varint(b, &mut at)?;
        match key & 7 {
            0 => {
                varint(b, &mut at)?;
                f(key >> 3, None);
            }
            1 => at = at.checked_add(8)?,
            2 => {
                let len = usize::try_from(varint(b, &mut at)?).ok()?;
                let end = at.checked_add(len)?;
                f(key >> 3, Some(b.get(at..end)?));
                at = end;
            }
            5 => at = at.checked_add(4)?,
            _ => return None,
        }
    }
    (at == b.len()).then_some(())
}

/// Counts a `Batch`'s records and the entries of its stats from its wire form.
pub fn census(b: &[u8]) -> Option<Census> {
    let mut c = Census::default();
    let mut ok = true;
    fields(b, |n, body| {
        if (5..=8).contains(&n) {
            c.records += 1;
        }
        if n == 7
            && let Some(stats) = body
        {
            ok &= fields(stats, |m, inner| {
                if inner.is_some() && m != 1 {
                    c.nested += 1;
                }
            })
            .is_some();
        }
    })?;
    ok.then_some(c)
}

/// prost's codec with the `Batch` guard.
#[derive(Debug, Clone, Copy)]
pub struct BoundedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        BoundedCodec(PhantomData)
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(PhantomData)
    }
}

/// Encodes with prost.
#[derive(Debug, Clone, Copy)]
pub struct ProstEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ProstEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Decodes with prost, after the `Batch` guard.
#[derive(Debug, Clone, Copy)]
pub struct BoundedDecoder<U>(PhantomData<U>);

impl<U> Default for BoundedDecoder<U> {
    fn default() -> Self {
        BoundedDecoder(PhantomData)
    }
}

impl<U: Message + Default + 'static> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        if TypeId::of::<U>() == TypeId::of::<Batch>() {
            let bytes = buf.copy_to_bytes(buf.remaining());
            check(&bytes)?;
            return U::decode(bytes)
                .map(Some)
                .map_err(|e| Status::internal(e.to_string()));
        }
        U::decode(buf)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The guard: RESOURCE_EXHAUSTED if the batch holds more than the limits, INVALID_ARGUMENT
/// (as prost would say INTERNAL) if its wire form is malformed.
pub fn check(b: &[u8]) -> Result<Census, Status> {
    let c = census(b).ok_or_else(|| Status::invalid_argument("malformed batch"))?;
    let (max_r, max_n) = (
        MAX_RECORDS.load(Ordering::Relaxed),
        MAX_NESTED.load(Ordering::Relaxed),
    );
    if c.records > max_r {
        return Err(Status::resource_exhausted(format!(
            "batch holds {} records, more than the limit {max_r}",
            c.records
        )));
    }
    if c.nested > max_n {
        return Err(Status::resource_exhausted(format!(
            "batch's stats hold {} entries, more than the limit {max_n}",
            c.nested
        )));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{Counter, Event, Flow, SensorStats};

    #[test]
    fn census_counts_records_without_decoding() {
        let b = Batch {
            sensor_id: "s".into(),
            seq: 3,
            events: vec![Event::default(); 4],
            flows: vec![
                Flow {
                    packets: 7,
                    ..Default::default()
                };
                2
            ],
            stats: vec![SensorStats {
                counters: vec![Counter::default(); 5],
                ..Default::default()
            }],
            ..Default::default()
        };
        let c = census(&b.encode_to_vec()).unwrap();
        assert_eq!(
            c,
            Census {
                records: 7,
                nested: 5
            }
        );
        assert!(census(&[0x2a, 0x05, 0x00]).is_none(), "truncated");
    }

    #[test]
    fn a_bomb_of_empty_elements_is_refused_before_decoding() {
        // 2 bytes per empty Event: these 2 MiB would decode into ~300 MB of structs.
        let bomb: Vec<u8> = std::iter::repeat_n([0x2a, 0x00], (1 << 20) + 1)
            .flatten()
            .collect();
        let e = check(&bomb).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
        assert!(check(&Batch::default().encode_to_vec()).is_ok());
    }
}
