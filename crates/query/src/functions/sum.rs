//! `sum` with PostgreSQL's result types, so that a sum of integers never wraps.
//!
//! DataFusion sums `bigint` into a `bigint` with wrapping addition: past 2^63 the answer is
//! silently wrong. PostgreSQL sums `bigint` into `numeric` (and `smallint`/`integer` into
//! `bigint`). This wrapper coerces 64-bit integers to `numeric(38, 0)` (whose range no sum
//! of fewer than 10^19 values leaves) before DataFusion's own `sum` runs; every other type,
//! floats among them, takes DataFusion's path unchanged.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, ReversedUDAF, SetMonotonicity,
    Signature, Volatility,
};

/// What a 64-bit integer sum accumulates in.
const WIDE_SUM: DataType = DataType::Decimal128(38, 0);

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PostgresSum {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

impl PostgresSum {
    pub fn new() -> Self {
        Self {
            inner: sum_udaf(),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for PostgresSum {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for PostgresSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = args else {
            return plan_err!("sum takes one argument");
        };
        let arg = match arg {
            DataType::Dictionary(_, value) => value.as_ref(),
            other => other,
        };
        Ok(vec![match arg {
            DataType::Int64 | DataType::UInt64 => WIDE_SUM,
            DataType::Null | DataType::Int8 | DataType::Int16 | DataType::Int32 => DataType::Int64,
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => DataType::UInt64,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Duration(_)
            | DataType::Interval(_) => arg.clone(),
            other => return plan_err!("function sum({other}) does not exist"),
        }])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigints_sum_into_numeric() {
        let sum = PostgresSum::new();
        assert_eq!(
            sum.coerce_types(&[DataType::Int64]).unwrap(),
            vec![WIDE_SUM]
        );
        assert_eq!(
            sum.coerce_types(&[DataType::Int32]).unwrap(),
            vec![DataType::Int64]
        );
        assert_eq!(
            sum.coerce_types(&[DataType::Float64]).unwrap(),
            vec![DataType::Float64]
        );
    }
}
