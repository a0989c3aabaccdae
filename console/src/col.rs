//! Typed views of a rollup batch's columns, by name, whatever physical type a file gave them
//! (plain or dictionary strings, narrower or wider integers). A column a file lacks (a day
//! rolled up before the column existed) reads as absent: null values, empty lists.
use arrow::{
    array::{
        Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, GenericListArray, RecordBatch,
        StringArray,
    },
    datatypes::{
        DataType, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, UInt8Type, UInt16Type,
        UInt32Type, UInt64Type,
    },
};

/// A text column.
#[derive(Debug, Clone, Copy)]
pub enum Text<'a> {
    Plain(&'a StringArray),
    Dict(&'a DictionaryArray<Int32Type>, &'a StringArray),
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
            DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8 => {
                let d = a.as_dictionary::<Int32Type>();
                Text::Dict(d, d.values().as_string::<i32>())
            }
            _ => Text::Absent,
        }
    }

    pub fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Text::Plain(a) => (!a.is_null(i)).then(|| a.value(i)),
            Text::Dict(d, v) => {
                if d.is_null(i) {
                    return None;
                }
                let k = d.keys().value(i);
                usize::try_from(k).ok().map(|k| v.value(k))
            }
            Text::Absent => None,
        }
    }

    /// Whether each row's value satisfies `f` (null: false); a dictionary column tests each
    /// distinct value once.
    pub fn test(&self, len: usize, f: impl Fn(&str) -> bool) -> Vec<bool> {
        match self {
            Text::Plain(a) => (0..len).map(|i| !a.is_null(i) && f(a.value(i))).collect(),
            Text::Dict(d, v) => {
                let hit: Vec<bool> = (0..v.len())
                    .map(|j| !v.is_null(j) && f(v.value(j)))
                    .collect();
                (0..len)
                    .map(|i| {
                        !d.is_null(i)
                            && usize::try_from(d.keys().value(i))
                                .ok()
                                .and_then(|k| hit.get(k).copied())
                                .unwrap_or(false)
                    })
                    .collect()
            }
            Text::Absent => vec![false; len],
        }
    }
}

/// A list-of-text column.
#[derive(Debug, Clone, Copy)]
pub struct TextList<'a>(Option<(&'a GenericListArray<i32>, Text<'a>)>);

impl<'a> TextList<'a> {
    pub fn of(b: &'a RecordBatch, name: &str) -> TextList<'a> {
        TextList(b.column_by_name(name).and_then(|a| match a.data_type() {
            DataType::List(_) => {
                let l = a.as_list::<i32>();
                Some((l, Text::from_array(l.values())))
            }
            _ => None,
        }))
    }

    /// The values of row `i` (none for a null row).
    pub fn get(&self, i: usize) -> impl Iterator<Item = &'a str> + 'a {
        let range = self
            .0
            .filter(|(l, _)| !l.is_null(i))
            .map(|(l, _)| {
                let o = l.value_offsets();
                o[i] as usize..o[i + 1] as usize
            })
            .unwrap_or(0..0);
        let values = self.0.map(|(_, t)| t);
        range.filter_map(move |j| values.and_then(|t| t.get(j)))
    }

    pub fn test(&self, len: usize, f: impl Fn(&str) -> bool) -> Vec<bool> {
        let Some((l, t)) = self.0 else {
            return vec![false; len];
        };
        let hit = t.test(l.values().len(), f);
        let o = l.value_offsets();
        (0..len)
            .map(|i| !l.is_null(i) && hit[o[i] as usize..o[i + 1] as usize].iter().any(|h| *h))
            .collect()
    }
}

/// A list-of-u16 column (ports).
#[derive(Debug, Clone, Copy)]
pub struct Ports<'a>(Option<(&'a GenericListArray<i32>, &'a [u16])>);

impl<'a> Ports<'a> {
    pub fn of(b: &'a RecordBatch, name: &str) -> Ports<'a> {
        Ports(b.column_by_name(name).and_then(|a| match a.data_type() {
            DataType::List(f) if *f.data_type() == DataType::UInt16 => {
                let l = a.as_list::<i32>();
                Some((l, &l.values().as_primitive::<UInt16Type>().values()[..]))
            }
            _ => None,
        }))
    }

    pub fn get(&self, i: usize) -> &'a [u16] {
        match self.0 {
            Some((l, v)) if !l.is_null(i) => {
                let o = l.value_offsets();
                &v[o[i] as usize..o[i + 1] as usize]
            }
            _ => &[],
        }
    }
}

/// A numeric column (any unsigned width, `Int64` of user fields, timestamps in µs).
#[derive(Debug, Clone, Copy)]
pub struct Num<'a>(Option<&'a ArrayRef>);

impl<'a> Num<'a> {
    pub fn of(b: &'a RecordBatch, name: &str) -> Num<'a> {
        Num(b.column_by_name(name))
    }

    pub fn get(&self, i: usize) -> Option<u64> {
        let a = self.0?;
        if a.is_null(i) {
            return None;
        }
        Some(match a.data_type() {
            DataType::UInt8 => u64::from(a.as_primitive::<UInt8Type>().value(i)),
            DataType::UInt16 => u64::from(a.as_primitive::<UInt16Type>().value(i)),
            DataType::UInt32 => u64::from(a.as_primitive::<UInt32Type>().value(i)),
            DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i),
            DataType::Int64 => u64::try_from(a.as_primitive::<Int64Type>().value(i)).ok()?,
            _ => return None,
        })
    }

    /// Zero for null or absent.
    pub fn or0(&self, i: usize) -> u64 {
        self.get(i).unwrap_or(0)
    }
}

/// A timestamp column (µs since the epoch).
#[derive(Debug, Clone, Copy)]
pub struct Time<'a>(Option<&'a ArrayRef>);

impl<'a> Time<'a> {
    pub fn of(b: &'a RecordBatch, name: &str) -> Time<'a> {
        Time(
            b.column_by_name(name)
                .filter(|a| matches!(a.data_type(), DataType::Timestamp(TimeUnit::Microsecond, _))),
        )
    }

    pub fn get(&self, i: usize) -> Option<i64> {
        let a = self.0?;
        (!a.is_null(i)).then(|| a.as_primitive::<TimestampMicrosecondType>().value(i))
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
