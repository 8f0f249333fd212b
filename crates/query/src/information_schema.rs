//! `information_schema` as PostgreSQL names its types.
//!
//! DataFusion's `information_schema.columns` reports Arrow types (`Timestamp(ns)`,
//! `Dictionary(Int32, Utf8)`, `Float64`). Grafana's query builder and BI tools read
//! `data_type` to tell times and numbers from text and expect PostgreSQL's names
//! (`timestamp without time zone`, `text`, `double precision`). This schema serves
//! DataFusion's tables, with `columns` as a view that renames the types.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlanBuilder, ScalarUDF, Volatility, col, create_udf,
};

/// The name of the schema.
pub const INFORMATION_SCHEMA: &str = "information_schema";

#[derive(Debug)]
pub struct PgInformationSchema {
    inner: InformationSchemaProvider,
}

impl PgInformationSchema {
    pub fn new(catalogs: Arc<dyn CatalogProviderList>) -> Self {
        Self {
            inner: InformationSchemaProvider::new(catalogs),
        }
    }
}

#[async_trait]
impl SchemaProvider for PgInformationSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.inner.table(name).await? else {
            return Ok(None);
        };
        if !name.eq_ignore_ascii_case("columns") {
            return Ok(Some(table));
        }
        let rename = Arc::new(pg_type_name_udf());
        let columns: Vec<Expr> = table
            .schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "data_type" => rename.call(vec![col("data_type")]).alias("data_type"),
                name => col(name),
            })
            .collect();
        let plan = LogicalPlanBuilder::scan("columns", provider_as_source(table), None)?
            .project(columns)?
            .build()?;
        Ok(Some(Arc::new(ViewTable::new(plan, None))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// PostgreSQL's name for an Arrow type as DataFusion prints it.
pub fn pg_type_name(arrow: &str) -> String {
    let name = match arrow {
        "Boolean" => "boolean",
        "Int8" | "Int16" | "UInt8" => "smallint",
        "Int32" | "UInt16" => "integer",
        "Int64" | "UInt32" => "bigint",
        "UInt64" => "numeric",
        "Float16" | "Float32" => "real",
        "Float64" => "double precision",
        "Utf8" | "LargeUtf8" | "Utf8View" => "text",
        "Binary" | "LargeBinary" | "BinaryView" => "bytea",
        "Date32" | "Date64" => "date",
        a if a.starts_with("Dictionary(") && a.contains("Utf8") => "text",
        a if a.starts_with("Timestamp(") => {
            if a.contains(',') {
                "timestamp with time zone"
            } else {
                "timestamp without time zone"
            }
        }
        a if a.starts_with("Time32(") || a.starts_with("Time64(") => "time without time zone",
        a if a.starts_with("Interval(") || a.starts_with("Duration(") => "interval",
        a if a.starts_with("Decimal") => "numeric",
        a if a.starts_with("List(") || a.starts_with("LargeList(") => "ARRAY",
        other => return other.to_ascii_lowercase(),
    };
    name.to_string()
}

fn pg_type_name_udf() -> ScalarUDF {
    create_udf(
        "pg_type_name",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args| {
            Ok(match &args[0] {
                ColumnarValue::Scalar(ScalarValue::Utf8(value)) => {
                    ColumnarValue::Scalar(ScalarValue::Utf8(value.as_deref().map(pg_type_name)))
                }
                ColumnarValue::Scalar(other) => ColumnarValue::Scalar(other.clone()),
                ColumnarValue::Array(array) => {
                    let names = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
                    let names = names.as_string::<i32>();
                    let renamed: StringArray = (0..names.len())
                        .map(|i| names.is_valid(i).then(|| pg_type_name(names.value(i))))
                        .collect();
                    ColumnarValue::Array(Arc::new(renamed))
                }
            })
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::pg_type_name;

    #[test]
    fn arrow_types_get_postgres_names() {
        assert_eq!(pg_type_name("Timestamp(ns)"), "timestamp without time zone");
        assert_eq!(
            pg_type_name("Timestamp(ns, \"+00:00\")"),
            "timestamp with time zone"
        );
        assert_eq!(pg_type_name("Dictionary(Int32, Utf8)"), "text");
        assert_eq!(pg_type_name("Float64"), "double precision");
        assert_eq!(pg_type_name("Int64"), "bigint");
    }
}
