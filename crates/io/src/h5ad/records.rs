//! Compound (record) datasets, the tables of AnnData files older than 0.7: `obs` and `var` are one
//! record per row (the first field the index, e.g. scanpy's bundled `pbmc68k_reduced.h5ad`), and
//! `obsm` is one record per row whose fields are fixed-size arrays (`X_pca`: 50 × float32).
//!
//! A field is decoded from the record bytes by its offset and type: integers and floats of any
//! width and byte order, h5py's booleans, fixed-length strings, and fixed-size arrays of numbers.

use hdf5_pure::{CompoundMember, Dataset, Datatype, DatatypeByteOrder, StringPadding};

use crate::error::IoError;
use crate::h5ad::file::H5ad;

/// A compound dataset: its key, its record size and its fields, in file order.
pub(crate) struct Records {
    key: String,
    dataset: Dataset,
    size: usize,
    members: Vec<CompoundMember>,
}

/// One field: where it sits in a record and how to decode it.
pub(crate) struct Field {
    pub(crate) name: String,
    offset: usize,
    value: Value,
    /// Values per record: 1, or the element count of an array field.
    pub(crate) count: usize,
    element_size: usize,
}

/// What a field holds.
enum Value {
    Number(Datatype),
    Bool(Datatype),
    Text(StringPadding),
    Other(String),
}

/// One decoded value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Records {
    /// The compound dataset at `key`, or `None` when it holds another type.
    pub(crate) fn open(h5: &H5ad, key: &str) -> Result<Option<Self>, IoError> {
        let dataset = h5.dataset(key)?;
        let datatype = dataset.datatype().map_err(h5.hdf5(key))?;
        let Datatype::Compound { size, members } = datatype else {
            return Ok(None);
        };
        h5.length(key, &dataset)?;
        Ok(Some(Records {
            key: key.to_owned(),
            dataset,
            size: size as usize,
            members,
        }))
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The field names, in file order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }

    /// The number of records.
    pub(crate) fn len(&self, h5: &H5ad) -> Result<usize, IoError> {
        h5.length(&self.key, &self.dataset)
    }

    /// The field called `name`, checked to lie inside the record.
    pub(crate) fn field(&self, h5: &H5ad, name: &str) -> Result<Option<Field>, IoError> {
        let Some(member) = self.members.iter().find(|m| m.name == name) else {
            return Ok(None);
        };
        let (value, count, element) = classify(&member.datatype);
        let element_size = element.type_size() as usize;
        let end = usize::try_from(member.byte_offset)
            .ok()
            .and_then(|offset| Some((offset, count.checked_mul(element_size)?)))
            .and_then(|(offset, bytes)| Some((offset, offset.checked_add(bytes)?)));
        let offset = match end {
            Some((offset, end)) if end <= self.size => offset,
            _ => {
                let message = format!("field {name:?} lies outside its {}-byte record", self.size);
                return Err(h5.error(&self.key, message));
            }
        };
        Ok(Some(Field {
            name: name.to_owned(),
            offset,
            value,
            count,
            element_size,
        }))
    }

    /// Decodes `field` of every record, window by window, handing each value to `visit` with its
    /// row.
    pub(crate) fn for_each(
        &self,
        h5: &H5ad,
        field: &Field,
        mut visit: impl FnMut(usize, Scalar) -> Result<(), IoError>,
    ) -> Result<(), IoError> {
        if let Value::Other(what) = &field.value {
            let message = format!("field {:?} holds {what}", field.name);
            return Err(h5.error(&self.key, message));
        }
        let rows = self.len(h5)? as u64;
        let size = self.size.max(1);
        h5.for_each_window(
            &self.key,
            &self.dataset,
            (0, rows),
            Dataset::read_raw_rows,
            |start, bytes| {
                for (index, record) in bytes.chunks_exact(size).enumerate() {
                    let row = start as usize + index;
                    for value in 0..field.count {
                        let at = field.offset + value * field.element_size;
                        let bytes = &record[at..at + field.element_size];
                        let scalar = decode(&field.value, bytes).map_err(|message| {
                            h5.error(&self.key, format!("row {row}: {message}"))
                        })?;
                        visit(row, scalar)?;
                    }
                }
                Ok(())
            },
        )
    }
}

/// What a member type holds, how many values, and the type of one value.
fn classify(datatype: &Datatype) -> (Value, usize, &Datatype) {
    match datatype {
        Datatype::Array {
            base_type,
            dimensions,
        } => {
            let count = dimensions
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d as usize));
            match (scalar_value(base_type), count) {
                (value @ (Value::Number(_) | Value::Bool(_)), Some(count)) => {
                    (value, count, base_type)
                }
                _ => (
                    Value::Other("an array of non-numbers".to_owned()),
                    1,
                    datatype,
                ),
            }
        }
        _ => (scalar_value(datatype), 1, datatype),
    }
}

fn scalar_value(datatype: &Datatype) -> Value {
    match datatype {
        Datatype::FixedPoint { .. } | Datatype::FloatingPoint { .. } => {
            Value::Number(datatype.clone())
        }
        Datatype::Enumeration {
            base_type, members, ..
        } if members.len() == 2 && members[0].name == "FALSE" && members[1].name == "TRUE" => {
            Value::Bool(base_type.as_ref().clone())
        }
        Datatype::String { padding, .. } => Value::Text(padding.clone()),
        other => Value::Other(format!("HDF5 type class {}", class_name(other))),
    }
}

