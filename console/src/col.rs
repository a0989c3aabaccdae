//! Typed views of a rollup batch's columns, by name, whatever physical type a file gave them
//! (plain or dictionary strings, narrower or wider integers). A column a file lacks (a day
//! rolled up before the column existed) reads as absent: null values, empty lists.
use arrow::{
    array::{
        Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, GenericListArray, RecordBatch,
        StringArray,
    },
    datatypes::{
        DataType, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
        UInt8Type, UInt16Type, UInt32Type, UInt64Type,
    },
};

/// The keys of a dictionary column, at the width the file (or the catalog's narrowing) gave.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    keys: KeyValues<'a>,
    nulls: Option<&'a arrow::buffer::NullBuffer>,
}

#[derive(Debug, Clone, Copy)]
enum KeyValues<'a> {
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
}

impl<'a> Keys<'a> {
    fn get(&self, i: usize) -> Option<usize> {
        if self.nulls.is_some_and(|n| n.is_null(i)) {
            return None;
        }
        match self.keys {
            KeyValues::I8(k) => usize::try_from(k[i]).ok(),
            KeyValues::I16(k) => usize::try_from(k[i]).ok(),
            KeyValues::I32(k) => usize::try_from(k[i]).ok(),
        }
    }

    fn of<K: arrow::datatypes::ArrowDictionaryKeyType>(
        d: &'a DictionaryArray<K>,
        keys: fn(&'a [K::Native]) -> KeyValues<'a>,
    ) -> (Keys<'a>, &'a ArrayRef) {
        (
            Keys {
                keys: keys(d.keys().values()),
                nulls: d.nulls(),
            },
            d.values(),
        )
    }
}

/// A text column.
#[derive(Debug, Clone, Copy)]
pub enum Text<'a> {
    Plain(&'a StringArray),
    Dict(Keys<'a>, &'a StringArray),
    Absent,
}

impl<'a> Text<'a> {
    pub fn of(b: &'a RecordBatch, name: &str) -> Text<'a> {
        b.column_by_name(name)
            .map_or(Text::Absent, Text::from_array)
    }

    pub fn from_array(a: &'a ArrayRef) -> Text<'a> {
        match a.data_type() {
            DataType::Utf8 => Text::Plain(a.as_string::<i32>()),
            DataType::Dictionary(k, v) if **v == DataType::Utf8 => {
                let (keys, values) = match **k {
                    DataType::Int8 => Keys::of(a.as_dictionary::<Int8Type>(), KeyValues::I8),
                    DataType::Int16 => Keys::of(a.as_dictionary::<Int16Type>(), KeyValues::I16),
                    DataType::Int32 => Keys::of(a.as_dictionary::<Int32Type>(), KeyValues::I32),
                    _ => return Text::Absent,
                };
                Text::Dict(keys, values.as_string::<i32>())
            }
            _ => Text::Absent,
        }
    }

    pub fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Text::Plain(a) => (!a.is_null(i)).then(|| a.value(i)),
            Text::Dict(k, v) => k.get(i).map(|k| v.value(k)),
            Text::Absent => None,
        }
    }

    /// The distinct values of a dictionary column (`None` for a plain or absent one).
    pub fn dictionary(&self) -> Option<&'a StringArray> {
        match self {
            Text::Dict(_, v) => Some(v),
            _ => None,
        }
    }

    /// Row `i`'s key into [`Text::dictionary`] (`None` for null, or not a dictionary column).
    pub fn key(&self, i: usize) -> Option<usize> {
        match self {
            Text::Dict(k, _) => k.get(i),
            _ => None,
        }
    }

    /// Whether each row's value satisfies `f` (null: false); a dictionary column tests each
    /// distinct value once.
    pub fn test(&self, len: usize, f: impl Fn(&str) -> bool) -> Vec<bool> {
        match self {
            Text::Plain(a) => (0..len).map(|i| !a.is_null(i) && f(a.value(i))).collect(),
            Text::Dict(k, v) => {
                let hit: Vec<bool> = (0..v.len())
                    .map(|j| !v.is_null(j) && f(v.value(j)))
                    .collect();
                (0..len)
                    .map(|i| k.get(i).and_then(|k| hit.get(k).copied()).unwrap_or(false))
                    .collect()
            }
            Text::Absent => vec![false; len],
        }
    }
}

