//! How one field of an artifact's row type becomes one Arrow column and back. Every artifact is
//! declared by listing its row type's fields (the `artifact!` macro in `schema`); the field's Rust
//! type picks the Arrow type through [`Cell`]:
//!
//! | Rust                                    | Arrow                          |
//! |-----------------------------------------|--------------------------------|
//! | `String`, `Digest` (hex), `Tag`, enums  | Utf8                           |
//! | `u32`, `u8`, `f32`                      | UInt32, UInt8, Float32         |
//! | `Vec<T>`                                | List of T, items not null      |
//! | `StateValues`                           | List of Float16 or of Float32  |
//! | `Option<T>`                             | T, nullable                    |
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, Float16Builder, Float32Builder, ListBuilder, StringBuilder, UInt8Builder,
    UInt32Builder,
};
use arrow_array::{
    Array, ArrayRef, Float16Array, Float32Array, ListArray, StringArray, UInt8Array, UInt32Array,
};
use arrow_schema::{DataType, Field};

use super::{EdgeKind, ImageStatus, NodeKind, PhraseSource, QueryKind, Split, StateValues};
use crate::digest::Digest;
use crate::labels::Tag;

/// What went wrong reading a column, without the file (the caller adds it).
pub(crate) type CellResult<T> = std::result::Result<T, String>;

/// A value that is not null, written as one Arrow value (a list counts as one value).
pub(crate) trait Cell: Sized {
    type Builder: ArrayBuilder;

    /// The Arrow type of the values (of the items of a list of them).
    fn data_type() -> DataType;
    fn builder() -> Self::Builder;
    fn append(&self, builder: &mut Self::Builder);
    fn append_null(builder: &mut Self::Builder);
    /// Every value of `array`, `None` where it is null.
    fn read(array: &dyn Array) -> CellResult<Vec<Option<Self>>>;
}

/// A field of a row type: a [`Cell`] (a column without nulls) or an `Option` of one.
pub(crate) trait Column: Sized {
    const NULLABLE: bool;

    fn write<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef
    where
        Self: 'a;
    fn read(array: &dyn Array) -> CellResult<Vec<Self>>;
}

impl<C: Cell> Column for C {
    const NULLABLE: bool = false;

    fn write<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef
    where
        Self: 'a,
    {
        let mut builder = C::builder();
        values.for_each(|v| v.append(&mut builder));
        builder.finish()
    }

    fn read(array: &dyn Array) -> CellResult<Vec<Self>> {
        C::read(array)?
            .into_iter()
            .enumerate()
            .map(|(row, value)| value.ok_or_else(|| format!("row {row}: null")))
            .collect()
    }
}

impl<C: Cell> Column for Option<C> {
    const NULLABLE: bool = true;

    fn write<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef
    where
        Self: 'a,
    {
        let mut builder = C::builder();
        values.for_each(|v| match v {
            Some(v) => v.append(&mut builder),
            None => C::append_null(&mut builder),
        });
        builder.finish()
    }

    fn read(array: &dyn Array) -> CellResult<Vec<Self>> {
        C::read(array)
    }
}

fn downcast<A: Array + 'static>(array: &dyn Array) -> CellResult<&A> {
    array
        .as_any()
        .downcast_ref::<A>()
        .ok_or_else(|| format!("has type {}", array.data_type()))
}

/// The field of a list's items: named "item" and never null, as in every artifact so far.
fn item_field(data_type: DataType) -> Arc<Field> {
    Arc::new(Field::new("item", data_type, false))
}

macro_rules! primitive_cell {
    ($rust:ty, $arrow:ident, $builder:ident, $array:ident) => {
        impl Cell for $rust {
            type Builder = $builder;

            fn data_type() -> DataType {
                DataType::$arrow
            }
            fn builder() -> Self::Builder {
                $builder::new()
            }
            fn append(&self, builder: &mut Self::Builder) {
                builder.append_value(*self);
            }
            fn append_null(builder: &mut Self::Builder) {
                builder.append_null();
            }
            fn read(array: &dyn Array) -> CellResult<Vec<Option<Self>>> {
                Ok(downcast::<$array>(array)?.iter().collect())
            }
        }
    };
}

primitive_cell!(u32, UInt32, UInt32Builder, UInt32Array);
primitive_cell!(u8, UInt8, UInt8Builder, UInt8Array);
primitive_cell!(f32, Float32, Float32Builder, Float32Array);

/// Values written as text: `$write` turns one into a string, `$parse` turns a string back into
/// `Result<Self, impl Display>`.
macro_rules! text_cell {
    ($rust:ty, $write:expr, $parse:expr) => {
        impl Cell for $rust {
            type Builder = StringBuilder;

            fn data_type() -> DataType {
                DataType::Utf8
            }
            fn builder() -> Self::Builder {
                StringBuilder::new()
            }
            fn append(&self, builder: &mut Self::Builder) {
                builder.append_value($write(self));
            }
            fn append_null(builder: &mut Self::Builder) {
                builder.append_null();
            }
            fn read(array: &dyn Array) -> CellResult<Vec<Option<Self>>> {
                downcast::<StringArray>(array)?
                    .iter()
                    .enumerate()
                    .map(|(row, text)| {
                        text.map(|text| $parse(text).map_err(|e| format!("row {row}: {e}")))
                            .transpose()
                    })
                    .collect()
            }
        }
    };
}

