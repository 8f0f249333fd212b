//! `approx_distinct` / `approx_count_distinct` that also accept tag columns.
//!
//! DataFusion's HyperLogLog aggregate refuses dictionary-encoded input, and every chronosdb
//! tag is a dictionary. This wrapper declares a coercion from a dictionary to its value type
//! and hands everything else to DataFusion's implementation.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::functions_aggregate::approx_distinct::approx_distinct_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ApproxDistinct {
    inner: Arc<AggregateUDF>,
    signature: Signature,
    aliases: Vec<String>,
}

impl ApproxDistinct {
    pub fn new() -> Self {
        Self {
            inner: approx_distinct_udaf(),
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec!["approx_count_distinct".to_string()],
        }
    }
}

impl Default for ApproxDistinct {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for ApproxDistinct {
    fn name(&self) -> &str {
        "approx_distinct"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [DataType::Dictionary(_, value)] => Ok(vec![value.as_ref().clone()]),
            [other] => Ok(vec![other.clone()]),
            _ => plan_err!("approx_distinct takes one argument"),
        }
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(args)
    }
}
