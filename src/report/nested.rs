//! Record fields as typed, nested Parquet columns, read from their JSON form: an object becomes a
//! struct, an array a list, and each leaf takes the type its values have across the records
//! (boolean, integer, float, text). A field added to the record reaches `results.parquet` with no
//! change here; a field no record of the run has (an older run's) is a text column of nulls. Inside these columns a non-finite number is null, as in `results.jsonl`; the flat
//! metric columns of [`super::table`] keep NaN.

use polars::prelude::*;
use serde_json::Value;

/// The type a column's values share.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// No value seen yet (all null).
    Null,
    Bool,
    Int,
    Float,
    Text,
    List(Box<Kind>),
    /// Fields in the order they were first seen.
    Struct(Vec<(String, Kind)>),
}

impl Kind {
    /// The kind that holds both `self` and `value`: integers widen to floats, anything else that
    /// disagrees becomes text (the value's JSON).
    fn with(self, value: &Value) -> Kind {
        match (self, value) {
            (kind, Value::Null) => kind,
            (Kind::Null, value) => Kind::of(value),
            (Kind::Bool, Value::Bool(_)) => Kind::Bool,
            (Kind::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => Kind::Int,
            (Kind::Int | Kind::Float, Value::Number(_)) => Kind::Float,
            (Kind::List(inner), Value::Array(items)) => {
                Kind::List(Box::new(items.iter().fold(*inner, Kind::with)))
            }
            (Kind::Struct(mut fields), Value::Object(object)) => {
                for (key, value) in object {
                    match fields.iter_mut().find(|(name, _)| name == key) {
                        Some((_, kind)) => *kind = std::mem::replace(kind, Kind::Null).with(value),
                        None => fields.push((key.clone(), Kind::of(value))),
                    }
                }
                Kind::Struct(fields)
            }
            _ => Kind::Text,
        }
    }

    fn of(value: &Value) -> Kind {
        match value {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(n) if n.is_i64() || n.is_u64() => Kind::Int,
            Value::Number(_) => Kind::Float,
            Value::String(_) => Kind::Text,
            Value::Array(items) => Kind::List(Box::new(items.iter().fold(Kind::Null, Kind::with))),
            Value::Object(_) => Kind::Struct(Vec::new()).with(value),
        }
    }
}

/// The column type of `kind`.
fn dtype(kind: &Kind) -> DataType {
    match kind {
        Kind::Bool => DataType::Boolean,
        Kind::Int => DataType::Int64,
        Kind::Float => DataType::Float64,
        Kind::Text | Kind::Null => DataType::String,
        Kind::Struct(fields) if fields.is_empty() => DataType::String,
        Kind::List(inner) => DataType::List(Box::new(dtype(inner))),
        Kind::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|(name, kind)| Field::new(name.as_str().into(), dtype(kind)))
                .collect(),
        ),
    }
}

/// A column named `name` of `values` (one per record; null where the record has none).
pub fn column(name: &str, values: &[&Value]) -> PolarsResult<Column> {
    let kind = values.iter().fold(Kind::Null, |kind, v| kind.with(v));
    series(name, values, &kind).map(Series::into_column)
}

fn series(name: &str, values: &[&Value], kind: &Kind) -> PolarsResult<Series> {
    let name = PlSmallStr::from(name);
    Ok(match kind {
        Kind::Bool => Series::new(name, values.iter().map(|v| v.as_bool()).collect::<Vec<_>>()),
        Kind::Int => Series::new(name, values.iter().map(|v| v.as_i64()).collect::<Vec<_>>()),
        Kind::Float => Series::new(name, values.iter().map(|v| v.as_f64()).collect::<Vec<_>>()),
        // Text, a column no record has a value in (typed as text, all null), and objects that
        // are always empty (a struct needs a field): their JSON.
        Kind::Text | Kind::Null => Series::new(
            name,
            values
                .iter()
                .map(|v| match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect::<Vec<_>>(),
        ),
        Kind::List(inner) => {
            let rows = values
                .iter()
                .map(|v| {
                    let items: Vec<&Value> =
                        v.as_array().map(|a| a.iter().collect()).unwrap_or_default();
                    // An empty or null list still has the element type, so that the column's
                    // type does not depend on which row comes first.
                    let row = series("", &items, inner)?;
                    Ok(v.is_array().then_some(row))
                })
                .collect::<PolarsResult<Vec<Option<Series>>>>()?;
            // Built for the element type: collecting would take the type from the first row,
            // and an empty row has none.
            let mut builder = polars::chunked_array::builder::get_list_builder(
                &dtype(inner),
                0,
                rows.len(),
                name,
            );
            for row in &rows {
                builder.append_opt_series(row.as_ref())?;
            }
            builder.finish().into_series()
        }
        Kind::Struct(fields) if fields.is_empty() => series(name.as_str(), values, &Kind::Text)?,
        Kind::Struct(fields) => {
            let children = fields
                .iter()
                .map(|(field, kind)| {
                    let child: Vec<&Value> = values
                        .iter()
                        .map(|v| v.get(field).unwrap_or(&Value::Null))
                        .collect();
                    series(field, &child, kind)
                })
                .collect::<PolarsResult<Vec<Series>>>()?;
            let structs = StructChunked::from_series(name, values.len(), children.iter())?;
            let present: Vec<bool> = values.iter().map(|v| v.is_object()).collect();
            structs
                .with_outer_validity(Some(present.into_iter().collect()))
                .into_series()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_take_one_type_per_column_nested_as_they_are() {
        let rows = [
            json!({"n": 1, "x": 1, "tags": [{"name": "b", "count": 1, "alike": []}], "worker": null, "empty": {}}),
            json!({"n": 2, "x": 2.5, "tags": [{"name": "a", "count": 3, "alike": ["c"]}], "worker": {"code": 9, "dead": true}}),
        ];
        let table = |field: &str| {
            let values: Vec<&Value> = rows.iter().map(|r| &r[field]).collect();
            column(field, &values).unwrap()
        };
        assert_eq!(table("n").dtype(), &DataType::Int64);
        assert_eq!(
            table("x").dtype(),
            &DataType::Float64,
            "an integer and a float"
        );
        let tags = table("tags");
        let DataType::List(inner) = tags.dtype() else {
            panic!("{:?}", tags.dtype())
        };
        let DataType::Struct(fields) = inner.as_ref() else {
            panic!("{inner:?}")
        };
        let count = fields.iter().find(|f| f.name() == "count").unwrap();
        assert_eq!(count.dtype(), &DataType::Int64);
        let worker = table("worker");
        assert_eq!(
            worker.null_count(),
            1,
            "a record without a worker has a null struct"
        );
        let worker = worker.struct_().unwrap().clone();
        let dead = worker.field_by_name("dead").unwrap();
        assert_eq!(dead.bool().unwrap().get(1), Some(true));
        assert_eq!(
            table("empty").dtype(),
            &DataType::String,
            "a struct needs a field"
        );
    }
}