/// A name that is not one of an enum's.
fn unknown<T>(what: &'static str) -> impl Fn(&str) -> CellResult<T> {
    move |name| Err(format!("unknown {what} {name:?}"))
}

text_cell!(String, String::as_str, |s: &str| CellResult::Ok(
    s.to_owned()
));
text_cell!(Digest, Digest::hex, str::parse::<Digest>);
text_cell!(Tag, Tag::to_string, str::parse::<Tag>);
text_cell!(Split, |s: &Split| s.name(), |s| Split::parse(s)
    .map_or_else(|| unknown("split")(s), Ok));
text_cell!(ImageStatus, |s: &ImageStatus| s.name(), |s| {
    ImageStatus::parse(s).map_or_else(|| unknown("image status")(s), Ok)
});
text_cell!(QueryKind, |k: &QueryKind| k.name(), |s| {
    QueryKind::parse(s).map_or_else(|| unknown("query kind")(s), Ok)
});
text_cell!(NodeKind, |k: &NodeKind| k.name(), |s| {
    NodeKind::parse(s).map_or_else(|| unknown("node kind")(s), Ok)
});
text_cell!(PhraseSource, |k: &PhraseSource| k.name(), |s| {
    PhraseSource::parse(s).map_or_else(|| unknown("phrase source")(s), Ok)
});
text_cell!(EdgeKind, |k: &EdgeKind| k.name(), |s| {
    EdgeKind::parse(s).map_or_else(|| unknown("edge kind")(s), Ok)
});

impl<C: Cell> Cell for Vec<C> {
    type Builder = ListBuilder<C::Builder>;

    fn data_type() -> DataType {
        DataType::List(item_field(C::data_type()))
    }
    fn builder() -> Self::Builder {
        ListBuilder::new(C::builder()).with_field(item_field(C::data_type()))
    }
    fn append(&self, builder: &mut Self::Builder) {
        self.iter().for_each(|item| item.append(builder.values()));
        builder.append(true);
    }
    fn append_null(builder: &mut Self::Builder) {
        builder.append(false);
    }
    fn read(array: &dyn Array) -> CellResult<Vec<Option<Self>>> {
        read_lists(array, |items| <C as Column>::read(items))
    }
}

/// Every list of the list column `array`, each read by `items`; `None` where a list is null.
fn read_lists<T>(
    array: &dyn Array,
    items: impl Fn(&dyn Array) -> CellResult<T>,
) -> CellResult<Vec<Option<T>>> {
    let lists = downcast::<ListArray>(array)?;
    (0..lists.len())
        .map(|row| {
            if lists.is_null(row) {
                return Ok(None);
            }
            let values = lists.value(row);
            items(values.as_ref())
                .map(Some)
                .map_err(|e| format!("row {row}: {e}"))
        })
        .collect()
}

/// Builds a `states` column in whichever number format its rows are stored in.
pub(crate) struct StatesBuilder {
    f16: ListBuilder<Float16Builder>,
    f32: ListBuilder<Float32Builder>,
}

impl ArrayBuilder for StatesBuilder {
    fn len(&self) -> usize {
        self.f16.len().max(self.f32.len())
    }
    /// A column of no rows is float16, the default storage; rows of both formats are a bug in the
    /// writer, caught by `RecordBatch::try_new` as a length mismatch.
    fn finish(&mut self) -> ArrayRef {
        if self.f32.len() > 0 {
            Arc::new(self.f32.finish())
        } else {
            Arc::new(self.f16.finish())
        }
    }
    fn finish_cloned(&self) -> ArrayRef {
        if self.f32.len() > 0 {
            Arc::new(self.f32.finish_cloned())
        } else {
            Arc::new(self.f16.finish_cloned())
        }
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn into_box_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl Cell for StateValues {
    type Builder = StatesBuilder;

    /// Float16, the default storage; an `f32` run's column is a list of Float32.
    fn data_type() -> DataType {
        DataType::Float16
    }
    fn builder() -> Self::Builder {
        StatesBuilder {
            f16: ListBuilder::new(Float16Builder::new()).with_field(item_field(DataType::Float16)),
            f32: ListBuilder::new(Float32Builder::new()).with_field(item_field(DataType::Float32)),
        }
    }
    fn append(&self, builder: &mut Self::Builder) {
        match self {
            Self::F16(v) => {
                builder.f16.values().append_slice(v);
                builder.f16.append(true);
            }
            Self::F32(v) => {
                builder.f32.values().append_slice(v);
                builder.f32.append(true);
            }
        }
    }
    fn append_null(builder: &mut Self::Builder) {
        builder.f16.append(false);
    }
    fn read(array: &dyn Array) -> CellResult<Vec<Option<Self>>> {
        read_lists(array, |items| {
            let any = items.as_any();
            if let Some(v) = any.downcast_ref::<Float16Array>() {
                Ok(Self::F16(v.values().to_vec()))
            } else if let Some(v) = any.downcast_ref::<Float32Array>() {
                Ok(Self::F32(v.values().to_vec()))
            } else {
                Err(format!("items have type {}", items.data_type()))
            }
        })
    }
}