/// A list-of-text column.
#[derive(Debug, Clone, Copy)]
pub struct TextList<'a>(Option<(Offsets<'a>, Text<'a>, usize)>);

impl<'a> TextList<'a> {
    pub fn of(b: &'a RecordBatch, name: &str) -> TextList<'a> {
        TextList(b.column_by_name(name).and_then(|a| match a.data_type() {
            DataType::List(_) => {
                let l = a.as_list::<i32>();
                Some((
                    Offsets::of(l),
                    Text::from_array(l.values()),
                    l.values().len(),
                ))
            }
            _ => None,
        }))
    }

    /// The elements of every row, as one text column (row `i`'s are [`TextList::range`]).
    pub fn elements(&self) -> Text<'a> {
        self.0.map_or(Text::Absent, |(_, t, _)| t)
    }

    /// Row `i`'s elements' positions in [`TextList::elements`].
    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.0.map_or(0..0, |(o, _, _)| o.range(i))
    }

    /// The values of row `i` (none for a null row).
    pub fn get(&self, i: usize) -> impl Iterator<Item = &'a str> + 'a {
        let values = self.elements();
        self.range(i).filter_map(move |j| values.get(j))
    }

    pub fn test(&self, len: usize, f: impl Fn(&str) -> bool) -> Vec<bool> {
        let Some((o, t, n)) = self.0 else {
            return vec![false; len];
        };
        let hit = t.test(n, f);
        (0..len)
            .map(|i| hit[o.range(i)].iter().any(|h| *h))
            .collect()
    }
}

/// A list-of-u16 column (ports).
#[derive(Debug, Clone, Copy)]
pub struct Ports<'a>(Option<(Offsets<'a>, &'a [u16])>);

impl<'a> Ports<'a> {
    pub fn of(b: &'a RecordBatch, name: &str) -> Ports<'a> {
        Ports(b.column_by_name(name).and_then(|a| match a.data_type() {
            DataType::List(f) if *f.data_type() == DataType::UInt16 => {
                let l = a.as_list::<i32>();
                Some((
                    Offsets::of(l),
                    &l.values().as_primitive::<UInt16Type>().values()[..],
                ))
            }
            _ => None,
        }))
    }

    pub fn get(&self, i: usize) -> &'a [u16] {
        match self.0 {
            Some((o, v)) => &v[o.range(i)],
            None => &[],
        }
    }

    /// Whether each of the first `len` rows holds a port within one of `ranges`, each
    /// (low, width): a port `p` with `p - low ≤ width`. A null row holds none.
    ///
    /// One pass over the ports of all rows, 16 at a time into a bit mask (the ranges a
    /// fixed-size array, so that the compiler vectorises the test); each hit then finds its
    /// row by walking the offsets forward.
    pub fn any_within(&self, len: usize, ranges: &[(u16, u16)]) -> Vec<bool> {
        let mut out = vec![false; len];
        let Some((o, v)) = self.0 else {
            return out;
        };
        if len == 0 || ranges.is_empty() {
            return out;
        }
        let offs = &o.offsets[..=len];
        let (first, end) = (offs[0] as usize, offs[len] as usize);
        let values = &v[first..end];
        // Four ranges at a time (`port:a OR port:b …` of more: one pass per four).
        for r in ranges.chunks(4) {
            let mut row = 0;
            let mut mark = |j: usize| {
                let j = first + j;
                while offs[row + 1] as usize <= j {
                    row += 1;
                }
                out[row] = true;
            };
            match r.len() {
                1 => hits::<1>(values, r, &mut mark),
                2 => hits::<2>(values, r, &mut mark),
                3 => hits::<3>(values, r, &mut mark),
                _ => hits::<4>(values, r, &mut mark),
            }
        }
        if let Some(nulls) = o.nulls {
            for (i, o) in out.iter_mut().enumerate() {
                *o &= nulls.is_valid(i);
            }
        }
        out
    }
}

