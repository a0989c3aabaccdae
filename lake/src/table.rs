//! How a lake table is declared: once, with [`lake_table!`](crate::lake_table).
//!
//! A declaration lists the table's columns as the fields of its row struct, each with the Rust
//! type the code holds and the column type the lake stores (`field: Rust type => Column type`).
//! From it come the row struct, the column list ([`Column`]: name, type, nullability — what the
//! docs test checks `docs/*.md` against), the Arrow schema, a builder that appends rows and
//! finishes a `RecordBatch`, the column names as constants (`Row::COL.src_ip`) for readers, and
//! [`Cell`] views of a row's values (the CEL rules bind every column from them).
//!
//! Column types are the marker types of this module ([`Utf8`], [`U16`], [`Timestamp`],
//! [`List`], [`Nullable`] …); [`Put`] says which Rust values each one stores.
use std::sync::Arc;

use arrow::{
    array::{
        ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder,
        ListBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder,
        UInt32Builder, UInt64Builder,
    },
    datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit},
};
use scanscope_common::{AppProtocol, Kind, LostStage, SessionEnd, Tool};

/// The scalar types of lake columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I64,
    F64,
    Utf8,
    Binary,
    /// Microseconds since the Unix epoch, UTC.
    Timestamp,
}

impl Scalar {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            Scalar::Bool => DataType::Boolean,
            Scalar::U8 => DataType::UInt8,
            Scalar::U16 => DataType::UInt16,
            Scalar::U32 => DataType::UInt32,
            Scalar::U64 => DataType::UInt64,
            Scalar::I64 => DataType::Int64,
            Scalar::F64 => DataType::Float64,
            Scalar::Utf8 => DataType::Utf8,
            Scalar::Binary => DataType::Binary,
            Scalar::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }

    /// The name the docs use (`docs/lake.md`: "Types below are the Parquet logical types").
    pub fn doc_name(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::U8 => "uint8",
            Scalar::U16 => "uint16",
            Scalar::U32 => "uint32",
            Scalar::U64 => "uint64",
            Scalar::I64 => "int64",
            Scalar::F64 => "double",
            Scalar::Utf8 => "string",
            Scalar::Binary => "binary",
            Scalar::Timestamp => "timestamp(µs, UTC)",
        }
    }
}

/// The type of a lake column: a scalar or a list of scalars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Scalar(Scalar),
    /// A list whose items are nullable in the Arrow schema (`item`), as the lake has always
    /// written them.
    List(Scalar),
}

impl ColumnType {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Scalar(s) => s.data_type(),
            ColumnType::List(s) => {
                DataType::List(Arc::new(Field::new("item", s.data_type(), true)))
            }
        }
    }

    /// The name the docs use: `uint16`, `list<string>` …
    pub fn doc_name(self) -> String {
        match self {
            ColumnType::Scalar(s) => s.doc_name().to_string(),
            ColumnType::List(s) => format!("list<{}>", s.doc_name()),
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
}

impl Column {
    /// The Arrow field.
    pub fn field(&self) -> Field {
        Field::new(self.name, self.ty.data_type(), self.nullable)
    }

    /// The type as the docs write it: `uint8`, `string, null`, `list<uint16>` …
    pub fn doc_type(&self) -> String {
        let t = self.ty.doc_name();
        if self.nullable {
            format!("{t}, null")
        } else {
            t
        }
    }
}

/// The Arrow schema of a column list.
pub fn schema(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns.iter().map(Column::field).collect::<Vec<_>>(),
    ))
}

/// A value of one column in one row, borrowed from the row (for rule bindings and reports).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    List(Vec<Cell<'a>>),
}

/// What every table's builder does (the builders `lake_table!` declares).
pub trait TableBuilder: Default {
    /// Rows appended since the last finish.
    fn rows(&self) -> usize;
    /// The rows appended so far as one record batch (the builder is empty afterwards).
    fn finish_batch(&mut self) -> Result<arrow::array::RecordBatch, arrow::error::ArrowError>;
}

/// A column type: its [`ColumnType`], nullability and Arrow builder.
pub trait Col {
    const TYPE: ColumnType;
    const NULLABLE: bool = false;
    type Builder: ArrayBuilder;
    /// A builder for about `capacity` rows.
    fn builder(capacity: usize) -> Self::Builder;
    /// Appends a null.
    fn put_null(b: &mut Self::Builder);
    /// The finished array.
    fn finish(b: &mut Self::Builder) -> ArrayRef {
        ArrayBuilder::finish(b)
    }
}

/// A column type whose values are scalars (a list's items).
pub trait ScalarCol: Col {
    const SCALAR: Scalar;
}