fn class_name(datatype: &Datatype) -> &'static str {
    match datatype {
        Datatype::Time { .. } => "time",
        Datatype::BitField { .. } => "bit field",
        Datatype::Opaque { .. } => "opaque",
        Datatype::Compound { .. } => "compound",
        Datatype::Reference { .. } => "reference",
        Datatype::Enumeration { .. } => "enumeration",
        Datatype::VariableLength { .. } => "variable-length",
        Datatype::Array { .. } => "array",
        _ => "other",
    }
}

fn decode(value: &Value, bytes: &[u8]) -> Result<Scalar, String> {
    match value {
        Value::Number(datatype) => number(datatype, bytes),
        Value::Bool(base) => match number(base, bytes)? {
            Scalar::Signed(0) | Scalar::Unsigned(0) => Ok(Scalar::Bool(false)),
            _ => Ok(Scalar::Bool(true)),
        },
        Value::Text(padding) => text(padding, bytes).map(Scalar::Text),
        Value::Other(what) => Err(format!("holds {what}")),
    }
}

/// An integer or float of 1 to 8 bytes in either byte order.
fn number(datatype: &Datatype, bytes: &[u8]) -> Result<Scalar, String> {
    let (order, signed, float) = match datatype {
        Datatype::FixedPoint {
            byte_order, layout, ..
        } => (*byte_order, layout.signed, false),
        Datatype::FloatingPoint { byte_order, .. } => (*byte_order, false, true),
        _ => return Err("not a number".to_owned()),
    };
    let mut word = [0u8; 8];
    let n = bytes.len();
    if n == 0 || n > 8 {
        return Err(format!("a {n}-byte number is not supported"));
    }
    match order {
        DatatypeByteOrder::LittleEndian => word[..n].copy_from_slice(bytes),
        DatatypeByteOrder::BigEndian => {
            for (i, &byte) in bytes.iter().rev().enumerate() {
                word[i] = byte;
            }
        }
        DatatypeByteOrder::Vax => return Err("VAX byte order is not supported".to_owned()),
    }
    let raw = u64::from_le_bytes(word);
    match (float, n) {
        (true, 4) => Ok(Scalar::Float(f64::from(f32::from_bits(raw as u32)))),
        (true, 8) => Ok(Scalar::Float(f64::from_bits(raw))),
        (true, _) => Err(format!("a {n}-byte float is not supported")),
        (false, _) if signed => {
            // Sign-extend from n bytes.
            let shift = 64 - 8 * n as u32;
            Ok(Scalar::Signed(((raw << shift) as i64) >> shift))
        }
        (false, _) => Ok(Scalar::Unsigned(raw)),
    }
}

/// A fixed-length string: cut at the first NUL (or trailing spaces, for space padding).
fn text(padding: &StringPadding, bytes: &[u8]) -> Result<String, String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let mut bytes = &bytes[..end];
    if *padding == StringPadding::SpacePad {
        while let [rest @ .., b' '] = bytes {
            bytes = rest;
        }
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| "a string that is not UTF-8".to_owned())
}

impl Scalar {
    /// The value as a number of a matrix.
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match *self {
            Scalar::Signed(v) => Some(v as f64),
            Scalar::Unsigned(v) => Some(v as f64),
            Scalar::Float(v) => Some(v),
            Scalar::Bool(v) => Some(f64::from(u8::from(v))),
            Scalar::Text(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdf5_pure::{FixedPointLayout, FloatingPointLayout};

    fn integer(size: u32, signed: bool, byte_order: DatatypeByteOrder) -> Datatype {
        Datatype::FixedPoint {
            size,
            byte_order,
            layout: FixedPointLayout {
                signed,
                bit_offset: 0,
                bit_precision: (size * 8) as u16,
            },
        }
    }

    #[test]
    fn integers_of_every_width_and_order_decode() {
        use DatatypeByteOrder::{BigEndian, LittleEndian};
        let i8 = integer(1, true, LittleEndian);
        assert_eq!(number(&i8, &[0xFF]), Ok(Scalar::Signed(-1)));
        let u16 = integer(2, false, BigEndian);
        assert_eq!(number(&u16, &[0x01, 0x02]), Ok(Scalar::Unsigned(258)));
        let i32 = integer(4, true, BigEndian);
        let bytes = (-70_000i32).to_be_bytes();
        assert_eq!(number(&i32, &bytes), Ok(Scalar::Signed(-70_000)));
        let i64 = integer(8, true, LittleEndian);
        let bytes = i64::MIN.to_le_bytes();
        assert_eq!(number(&i64, &bytes), Ok(Scalar::Signed(i64::MIN)));
    }

    #[test]
    fn floats_decode_in_either_order() {
        let f32 = Datatype::FloatingPoint {
            size: 4,
            byte_order: DatatypeByteOrder::BigEndian,
            layout: FloatingPointLayout::IEEE754_BINARY32,
        };
        let bytes = (-2.5f32).to_be_bytes();
        assert_eq!(number(&f32, &bytes), Ok(Scalar::Float(-2.5)));
        let f64 = Datatype::FloatingPoint {
            size: 8,
            byte_order: DatatypeByteOrder::LittleEndian,
            layout: FloatingPointLayout::IEEE754_BINARY64,
        };
        let bytes = 0.1f64.to_le_bytes();
        assert_eq!(number(&f64, &bytes), Ok(Scalar::Float(0.1)));
    }

    #[test]
    fn fixed_strings_stop_at_the_padding() {
        assert_eq!(
            text(&StringPadding::NullPad, b"AAAC-1\0\0"),
            Ok("AAAC-1".into())
        );
        assert_eq!(text(&StringPadding::SpacePad, b"G1  "), Ok("G1".into()));
        assert_eq!(
            text(&StringPadding::NullTerminate, b"full"),
            Ok("full".into())
        );
        assert!(text(&StringPadding::NullPad, b"\xFF\xFE").is_err());
    }
}