/// Calls `hit` with the index of each value within one of the `N` (low, width) `ranges`, in
/// ascending order.
fn hits<const N: usize>(values: &[u16], ranges: &[(u16, u16)], hit: &mut impl FnMut(usize)) {
    let r: [(u16, u16); N] = std::array::from_fn(|k| ranges[k]);
    let within = |p: u16| {
        r.iter()
            .fold(false, |a, &(lo, w)| a | (p.wrapping_sub(lo) <= w))
    };
    const BLOCK: usize = 16;
    let blocks = values.chunks_exact(BLOCK);
    let tail = blocks.remainder();
    for (b, block) in blocks.enumerate() {
        // The block's hits as 16 bits (the compares vectorised).
        let mut bits = 0u32;
        for (k, &p) in block.iter().enumerate() {
            bits |= u32::from(within(p)) << k;
        }
        while bits != 0 {
            hit(b * BLOCK + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
    }
    let base = values.len() - tail.len();
    for (k, &p) in tail.iter().enumerate() {
        if within(p) {
            hit(base + k);
        }
    }
}

/// A list column's row boundaries (a null row is empty).
#[derive(Debug, Clone, Copy)]
struct Offsets<'a> {
    offsets: &'a [i32],
    nulls: Option<&'a arrow::buffer::NullBuffer>,
}

impl<'a> Offsets<'a> {
    fn of(l: &'a GenericListArray<i32>) -> Self {
        Offsets {
            offsets: l.value_offsets(),
            nulls: l.nulls(),
        }
    }

    fn range(&self, i: usize) -> std::ops::Range<usize> {
        if self.nulls.is_some_and(|n| n.is_null(i)) {
            return 0..0;
        }
        self.offsets[i] as usize..self.offsets[i + 1] as usize
    }
}

/// A numeric column (any unsigned width, `Int64` of user fields), its type resolved once.
#[derive(Debug, Clone, Copy)]
pub struct Num<'a> {
    values: Values<'a>,
    nulls: Option<&'a arrow::buffer::NullBuffer>,
}

#[derive(Debug, Clone, Copy)]
enum Values<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
    I64(&'a [i64]),
    None,
}

impl<'a> Num<'a> {
    pub fn of(b: &'a RecordBatch, name: &str) -> Num<'a> {
        let Some(a) = b.column_by_name(name) else {
            return Num {
                values: Values::None,
                nulls: None,
            };
        };
        let values = match a.data_type() {
            DataType::UInt8 => Values::U8(a.as_primitive::<UInt8Type>().values()),
            DataType::UInt16 => Values::U16(a.as_primitive::<UInt16Type>().values()),
            DataType::UInt32 => Values::U32(a.as_primitive::<UInt32Type>().values()),
            DataType::UInt64 => Values::U64(a.as_primitive::<UInt64Type>().values()),
            DataType::Int64 => Values::I64(a.as_primitive::<Int64Type>().values()),
            _ => Values::None,
        };
        Num {
            values,
            nulls: a.nulls(),
        }
    }

    pub fn get(&self, i: usize) -> Option<u64> {
        if self.nulls.is_some_and(|n| n.is_null(i)) {
            return None;
        }
        match self.values {
            Values::U8(v) => Some(u64::from(v[i])),
            Values::U16(v) => Some(u64::from(v[i])),
            Values::U32(v) => Some(u64::from(v[i])),
            Values::U64(v) => Some(v[i]),
            Values::I64(v) => u64::try_from(v[i]).ok(),
            Values::None => None,
        }
    }

    /// Zero for null or absent.
    pub fn or0(&self, i: usize) -> u64 {
        self.get(i).unwrap_or(0)
    }
}

/// A timestamp column: µs since the epoch as the file has it, or whole seconds since the epoch
/// as `UInt32` (the catalog's narrowing; the API shows seconds).
#[derive(Debug, Clone, Copy)]
pub struct Time<'a> {
    values: Times<'a>,
    nulls: Option<&'a arrow::buffer::NullBuffer>,
}