/// Which Rust values a column type stores, and how.
pub trait Put<V: ?Sized>: Col {
    fn put(b: &mut Self::Builder, v: &V);
    fn cell(v: &V) -> Cell<'_>;
}

macro_rules! scalar_col {
    ($(#[$m:meta])* $marker:ident, $scalar:ident, $builder:ty, [$($rust:ty => $cell:ident),*]) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy)]
        pub struct $marker;
        impl Col for $marker {
            const TYPE: ColumnType = ColumnType::Scalar(Scalar::$scalar);
            type Builder = $builder;
            fn builder(capacity: usize) -> $builder {
                <$builder>::with_capacity(capacity)
            }
            fn put_null(b: &mut $builder) {
                b.append_null();
            }
        }
        impl ScalarCol for $marker {
            const SCALAR: Scalar = Scalar::$scalar;
        }
        $(
            impl Put<$rust> for $marker {
                fn put(b: &mut $builder, v: &$rust) {
                    b.append_value(*v);
                }
                fn cell(v: &$rust) -> Cell<'_> {
                    Cell::$cell((*v).into())
                }
            }
        )*
    };
}

scalar_col!(
    /// `bool`.
    Bool, Bool, BooleanBuilder, [bool => Bool]);
scalar_col!(
    /// `uint8`.
    U8, U8, UInt8Builder, [u8 => UInt]);
scalar_col!(
    /// `uint16`.
    U16, U16, UInt16Builder, [u16 => UInt]);
scalar_col!(
    /// `uint32`.
    U32, U32, UInt32Builder, [u32 => UInt]);
scalar_col!(
    /// `uint64`.
    U64, U64, UInt64Builder, [u64 => UInt]);
scalar_col!(
    /// `int64`.
    I64, I64, Int64Builder, [i64 => Int]);
scalar_col!(
    /// `double`.
    F64, F64, Float64Builder, [f64 => Float]);

/// `timestamp(µs, UTC)`, from microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp;
impl Col for Timestamp {
    const TYPE: ColumnType = ColumnType::Scalar(Scalar::Timestamp);
    type Builder = TimestampMicrosecondBuilder;
    fn builder(capacity: usize) -> Self::Builder {
        TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC")
    }
    fn put_null(b: &mut Self::Builder) {
        b.append_null();
    }
}
impl ScalarCol for Timestamp {
    const SCALAR: Scalar = Scalar::Timestamp;
}
impl Put<i64> for Timestamp {
    fn put(b: &mut Self::Builder, v: &i64) {
        b.append_value(*v);
    }
    fn cell(v: &i64) -> Cell<'_> {
        Cell::Timestamp(*v)
    }
}

/// `string`: text, and the names of the vocabulary ([`Kind`], [`Tool`], [`LostStage`]) and of
/// protocol numbers ([`Proto`]).
#[derive(Debug, Clone, Copy)]
pub struct Utf8;
impl Col for Utf8 {
    const TYPE: ColumnType = ColumnType::Scalar(Scalar::Utf8);
    type Builder = StringBuilder;
    fn builder(capacity: usize) -> Self::Builder {
        StringBuilder::with_capacity(capacity, capacity * 8)
    }
    fn put_null(b: &mut Self::Builder) {
        b.append_null();
    }
}
impl ScalarCol for Utf8 {
    const SCALAR: Scalar = Scalar::Utf8;
}

macro_rules! put_str {
    ($($(#[$m:meta])* $t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(
            $(#[$m])*
            impl Put<$t> for Utf8 {
                fn put(b: &mut StringBuilder, $v: &$t) {
                    b.append_value($e);
                }
                fn cell($v: &$t) -> Cell<'_> {
                    Cell::Str($e)
                }
            }
        )*
    };
}

put_str!(
    String => |v| v.as_str(),
    str => |v| v,
    Arc<str> => |v| v,
    Kind => |v| v.name(),
    Tool => |v| v.name(),
    LostStage => |v| v.name(),
    AppProtocol => |v| v.name(),
    SessionEnd => |v| v.name(),
);

impl<'a> Put<&'a str> for Utf8 {
    fn put(b: &mut StringBuilder, v: &&'a str) {
        b.append_value(v);
    }
    fn cell<'b>(v: &'b &'a str) -> Cell<'b> {
        Cell::Str(v)
    }
}

/// An IP protocol number, stored as its name (`tcp`, `udp`, `icmp`, `icmpv6`) or, without one,
/// as the number in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Proto(pub u8);

impl Proto {
    /// The text the lake stores.
    pub fn text(self) -> std::borrow::Cow<'static, str> {
        match scanscope_common::proto::name(self.0) {
            Some(n) => n.into(),
            None => self.0.to_string().into(),
        }
    }
}

