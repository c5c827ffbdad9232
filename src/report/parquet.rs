//! `results.parquet`: the flat table of [`super::table`] in one Parquet file.

use std::fs::File;
use std::path::Path;

use polars::prelude::{DataFrame, ParquetWriter};

use super::ReportError;

/// Writes `table` to `path` (zstd compressed, polars' default).
pub fn write_parquet(table: &mut DataFrame, path: &Path) -> Result<(), ReportError> {
    let file = File::create(path).map_err(ReportError::io(path))?;
    ParquetWriter::new(file)
        .finish(table)
        .map(drop)
        .map_err(|source| ReportError::Table {
            path: path.to_owned(),
            source,
        })
}