#[derive(Debug, Clone, Copy)]
enum Times<'a> {
    Micros(&'a [i64]),
    Secs(&'a [u32]),
    None,
}

impl<'a> Time<'a> {
    pub fn of(b: &'a RecordBatch, name: &str) -> Time<'a> {
        let a = b.column_by_name(name);
        let values = match a.map(|a| (a, a.data_type())) {
            Some((a, DataType::Timestamp(TimeUnit::Microsecond, _))) => {
                Times::Micros(a.as_primitive::<TimestampMicrosecondType>().values())
            }
            Some((a, DataType::UInt32)) => Times::Secs(a.as_primitive::<UInt32Type>().values()),
            _ => Times::None,
        };
        Time {
            values,
            nulls: a.and_then(|a| a.nulls()),
        }
    }

    /// µs since the epoch.
    pub fn get(&self, i: usize) -> Option<i64> {
        if self.nulls.is_some_and(|n| n.is_null(i)) {
            return None;
        }
        match self.values {
            Times::Micros(v) => Some(v[i]),
            Times::Secs(v) => Some(i64::from(v[i]) * 1_000_000),
            Times::None => None,
        }
    }
}

/// A boolean column.
#[derive(Debug, Clone, Copy)]
pub struct Flag<'a>(Option<&'a BooleanArray>);

impl<'a> Flag<'a> {
    pub fn of(b: &'a RecordBatch, name: &str) -> Flag<'a> {
        Flag(b.column_by_name(name).and_then(|a| a.as_boolean_opt()))
    }

    pub fn get(&self, i: usize) -> Option<bool> {
        self.0.and_then(|a| (!a.is_null(i)).then(|| a.value(i)))
    }
}

/// A binary column.
#[derive(Debug, Clone, Copy)]
pub struct Bytes<'a>(Option<&'a arrow::array::BinaryArray>);

impl<'a> Bytes<'a> {
    pub fn of(b: &'a RecordBatch, name: &str) -> Bytes<'a> {
        Bytes(
            b.column_by_name(name)
                .and_then(|a| a.as_binary_opt::<i32>()),
        )
    }

    pub fn get(&self, i: usize) -> &'a [u8] {
        self.0
            .and_then(|a| (!a.is_null(i)).then(|| a.value(i)))
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ListBuilder, UInt16Builder};
    use std::sync::Arc;

    /// `any_within` against a row-by-row check: rows of 0 to 150 ports (so that rows start and
    /// end inside and across 64-port chunks), null rows, a slice that starts past zero, and
    /// ranges at the ends of the port space.
    #[test]
    fn any_within_equals_a_row_by_row_check() {
        let mut b = ListBuilder::new(UInt16Builder::new());
        let mut rows: Vec<Option<Vec<u16>>> = Vec::new();
        let mut x = 7u32;
        for r in 0..400u32 {
            if r % 17 == 5 {
                b.append_null();
                rows.push(None);
                continue;
            }
            let n = (r * 37 % 151) as usize;
            let ports: Vec<u16> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 8) as u16
                })
                .collect();
            b.values().append_slice(&ports);
            b.append(true);
            rows.push(Some(ports));
        }
        let list: ArrayRef = Arc::new(b.finish());
        let batch = RecordBatch::try_from_iter([("p", list)]).unwrap();
        let ranges: &[&[(u16, u16)]] = &[
            &[(23, 0)],
            &[(0, 0)],
            &[(u16::MAX, 0)],
            &[(1000, 2000), (60_000, 5535)],
            &[(443, 0), (8080, 0), (22, 0)],
            &[(1, 0), (2, 3), (100, 900), (40_000, 0)],
            &[
                (23, 0),
                (2323, 0),
                (80, 0),
                (8000, 100),
                (443, 0),
                (0, 10),
                (65_000, 535),
            ],
            &[],
        ];
        for offset in [0, 1, 63, 130] {
            let b = batch.slice(offset, batch.num_rows() - offset);
            let ports = Ports::of(&b, "p");
            for r in ranges {
                let want: Vec<bool> = rows[offset..]
                    .iter()
                    .map(|row| {
                        row.as_ref().is_some_and(|ps| {
                            ps.iter().any(|p| {
                                r.iter().any(|&(lo, w)| {
                                    *p >= lo && u32::from(*p) <= u32::from(lo) + u32::from(w)
                                })
                            })
                        })
                    })
                    .collect();
                assert_eq!(
                    ports.any_within(b.num_rows(), r),
                    want,
                    "offset {offset}, ranges {r:?}"
                );
            }
        }
        assert!(Ports::of(&batch, "absent").any_within(3, &[(23, 0)]) == [false; 3]);
    }
}