impl Put<Proto> for Utf8 {
    fn put(b: &mut StringBuilder, v: &Proto) {
        b.append_value(v.text());
    }
    fn cell(v: &Proto) -> Cell<'_> {
        match scanscope_common::proto::name(v.0) {
            Some(n) => Cell::Str(n),
            None => Cell::UInt(v.0.into()),
        }
    }
}

/// `binary`.
#[derive(Debug, Clone, Copy)]
pub struct Binary;
impl Col for Binary {
    const TYPE: ColumnType = ColumnType::Scalar(Scalar::Binary);
    type Builder = BinaryBuilder;
    fn builder(capacity: usize) -> Self::Builder {
        BinaryBuilder::with_capacity(capacity, capacity * 16)
    }
    fn put_null(b: &mut Self::Builder) {
        b.append_null();
    }
}
impl ScalarCol for Binary {
    const SCALAR: Scalar = Scalar::Binary;
}
impl Put<Vec<u8>> for Binary {
    fn put(b: &mut BinaryBuilder, v: &Vec<u8>) {
        b.append_value(v);
    }
    fn cell(v: &Vec<u8>) -> Cell<'_> {
        Cell::Bytes(v)
    }
}
impl<'a> Put<&'a [u8]> for Binary {
    fn put(b: &mut BinaryBuilder, v: &&'a [u8]) {
        b.append_value(v);
    }
    fn cell<'b>(v: &'b &'a [u8]) -> Cell<'b> {
        Cell::Bytes(v)
    }
}

/// `list<T>`: a list of scalars of column type `T`.
#[derive(Debug, Clone, Copy)]
pub struct List<T>(T);
impl<T: ScalarCol> Col for List<T> {
    const TYPE: ColumnType = ColumnType::List(T::SCALAR);
    type Builder = ListBuilder<T::Builder>;
    fn builder(capacity: usize) -> Self::Builder {
        ListBuilder::with_capacity(T::builder(capacity), capacity)
    }
    fn put_null(b: &mut Self::Builder) {
        b.append(false);
    }
}
impl<T: ScalarCol + Put<V>, V> Put<Vec<V>> for List<T> {
    fn put(b: &mut Self::Builder, v: &Vec<V>) {
        <Self as Put<[V]>>::put(b, v);
    }
    fn cell(v: &Vec<V>) -> Cell<'_> {
        <Self as Put<[V]>>::cell(v)
    }
}
impl<T: ScalarCol + Put<V>, V> Put<[V]> for List<T> {
    fn put(b: &mut Self::Builder, v: &[V]) {
        for x in v {
            T::put(b.values(), x);
        }
        b.append(true);
    }
    fn cell(v: &[V]) -> Cell<'_> {
        Cell::List(v.iter().map(T::cell).collect())
    }
}
impl<'a, T: ScalarCol + Put<V>, V> Put<&'a [V]> for List<T> {
    fn put(b: &mut Self::Builder, v: &&'a [V]) {
        <Self as Put<[V]>>::put(b, v);
    }
    fn cell<'b>(v: &'b &'a [V]) -> Cell<'b> {
        <Self as Put<[V]>>::cell(v)
    }
}

/// A nullable column of type `T`, from `Option` values.
#[derive(Debug, Clone, Copy)]
pub struct Nullable<T>(T);
impl<T: Col> Col for Nullable<T> {
    const TYPE: ColumnType = T::TYPE;
    const NULLABLE: bool = true;
    type Builder = T::Builder;
    fn builder(capacity: usize) -> Self::Builder {
        T::builder(capacity)
    }
    fn put_null(b: &mut Self::Builder) {
        T::put_null(b);
    }
}
impl<T: Put<V>, V> Put<Option<V>> for Nullable<T> {
    fn put(b: &mut Self::Builder, v: &Option<V>) {
        match v {
            Some(x) => T::put(b, x),
            None => T::put_null(b),
        }
    }
    fn cell(v: &Option<V>) -> Cell<'_> {
        v.as_ref().map_or(Cell::Null, T::cell)
    }
}

/// Declares a lake table once; see the [module documentation](self).
///
/// ```
/// use scanscope_lake::{lake_table, table::{U64, Utf8, Nullable}};
/// lake_table! {
///     /// One row per thing.
///     #[derive(Debug, Clone, PartialEq)]
///     pub struct ThingRow: "things", builder ThingBuilder, columns ThingColumns {
///         pub name: String => Utf8,
///         pub count: u64 => U64,
///         pub note: Option<String> => Nullable<Utf8>,
///     }
/// }
/// let mut b = ThingBuilder::with_capacity(1);
/// b.push(&ThingRow { name: "a".into(), count: 2, note: None });
/// let batch = b.finish().unwrap();
/// assert_eq!(batch.num_rows(), 1);
/// assert_eq!(ThingRow::COL.count, "count");
/// assert_eq!(ThingRow::COLUMNS[2].doc_type(), "string, null");
/// assert_eq!(batch.schema(), ThingRow::schema());
/// ```
#[macro_export]
macro_rules! lake_table {
    (
        $(#[$meta:meta])*
        $vis:vis struct $row:ident $(<$lt:lifetime>)? : $table:literal,
            builder $builder:ident, columns $cols:ident {
            $(
                $(#[doc = $doc:literal])*
                $fvis:vis $field:ident : $fty:ty => $col:ty
            ),* $(,)?
        }
        $(
            extra {
                $( $(#[$emeta:meta])* $evis:vis $efield:ident : $ety:ty ),* $(,)?
            }
        )?
    ) => {
        $(#[$meta])*
        $vis struct $row $(<$lt>)? {
            $( $(#[doc = $doc])* $fvis $field: $fty, )*
            $($( $(#[$emeta])* $evis $efield: $ety, )*)?
        }

        #[doc = concat!("The column names of `", $table, "`, one field per column (`", stringify!($row), "::COL`).")]
        #[derive(Debug, Clone, Copy)]
        $vis struct $cols {
            $( pub $field: &'static str, )*
        }

        impl $(<$lt>)? $row $(<$lt>)? {
            /// The table's name (its directory in the lake).
            pub const TABLE: &'static str = $table;
            /// The column names.
            pub const COL: $cols = $cols { $( $field: stringify!($field), )* };
            /// The columns, in order.
            pub const COLUMNS: &'static [$crate::table::Column] = &[
                $( $crate::table::Column {
                    name: stringify!($field),
                    ty: <$col as $crate::table::Col>::TYPE,
                    nullable: <$col as $crate::table::Col>::NULLABLE,
                }, )*
            ];

            /// The Arrow schema.
            pub fn schema() -> ::arrow::datatypes::SchemaRef {
                static SCHEMA: ::std::sync::LazyLock<::arrow::datatypes::SchemaRef> =
                    ::std::sync::LazyLock::new(|| $crate::table::schema($row::COLUMNS));
                SCHEMA.clone()
            }

            /// Every column's value in this row, in column order.
            pub fn cells(&self) -> Vec<(&'static str, $crate::table::Cell<'_>)> {
                vec![ $( (stringify!($field), <$col as $crate::table::Put<$fty>>::cell(&self.$field)), )* ]
            }
        }

        #[doc = concat!("Appends `", stringify!($row), "`s and finishes them as one Arrow record batch of `", $table, "`.")]
        $vis struct $builder {
            $( $field: <$col as $crate::table::Col>::Builder, )*
            rows: usize,
        }

        impl ::std::fmt::Debug for $builder {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($builder)).field("rows", &self.rows).finish()
            }
        }

        impl Default for $builder {
            fn default() -> Self {
                Self::with_capacity(0)
            }
        }

        impl $builder {
            /// A builder with room for about `capacity` rows.
            pub fn with_capacity(capacity: usize) -> Self {
                $builder {
                    $( $field: <$col as $crate::table::Col>::builder(capacity), )*
                    rows: 0,
                }
            }

            /// Appends one row.
            pub fn push $(<$lt>)? (&mut self, r: &$row $(<$lt>)?) {
                $( <$col as $crate::table::Put<$fty>>::put(&mut self.$field, &r.$field); )*
                self.rows += 1;
            }

            /// Rows appended since the last finish.
            pub fn len(&self) -> usize {
                self.rows
            }

            /// True if no row is waiting.
            pub fn is_empty(&self) -> bool {
                self.rows == 0
            }

            /// The columns of the rows appended so far (the builder is empty afterwards).
            pub fn finish_columns(&mut self) -> Vec<::arrow::array::ArrayRef> {
                self.rows = 0;
                vec![ $( <$col as $crate::table::Col>::finish(&mut self.$field), )* ]
            }

            /// The rows appended so far as one record batch (the builder is empty afterwards).
            pub fn finish(&mut self) -> Result<::arrow::array::RecordBatch, ::arrow::error::ArrowError> {
                ::arrow::array::RecordBatch::try_new($row::schema(), self.finish_columns())
            }
        }

        impl $crate::table::TableBuilder for $builder {
            fn rows(&self) -> usize {
                self.rows
            }

            fn finish_batch(&mut self) -> Result<::arrow::array::RecordBatch, ::arrow::error::ArrowError> {
                self.finish()
            }
        }
    };
}
